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


def test_failed_cells_are_left_out_of_the_means_and_listed() -> None:
    """A seed whose pretraining collapsed fails its cells (``cells.csv``'s ``failed``): they
    must not enter the means as missing values, and the table says which failed."""
    spec = importlib.util.spec_from_file_location(
        "limited", ROOT / "experiments" / "limited_misbehaviour.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    cells = pd.DataFrame(
        {"seed": [0, 1], "strategy": ["routed", "routed"], "failed": ["no trait step", None]}
    )
    assert script.failed_cells(cells, "limited_routing") == [
        "limited_routing seed 0, routed: no trait step"
    ]
    assert script.failed_cells(cells.drop(columns="failed"), "limited_routing") == []
