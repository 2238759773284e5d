"""The control model and the `control` strategy's cell live apart, and older runs that kept them
in one directory (where the cell's retrained model overwrote the control model) are refused
until ``marlmod migrate`` repairs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from marlmod.compare import zip_tensors
from marlmod.config import parse_scenario
from marlmod.errors import MarlmodError
from marlmod.experiment import prepare_run_dir
from marlmod.migrate import migrate_run
from marlmod.pipeline import SeedRun, run_seed


def policy_weights(path: Path) -> dict[str, torch.Tensor]:
    return zip_tensors(path)["policy.pth"]


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = policy_weights(a), policy_weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_control_strategy_cell_does_not_overwrite_the_control_model(
    tmp_path: Path, tiny_dict: dict
) -> None:
    tiny_dict["prune"]["strategies"] = ["control", "random"]
    scenario = parse_scenario(tiny_dict)
    run_seed(scenario, 0, tmp_path)
    seed_dir = tmp_path / "seed_0"
    control_model = seed_dir / "control_model" / "model.zip"
    control_cell = seed_dir / "control" / "model.zip"
    assert control_model.is_file() and control_cell.is_file()
    assert not same_weights(control_model, control_cell)
    # the control model is what a fresh run of the control stage trains (deterministic)
    fresh = tmp_path / "fresh"
    path, metrics = SeedRun(scenario, 0, fresh).pretrained("control")
    assert same_weights(path, control_model)
    assert metrics.to_json() == json.loads((control_model.parent / "metrics.json").read_text())


def legacy_run(tmp_path: Path, scenario) -> Path:  # noqa: ANN001
    """A run directory (with run.json) whose seed 0 has only its control model trained."""
    run_dir = tmp_path / scenario.name
    prepare_run_dir(scenario, run_dir)
    return run_dir


def test_intact_legacy_control_model_is_copied_not_retrained(
    tmp_path: Path, tiny_dict: dict
) -> None:
    scenario = parse_scenario(tiny_dict)  # strategies contrast, random: no `control` cell
    run_dir = legacy_run(tmp_path, scenario)
    path, _ = SeedRun(scenario, 0, run_dir).pretrained("control")
    original = path.read_bytes()
    legacy = run_dir / "seed_0" / "control"
    shutil.move(path.parent, legacy)  # the layout of older runs
    (legacy / "metrics.json").write_text(json.dumps({"trait_rate": 0.5, "task_return": 7.0}))
    with pytest.raises(MarlmodError, match="control model in control/.*marlmod migrate"):
        prepare_run_dir(scenario, run_dir)
    assert migrate_run(run_dir) == ["seed_0: control model copied from control/ to control_model/"]
    path, metrics = SeedRun(scenario, 0, run_dir).pretrained("control")
    assert path.read_bytes() == original
    assert (metrics.trait_rate, metrics.task_return) == (0.5, 7.0)  # copied, not re-evaluated
    prepare_run_dir(scenario, run_dir)  # current now


def test_overwritten_legacy_control_model_is_retrained_and_clusterability_redone(
    tmp_path: Path, tiny_dict: dict
) -> None:
    scenario = parse_scenario(tiny_dict)
    reference, reference_metrics = SeedRun(scenario, 0, tmp_path / "reference").pretrained(
        "control"
    )
    run_dir = legacy_run(tmp_path, scenario)
    seed_dir = run_dir / "seed_0"
    legacy = seed_dir / "control"
    legacy.mkdir(parents=True)
    shutil.copy(reference.parent / "metrics.json", legacy / "metrics.json")
    pretrain, _ = SeedRun(scenario, 0, run_dir).pretrained("pretrain")
    shutil.copy(pretrain, legacy / "model.zip")  # the cell's model overwrote the control's
    (legacy / "prune.json").write_text("{}")
    (seed_dir / "clusterability.json").write_text('{"computed": "from the wrong net"}')
    assert migrate_run(run_dir) == [
        "seed_0: control model retrained (control/ held a cell's model); clusterability dropped"
    ]
    path, metrics = SeedRun(scenario, 0, run_dir).pretrained("control")
    assert path.parent.name == "control_model"
    assert same_weights(path, reference) and metrics == reference_metrics
    assert not (seed_dir / "clusterability.json").exists()
