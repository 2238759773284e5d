"""The whole pipeline on a tiny scenario: tables are written, reruns resume, bad reuse refused."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from marlmod.config import parse_scenario
from marlmod.errors import MarlmodError
from marlmod.experiment import run_scenario


def test_tiny_scenario_end_to_end_and_resume(tmp_path: Path, tiny_dict: dict) -> None:
    tiny_dict["seeds"] = [0, 1]
    tiny_dict["prune"].update(sweep=[0.5, 0.25], released=["contrast"], relocate=["contrast"])
    scenario = parse_scenario(tiny_dict)
    summary = run_scenario(scenario, tmp_path)
    run_dir = tmp_path / "tiny"
    cells = pd.read_csv(run_dir / "cells.csv")
    assert sorted(cells.strategy.unique()) == ["contrast", "contrast~released", "none", "random"]
    assert len(cells) == 8
    assert cells[["trait_rate_retrained", "kept_vs_scratch"]].notna().all().all()
    assert cells.set_index("strategy").masks_held.groupby(level=0).all().to_dict() == {
        "contrast": True,
        "contrast~released": False,
        "none": False,
        "random": True,
    }
    assert (cells[cells.strategy == "contrast"].units_pruned == 2).all()
    assert "| contrast" in summary and (run_dir / "relapse.png").stat().st_size > 0
    sweep = pd.read_csv(run_dir / "sweep.csv")
    assert sorted(sweep.fraction.unique()) == [0.25, 0.5] and len(sweep) == 2 * 2 * 2
    assert "Clusterability" in summary and "Relocation after retraining" in summary
    assert (run_dir / "seed_1" / "contrast" / "relocation.json").is_file()
    for name in (
        "summary.csv",
        "summary.html",
        "summary.md",
        "pareto.png",
        "sweep.png",
        "clusterability.png",
        "layer_contrasts.png",
    ):
        assert (run_dir / name).stat().st_size > 0, name
    tidy = pd.read_csv(run_dir / "summary.csv")
    assert {"mean", "iqm", "bootstrap_low", "t_high"} <= set(tidy.columns)
    curves = pd.read_csv(run_dir / "curves.csv")
    assert (
        sorted(curves.steps.unique())[0] == 0
        and curves.groupby(["seed", "strategy"]).size().eq(3).all()
    )

    stamps = {p: p.stat().st_mtime_ns for p in run_dir.glob("seed_*/**/*") if p.is_file()}
    run_scenario(scenario, tmp_path)  # resume: nothing recomputed
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_interrupted_seed_resumes_only_missing_cells(tmp_path: Path, tiny_dict: dict) -> None:
    scenario = parse_scenario(tiny_dict)
    run_scenario(scenario, tmp_path)
    seed_dir = tmp_path / "tiny" / "seed_0"
    (seed_dir / "random" / "cell.json").unlink()  # as if killed before this cell finished
    kept = (seed_dir / "contrast" / "cell.json").stat().st_mtime_ns
    run_scenario(scenario, tmp_path)
    assert (seed_dir / "random" / "cell.json").is_file()
    assert (seed_dir / "contrast" / "cell.json").stat().st_mtime_ns == kept


def test_rerun_under_a_different_config_is_refused(tmp_path: Path, tiny_dict: dict) -> None:
    run_scenario(parse_scenario(tiny_dict), tmp_path)
    tiny_dict["pretrain_steps"] = 256
    with pytest.raises(MarlmodError, match="different config"):
        run_scenario(parse_scenario(tiny_dict), tmp_path)


def test_corrupt_checkpoint_is_named(tmp_path: Path, tiny_dict: dict) -> None:
    scenario = parse_scenario(tiny_dict)
    run_scenario(scenario, tmp_path)
    seed_dir = tmp_path / "tiny" / "seed_0"
    (seed_dir / "pretrain" / "model.zip").write_bytes(b"truncated")
    (seed_dir / "random" / "cell.json").unlink()
    with pytest.raises(MarlmodError, match="corrupt checkpoint .*model.zip"):
        run_scenario(scenario, tmp_path)


def test_unusable_results_directory_fails_before_any_work(
    tmp_path: Path, tiny_dict: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = parse_scenario(tiny_dict)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(MarlmodError, match="cannot create results directory"):
        run_scenario(scenario, blocker)

    import marlmod.experiment as experiment

    monkeypatch.setattr(
        experiment.shutil, "disk_usage", lambda _: type("Usage", (), {"free": 10 * 2**20})()
    )
    with pytest.raises(MarlmodError, match="only 10 MiB free"):
        run_scenario(scenario, tmp_path / "out")
    assert not list((tmp_path / "out").rglob("*.zip"))


def test_corrupt_results_file_is_named_not_skipped(tmp_path: Path, tiny_dict: dict) -> None:
    scenario = parse_scenario(tiny_dict)
    run_scenario(scenario, tmp_path)
    cell = tmp_path / "tiny" / "seed_0" / "contrast" / "cell.json"
    cell.write_text('{"seed": 0, "strat')  # truncated mid-write by something other than marlmod
    with pytest.raises(MarlmodError, match="corrupt results file .*contrast/cell.json"):
        run_scenario(scenario, tmp_path)


def test_lost_retrained_model_is_rebuilt_and_checked_against_its_curve(
    tmp_path: Path, tiny_dict: dict
) -> None:
    from marlmod.pipeline import SeedRun

    scenario = parse_scenario(tiny_dict)
    run_scenario(scenario, tmp_path)
    run = SeedRun(scenario, 0, tmp_path / "tiny")
    (run.dir / "contrast" / "model.zip").unlink()
    run.retrained_model("contrast")  # deterministic retraining reproduces the stored curve
    assert (run.dir / "contrast" / "model.zip").is_file()
    cell = run.dir / "contrast" / "cell.json"
    cell.write_text(cell.read_text().replace('"trait_rate": ', '"trait_rate": 1', 1))
    (run.dir / "contrast" / "model.zip").unlink()
    with pytest.raises(MarlmodError, match="did not reproduce its stored relapse curve"):
        run.retrained_model("contrast")
