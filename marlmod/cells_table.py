"""``cells.csv``, the source of truth of a run's results: one row per seed × cell, read from disk.

Columns of ``cells.csv`` (one row per seed × strategy; ``strategy`` is the cell's name,
``<strategy>`` or ``<strategy>~<variant>``, see ``marlmod.cells``):

- ``granularity``: ``units``, ``weights`` (individual weights) or ``none`` (fine-tuning only).
- ``prunes_action_head``: the cell masked action logits themselves — not a module; marked ``†``
  in ``summary.md``.
- ``masks_held``: pruned weights were held at zero through retraining (not released).
- ``units_pruned``: whole units (or logits) removed; ``weights_pruned``: parameter entries
  (weights and biases) held at zero — equal for a strategy's unit and weight cells.
- ``trait_rate_{before,pruned,retrained}``: trait occurrences per agent-step of the pretrained
  model, right after pruning, after cooperative retraining (sampled actions, cooperative env).
- ``task_return_{before,pruned,retrained}``: task reward per agent per episode (bonus excluded).
- ``trait_cut``: ``trait_rate_before - trait_rate_pruned`` (what pruning alone removed).
- ``kept_vs_unpruned``: retrained task return ÷ that of plain fine-tuning (strategy ``none``).
- ``kept_vs_scratch``: retrained task return ÷ that of a fresh net trained cooperatively on the
  same retraining budget (empty while that model's task has failed). Both ratios mean something
  only when the returns are positive.
- ``random_task_return``: task return of a uniformly random policy on the same evaluation
  episodes (empty for runs made before it was measured).
- ``capability_vs_finetune``, ``capability_vs_scratch``: the retrained task return measured from
  the random policy's, ``(return − random's) / (reference − random's)``, against plain
  fine-tuning and the from-scratch model: 1 = the reference's capability, 0 = random's, for
  returns of any sign; empty where the reference is not clearly above random
  (``marlmod.report_checks``).
- ``relapse_auc``: mean trait rate over the retraining run (area under the relapse curve).
- ``relapse_fraction``: ``trait_rate_retrained / trait_rate_before``.
- ``steps_to_half``: retraining steps until the trait rate is back at half its pre-pruning rate.
- ``control_trait_rate``, ``control_task_return``: the same-seed model never paid for the trait.
- ``failed``: empty for a finished cell; for a cell whose task failed (``marlmod.failures``: e.g.
  its training diverged), the error, and every metric empty. Failed cells are in no statistic;
  ``summary.md`` counts them per strategy and lists every failed task.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from marlmod.atomic import read_json
from marlmod.cells import MODEL_STAGES, NO_PRUNE
from marlmod.errors import MarlmodError
from marlmod.migrate import check_layout
from marlmod.report_checks import capability_columns
from marlmod.stats import area_under_curve, first_crossing

METRICS = ("trait_rate", "task_return")


def load_cells(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-cell table and long-form relapse curves from every finished cell under ``run_dir``."""
    check_layout(run_dir)
    rows, curves = [], []
    for cell_path in sorted(run_dir.glob("seed_*/*/cell.json")):
        seed_dir = cell_path.parent.parent
        cell = read_json(cell_path)
        control = read_json(seed_dir / MODEL_STAGES["control"] / "metrics.json")
        floor = seed_dir / "random_policy" / "metrics.json"  # absent in older runs
        random_return = read_json(floor)["task_return"] if floor.is_file() else np.nan
        scratch_path = seed_dir / "scratch" / "curve.json"  # absent if its task failed
        scratch = read_json(scratch_path) if scratch_path.is_file() else [{"task_return": np.nan}]
        curve = pd.DataFrame(cell.pop("curve"))
        role_returns = curve.pop("role_returns") if "role_returns" in curve else None
        if role_returns is not None:
            for stage, point in (("pruned", 0), ("retrained", -1)):
                for role, value in role_returns.iloc[point].items():
                    cell[f"task_return_{stage}[{role}]"] = value
        if "held_out" in curve:
            held = curve.pop("held_out")
            before = read_json(seed_dir / "pretrain" / "metrics.json").get("held_out", {})
            cell.update(held_out_columns(held, before))
            curve = curve.join(held_out_curve(held))
        distillation = cell_path.parent / "distillation.json"
        if distillation.is_file():
            cell.update({f"distill_{k}": v for k, v in read_json(distillation).items()})
        rows.append(
            {
                **cell,
                "relapse_auc": area_under_curve(curve.steps, curve.trait_rate),
                "steps_to_half": first_crossing(
                    curve.steps.values, curve.trait_rate.values, 0.5 * cell["trait_rate_before"]
                ),
                "scratch_task_return": scratch[-1]["task_return"],
                "control_trait_rate": control["trait_rate"],
                "control_task_return": control["task_return"],
                "random_task_return": random_return,
            }
        )
        curves.append(curve.assign(seed=cell["seed"], strategy=cell["strategy"]))
    if not rows:
        raise MarlmodError(f"no finished cells under {run_dir}; run the scenario first")
    return _derive(pd.DataFrame(rows)), pd.concat(curves, ignore_index=True)


def held_out_columns(points: pd.Series, before: dict) -> dict[str, float]:
    """Trait rate and task return in each held-out situation: before pruning, right after
    pruning and after retraining (columns ``<metric>_<stage>@<situation>``)."""
    out = {}
    for name, metrics in before.items():
        out[f"trait_rate_before@{name}"] = metrics["trait_rate"]
        out[f"task_return_before@{name}"] = metrics["task_return"]
    for stage, point in (("pruned", 0), ("retrained", -1)):
        for name, metrics in points.iloc[point].items():
            out[f"trait_rate_{stage}@{name}"] = metrics["trait_rate"]
            out[f"task_return_{stage}@{name}"] = metrics["task_return"]
    return out


def held_out_curve(points: pd.Series) -> pd.DataFrame:
    """The held-out measurements of a curve as columns ``<metric>@<situation>``."""
    return pd.DataFrame(
        [
            {f"{metric}@{name}": m[metric] for name, m in point.items() for metric in METRICS}
            for point in points
        ],
        index=points.index,
    )


def _derive(cells: pd.DataFrame) -> pd.DataFrame:
    cells = cells.copy()
    cells["trait_cut"] = cells.trait_rate_before - cells.trait_rate_pruned
    cells["relapse_fraction"] = _ratio(cells.trait_rate_retrained, cells.trait_rate_before)
    finetune = cells[cells.strategy == NO_PRUNE].set_index("seed").task_return_retrained
    cells["kept_vs_unpruned"] = _ratio(cells.task_return_retrained, cells.seed.map(finetune))
    cells["kept_vs_scratch"] = _ratio(cells.task_return_retrained, cells.scratch_task_return)
    cells = capability_columns(cells)
    return cells.sort_values(["strategy", "seed"]).reset_index(drop=True)


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    return num / den.where(den.abs() > 1e-12)
