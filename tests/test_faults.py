"""Interrupted runs: a sweep killed with SIGKILL at random points resumes to exactly the results of
an uninterrupted run, never recomputing a finished stage and never leaving a half-written file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

# A stage's last write marks it finished; the files it writes first (a model, the masks) count
# as finished only beside their marker, since a kill between the two leaves the stage unfinished.
MARKERS = ("cell.json", "curve.json", "metrics.json", "activations.npz", "prune.json")
WRITTEN_BEFORE = {
    "model.zip": ("cell.json", "curve.json", "metrics.json"),
    "masks.pt": ("prune.json",),
}


def write_config(tmp_path: Path, tiny_dict: dict) -> Path:
    """Two seeds, with relearning attacks, so kills land in every kind of stage."""
    tiny_dict["seeds"] = [0, 1]
    tiny_dict["relearn"] = {"steps": 64, "eval_points": 2, "learning_rates": [0.0003]}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_dict))
    return path


def start(config: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "marlmod.cli", "run", str(config), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def is_finished(path: Path) -> bool:
    if path.name.startswith("."):  # an interrupted atomic write's temporary
        return False
    if path.name in MARKERS or path.parent.parent.name == "relearn":
        return True
    return any((path.parent / marker).is_file() for marker in WRITTEN_BEFORE.get(path.name, ()))


def finished(run_dir: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file() and is_finished(p)}


def test_kill_9_at_random_points_then_resume_matches_an_uninterrupted_run(
    tmp_path: Path, tiny_dict: dict
) -> None:
    config = write_config(tmp_path, tiny_dict)
    reference = subprocess.run(
        [
            sys.executable,
            "-m",
            "marlmod.cli",
            "run",
            str(config),
            "--out",
            str(tmp_path / "reference"),
        ],
        capture_output=True,
        timeout=300,
    )
    assert reference.returncode == 0, reference.stderr.decode()

    out, run_dir = tmp_path / "killed", tmp_path / "killed" / "tiny"
    rng = np.random.default_rng(0)
    kills = 0
    for _ in range(6):
        before = finished(run_dir)
        proc = start(config, out)
        time.sleep(float(rng.uniform(2.0, 6.0)))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        after = finished(run_dir)
        assert {p: after[p] for p in before} == before, "a finished stage was recomputed"
        assert not list(run_dir.rglob("*.tmp*")) or all(
            p.name.startswith(".") for p in run_dir.rglob("*.tmp*")
        )
        if (run_dir / "cells.csv").is_file():
            break
    assert kills >= 1
    final = subprocess.run(
        [sys.executable, "-m", "marlmod.cli", "run", str(config), "--out", str(out)],
        capture_output=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stderr.decode()
    for table in ("cells.csv", "relearn.csv"):
        pd.testing.assert_frame_equal(
            pd.read_csv(run_dir / table),
            pd.read_csv(tmp_path / "reference" / "tiny" / table),
        )


def test_same_config_and_seed_give_identical_result_files(tmp_path: Path, tiny_dict: dict) -> None:
    from marlmod.config import parse_scenario
    from marlmod.experiment import run_scenario

    tiny_dict["prune"].update(weights=["contrast", "random"], action_head=["contrast"])
    scenario = parse_scenario(tiny_dict)
    run_scenario(scenario, tmp_path / "a")
    run_scenario(scenario, tmp_path / "b")
    for name in ("cells.csv", "curves.csv", "summary.md", "summary.csv"):
        assert (tmp_path / "a" / "tiny" / name).read_bytes() == (
            tmp_path / "b" / "tiny" / name
        ).read_bytes(), name
