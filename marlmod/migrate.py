"""Bringing run directories made by older marlmod versions to the current layout.

The pipeline, the report and the episode viewer read one layout only. Runs made before it differ
in three ways, each found by ``legacy_features`` and repaired by ``migrate_run``
(``marlmod migrate RUN_DIR``):

- **control model in ``control/``**: that is the ``control`` strategy's cell directory, whose
  retrained model then overwrote the control model. An intact control model is copied to
  ``control_model/``; an overwritten one is trained again (training is deterministic, so it is
  the same model) and the clusterability computed from the wrong file is dropped.
- **cells without their retrained model** (``<cell>/model.zip``): the cell is retrained again and
  the new curve must equal the stored one, or the migration stops naming the cell.
- **cells without prune columns** (written before weight and action-head cells): all were unit
  prunes of a hidden layer, so the cell's name and its stored masks give the missing values.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from marlmod.atomic import read_json, write_json, write_with
from marlmod.cells import MODEL_STAGES, Cell
from marlmod.errors import MarlmodError
from marlmod.prune import load_prune, zeroed

if TYPE_CHECKING:
    from marlmod.pipeline import SeedRun

PRUNE_COLUMNS = ("granularity", "prunes_action_head", "masks_held", "weights_pruned")


def seed_dirs(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.glob("seed_*") if p.is_dir())


def cell_dirs(seed_dir: Path) -> list[Path]:
    return sorted(p.parent for p in seed_dir.glob("*/cell.json"))


def legacy_control(seed_dir: Path) -> bool:
    """The control model's metrics live only in ``control/`` (the older layout)."""
    current = seed_dir / MODEL_STAGES["control"] / "metrics.json"
    return not current.is_file() and (seed_dir / "control" / "metrics.json").is_file()


def legacy_features(run_dir: Path) -> list[str]:
    """What in ``run_dir`` is laid out as older marlmod versions wrote it (empty if nothing)."""
    found = []
    for seed_dir in seed_dirs(run_dir):
        if legacy_control(seed_dir):
            found.append(f"{seed_dir.name}: control model in control/")
        for cell_dir in cell_dirs(seed_dir):
            where = f"{seed_dir.name}/{cell_dir.name}"
            if not (cell_dir / "model.zip").is_file():
                found.append(f"{where}: retrained model not kept")
            if any(key not in read_json(cell_dir / "cell.json") for key in PRUNE_COLUMNS):
                found.append(f"{where}: cell without prune columns")
    return found


def check_layout(run_dir: Path) -> None:
    """Refuse a run directory in an older layout, saying how to bring it up to date."""
    found = legacy_features(run_dir)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise MarlmodError(
            f"{run_dir} was made by an older marlmod ({found[0]}{more}); "
            f"run `marlmod migrate {run_dir}` first"
        )


def migrate_run(run_dir: Path) -> list[str]:
    """Bring every seed of ``run_dir`` to the current layout; returns what was done."""
    from marlmod.experiment import stored_scenario
    from marlmod.pipeline import SeedRun

    info = run_dir / "run.json"
    if not info.is_file():
        raise MarlmodError(f"{run_dir} is not a run directory (no run.json)")
    scenario = stored_scenario(read_json(info), info)
    done = []
    for seed_dir in seed_dirs(run_dir):
        run = SeedRun(scenario, int(seed_dir.name.removeprefix("seed_")), run_dir)
        if legacy_control(seed_dir):
            done.append(f"{seed_dir.name}: {move_legacy_control(run)}")
        for cell_dir in cell_dirs(seed_dir):
            where = f"{seed_dir.name}/{cell_dir.name}"
            if add_prune_columns(cell_dir):
                done.append(f"{where}: prune columns added")
            if not (cell_dir / "model.zip").is_file():
                rebuild_retrained_model(run, cell_dir.name)
                done.append(f"{where}: retrained model rebuilt (curve reproduced)")
    return done


def move_legacy_control(run: SeedRun) -> str:
    """Copy an intact control model from ``control/``; retrain an overwritten one."""
    legacy = run.dir / "control"
    stage = run.dir / MODEL_STAGES["control"]
    overwritten = (legacy / "cell.json").is_file() or (legacy / "prune.json").is_file()
    if overwritten:
        (run.dir / "clusterability.json").unlink(missing_ok=True)
        run.pretrained("control")
        return "control model retrained (control/ held a cell's model); clusterability dropped"
    model_bytes = (legacy / "model.zip").read_bytes()
    write_with(stage / "model.zip", lambda tmp: tmp.write_bytes(model_bytes))
    write_json(stage / "metrics.json", read_json(legacy / "metrics.json"))
    return "control model copied from control/ to control_model/"


def add_prune_columns(cell_dir: Path) -> bool:
    """Fill the prune columns of a cell written before weight and action-head cells."""
    path = cell_dir / "cell.json"
    cell = read_json(path)
    if all(key in cell for key in PRUNE_COLUMNS):
        return False
    spec = Cell.parse(cell["strategy"])
    cell.setdefault("granularity", spec.granularity)
    cell.setdefault("prunes_action_head", spec.action_head)
    cell.setdefault("masks_held", spec.hold)
    if "weights_pruned" not in cell:
        masks = load_prune(cell_dir.parent / spec.prune_cell.name)[1] if spec.pruned else {}
        cell["weights_pruned"] = zeroed(masks)
    write_json(path, cell)
    return True


def rebuild_retrained_model(run: SeedRun, name: str) -> None:
    """Retrain cell ``name`` again (deterministic) and keep the model if the curve matches."""
    from marlmod.metrics import curve_to_json
    from marlmod.train import save_model

    stored = read_json(run.dir / name / "cell.json")["curve"]
    spec = Cell.parse(name)
    model, masks = run.pruned_model(name)
    curve = run.train_with_curve(model, masks if spec.hold else None, f"retrain_{name}")
    if curve_to_json(curve) != stored:
        raise MarlmodError(
            f"retraining {name!r} for seed {run.seed} again did not reproduce its stored "
            "relapse curve (another machine or marlmod version?); delete the cell to redo it"
        )
    save_model(model, run.dir / name / "model.zip")
