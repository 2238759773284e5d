"""examples/walkthrough.py runs (on the tiny config) and is the method the pipeline runs: for
the same config and seed it prunes the same units and ends with the same numbers as
`marlmod run`'s cells."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from marlmod.atomic import read_json
from marlmod.config import load_scenario
from marlmod.experiment import run_scenario

ROOT = Path(__file__).resolve().parent.parent
# Small, but enough evaluation episodes that a change to any step moves the numbers.
BUDGET = [
    "pretrain_steps=2048",
    "retrain.steps=256",
    "evaluation.episodes=8",
    "env.kwargs.grid_size=7",
]


@pytest.fixture(scope="module")
def printed() -> str:
    sets = [arg for value in BUDGET for arg in ("--set", value)]
    result = subprocess.run(
        [sys.executable, "examples/walkthrough.py", "--config", "configs/tiny.yaml", *sets],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def table(printed: str) -> dict[str, list[str]]:
    rows = {}
    for line in printed.splitlines():
        cells = line.split()
        if cells and cells[0] in ("none", "contrast", "random") and len(cells) > 4:
            rows[cells[0]] = cells[1:5]
    return rows


def test_the_walkthrough_prints_its_table(printed: str) -> None:
    rows = table(printed)
    assert set(rows) == {"none", "contrast", "random"}
    assert "relapse" in printed and "trait rate: pretrained" in printed


def test_the_walkthrough_is_what_the_pipeline_computes(printed: str, tmp_path: Path) -> None:
    scenario = load_scenario(ROOT / "configs" / "tiny.yaml", BUDGET)
    run_scenario(scenario, tmp_path)
    seed_dir = tmp_path / "tiny" / "seed_0"
    units = read_json(seed_dir / "contrast" / "prune.json")["units"]
    assert re.search(rf"contrast prunes units {re.escape(str(units))}", printed)
    rows = table(printed)
    for cell in ("none", "contrast"):
        stored = read_json(seed_dir / cell / "cell.json")
        before, pruned, retrained, task_return = (float(v) for v in rows[cell])
        assert before == pytest.approx(stored["trait_rate_before"], abs=5e-5)
        assert pruned == pytest.approx(stored["trait_rate_pruned"], abs=5e-5)
        assert retrained == pytest.approx(stored["trait_rate_retrained"], abs=5e-5)
        assert task_return == pytest.approx(stored["task_return_retrained"], abs=5e-3)
