"""Cells as tasks: fanning a scenario out over worker processes gives exactly the files of a
one-process run, and a finished run reruns without computing anything."""

from __future__ import annotations

from pathlib import Path

from marlmod.compare import compare_runs
from marlmod.config import parse_scenario
from marlmod.experiment import run_scenario
from marlmod.pipeline import SeedRun
from marlmod.tasks import (
    CellTask,
    ClusterabilityTask,
    LayerContrastsTask,
    ScratchTask,
    SweepTask,
    seed_tasks,
)


def test_seed_tasks_cover_every_cell_and_extra(tiny_dict: dict) -> None:
    tiny_dict["prune"].update(released=["contrast"], sweep=[0.5], relocate=["contrast"])
    tasks = seed_tasks(parse_scenario(tiny_dict))
    assert tasks == [
        CellTask("none"),
        CellTask("contrast"),
        CellTask("random"),
        CellTask("contrast~released"),
        SweepTask("contrast"),
        SweepTask("random"),
        ScratchTask(),
        LayerContrastsTask(),
        ClusterabilityTask(),
    ]


def test_fanned_out_run_equals_one_process_run(tmp_path: Path, tiny_dict: dict) -> None:
    tiny_dict["seeds"] = [0, 1]
    tiny_dict["prune"].update(released=["contrast"], sweep=[0.5], relocate=["contrast"])
    scenario = parse_scenario(tiny_dict)
    run_scenario(scenario, tmp_path / "serial", workers=1)
    run_scenario(scenario, tmp_path / "fanned", workers=2)
    comparison = compare_runs(tmp_path / "serial" / "tiny", tmp_path / "fanned" / "tiny")
    assert comparison.identical and not comparison.only_a and not comparison.only_b
    assert any(p.endswith("relocation.json") for p in comparison.same)
    assert (tmp_path / "serial" / "tiny" / "cells.csv").read_text() == (
        tmp_path / "fanned" / "tiny" / "cells.csv"
    ).read_text()
    # a finished run reruns from its files: nothing is recomputed
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "fanned").rglob("seed_*/**/*.json")}
    run_scenario(scenario, tmp_path / "fanned", workers=2)
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}


def test_shared_stages_store_every_prune_before_tasks_fan_out(
    tmp_path: Path, tiny_dict: dict
) -> None:
    """Tasks of one seed run in parallel, so the caches several of them read (a strategy's
    scores, a prune its released-mask variant reuses) are written once, by ``shared``."""
    tiny_dict["prune"].update(released=["contrast"], weights=["contrast"])
    scenario = parse_scenario(tiny_dict)
    SeedRun(scenario, 0, tmp_path).shared()
    seed_dir = tmp_path / "seed_0"
    for name in ("contrast", "random", "contrast~weights"):
        assert (seed_dir / name / "prune.json").is_file(), name
    assert not (seed_dir / "scratch").exists()  # the capability bar is a task of its own
    assert not list(seed_dir.glob("*/cell.json"))  # no cell is retrained yet
