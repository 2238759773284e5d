"""experiments/limited_misbehaviour.py reads the three arms' runs and writes its table and plot."""

from __future__ import annotations

import copy
import importlib.util
import subprocess
import sys
from pathlib import Path

import pandas as pd

from marlmod.config import parse_scenario
from marlmod.experiment import run_scenario
from marlmod.failures import record_failure

ROOT = Path(__file__).resolve().parent.parent


def test_the_arms_table_has_every_arm_prune_and_the_scratch_bar(
    tmp_path: Path, tiny_dict: dict
) -> None:
    arms = {
        "limited_emergent": {"env": {"bonus": 0.0}},
        "limited_bonus": {"env": {"bonus": 1.0}},
        "limited_routing": {
            "env": {"bonus": 1.0},
            "pretrain": {"method": "routing", "label_coverage": 0.3},
            "prune": {"strategies": ["routed", "contrast", "random"]},
        },
    }
    for name, change in arms.items():
        data = copy.deepcopy(tiny_dict)
        data["name"] = name
        data["env"].update(change["env"])
        data.update({k: v for k, v in change.items() if k != "prune" and k != "env"})
        data["prune"].update(change.get("prune", {}))
        run_scenario(parse_scenario(data), tmp_path)
    out = tmp_path / "limited"
    done = subprocess.run(
        [
            sys.executable,
            "experiments/limited_misbehaviour.py",
            "--results",
            str(tmp_path),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = pd.read_csv(out.with_suffix(".csv"))
    assert set(rows.arm) == {
        "(a) emerged, no bonus",
        "(b) limited bonus",
        "(b') limited bonus, routed",
        "(d) from scratch, cooperative",
    }
    routed = rows[rows.arm == "(b') limited bonus, routed"]
    assert {"routed", "contrast", "random units (placebo prune)"} <= set(routed.cell)
    costs = rows.groupby("arm").training_cost.first()
    assert costs["(a) emerged, no bonus"] == 128 + 128  # no control to train without a bonus
    assert costs["(b) limited bonus"] == 2 * 128 + 128
    assert "| (a) emerged, no bonus" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").stat().st_size > 0


def test_failed_tasks_are_listed_with_their_seed(tmp_path: Path) -> None:
    """A seed whose pretraining collapsed fails its shared stages: it has no row in
    ``cells.csv`` at all, so the table must say which seed is missing and why."""
    spec = importlib.util.spec_from_file_location(
        "limited", ROOT / "experiments" / "limited_misbehaviour.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    run_dir = tmp_path / "limited_routing"
    assert script.failure_lines(run_dir) == []
    record_failure(run_dir, 0, "shared", "shared stages", None, "no trait step")
    assert script.failure_lines(run_dir) == ["limited_routing seed 0, shared stages: no trait step"]
