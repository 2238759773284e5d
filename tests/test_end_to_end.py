"""The whole pipeline on a tiny scenario: tables are written, reruns resume, bad reuse refused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from marlmod.compare import zip_tensors
from marlmod.config import parse_scenario
from marlmod.episodes import write_episode_gif
from marlmod.errors import MarlmodError
from marlmod.experiment import run_scenario
from marlmod.migrate import migrate_run


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


def as_stored_before_granularity(seed_dir: Path, strategy: str) -> None:
    """Rewrite a finished cell as marlmod wrote it before weight and action-head cells (like
    results/aggression): no granularity in prune.json, no prune columns in cell.json."""
    for name, keys in (
        ("prune.json", ("granularity", "weights")),
        ("cell.json", ("granularity", "prunes_action_head", "weights_pruned", "masks_held")),
    ):
        path = seed_dir / strategy / name
        data = json.loads(path.read_text())
        path.write_text(json.dumps({k: v for k, v in data.items() if k not in keys}))


def test_weight_and_action_head_cells_join_an_old_run(tmp_path: Path, tiny_dict: dict) -> None:
    """Adding prune.weights and prune.action_head to a finished run (its cells written in the old
    format, refused until ``marlmod migrate`` restores exactly the columns the current version
    writes) computes only the new cells; the report marks the action head and shows matched
    sizes; masks of the new cells held through retraining; a rerun recomputes nothing."""
    from marlmod.pipeline import SeedRun
    from marlmod.prune import load_prune
    from marlmod.train import load_model

    run_scenario(parse_scenario(tiny_dict), tmp_path)
    run_dir = tmp_path / "tiny"
    written = json.loads((run_dir / "seed_0" / "contrast" / "cell.json").read_text())
    as_stored_before_granularity(run_dir / "seed_0", "contrast")
    with pytest.raises(MarlmodError, match="older marlmod .*cell without prune columns"):
        run_scenario(parse_scenario(tiny_dict), tmp_path)
    assert migrate_run(run_dir) == ["seed_0/contrast: prune columns added"]
    assert json.loads((run_dir / "seed_0" / "contrast" / "cell.json").read_text()) == written
    stamps = {p: p.stat().st_mtime_ns for p in run_dir.glob("seed_*/**/*") if p.is_file()}

    tiny_dict["prune"].update(weights=["contrast", "random"], action_head=["contrast"])
    scenario = parse_scenario(tiny_dict)
    summary = run_scenario(scenario, tmp_path)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # old cells reused untouched

    cells = pd.read_csv(run_dir / "cells.csv").set_index("strategy")
    assert sorted(cells.index) == [
        "contrast",
        "contrast~action_head",
        "contrast~weights",
        "none",
        "random",
        "random~weights",
    ]
    assert cells.granularity.to_dict() == {
        "contrast": "units",
        "contrast~action_head": "units",
        "contrast~weights": "weights",
        "none": "none",
        "random": "units",
        "random~weights": "weights",
    }
    assert cells.prunes_action_head[cells.prunes_action_head].index.tolist() == [
        "contrast~action_head"
    ]
    assert cells.masks_held.drop("none").all()
    units = 2 * (8 + 1 + 6)  # 2 of 8 units, each: 8 inputs, a bias, 6 logits
    for name in ("contrast", "contrast~weights", "random", "random~weights"):
        assert cells.loc[name, "weights_pruned"] == units, name  # old cell: counted from masks
    assert cells.loc["contrast~weights", "units_pruned"] == 0
    assert cells.loc["contrast~action_head", ["units_pruned", "weights_pruned"]].tolist() == [
        2,  # round(0.25 × 6 logits)
        2 * (8 + 1),
    ]
    assert "| contrast~action_head † |" in summary
    assert "† masks the action head: not a module" in summary
    assert re.search(r"\| contrast~weights +\| random~weights +\|", summary)  # like with like

    run = SeedRun(scenario, 0, run_dir)
    for name in ("contrast~weights", "contrast~action_head"):
        prune, masks = load_prune(run.dir / name)
        assert prune.granularity == ("weights" if name.endswith("weights") else "units")
        model = load_model(run.dir / name / "model.zip", scenario, run.cooperative, 0)
        params = dict(model.policy.named_parameters())
        assert all(torch.all(params[k][m == 0] == 0) for k, m in masks.items()), name
    assert load_prune(run.dir / "contrast~action_head")[0].layer == "action_net"

    gif = write_episode_gif(run_dir, 0, "contrast~weights", tmp_path / "gifs")
    assert gif.name == "seed0_contrast~weights.gif"

    stamps = {p: p.stat().st_mtime_ns for p in run_dir.glob("seed_*/**/*") if p.is_file()}
    run_scenario(scenario, tmp_path)  # resume: nothing recomputed
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_first_hidden_layer_prunes_units_and_weights(tmp_path: Path, tiny_dict: dict) -> None:
    """prune.layer may be any hidden layer of the policy: the first one is fed by the
    observation and read by the second Linear, not by the head."""
    from marlmod.pipeline import SeedRun
    from marlmod.prune import load_prune

    tiny_dict["prune"].update(layer="mlp_extractor.policy_net.1", weights=["contrast"])
    run = SeedRun(parse_scenario(tiny_dict), 0, tmp_path)
    run.run()
    touched = {
        name: {k for k, m in load_prune(run.dir / name)[1].items() if (m == 0).any()}
        for name in ("contrast", "contrast~weights")
    }
    assert touched["contrast"] == {
        "mlp_extractor.policy_net.0.weight",
        "mlp_extractor.policy_net.0.bias",
        "mlp_extractor.policy_net.2.weight",
    }
    assert touched["contrast~weights"] <= touched["contrast"]
    cells = {name: run.cell(name) for name in ("contrast", "contrast~weights")}
    assert cells["contrast"]["weights_pruned"] == cells["contrast~weights"]["weights_pruned"]
    obs_dim = load_prune(run.dir / "contrast")[1]["mlp_extractor.policy_net.0.weight"].shape[1]
    assert cells["contrast"]["weights_pruned"] == 2 * (obs_dim + 1 + 8)


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


def test_lost_retrained_model_is_rebuilt_by_migrate_and_checked_against_its_curve(
    tmp_path: Path, tiny_dict: dict
) -> None:
    scenario = parse_scenario(tiny_dict)
    run_scenario(scenario, tmp_path)
    run_dir = tmp_path / "tiny"
    model = run_dir / "seed_0" / "contrast" / "model.zip"
    original = zip_tensors(model)["policy.pth"]
    model.unlink()
    with pytest.raises(MarlmodError, match="retrained model not kept.*marlmod migrate"):
        run_scenario(scenario, tmp_path)
    assert migrate_run(run_dir) == ["seed_0/contrast: retrained model rebuilt (curve reproduced)"]
    rebuilt = zip_tensors(model)["policy.pth"]  # deterministic retraining: the same weights
    assert all(torch.equal(original[k], rebuilt[k]) for k in original)
    cell = run_dir / "seed_0" / "contrast" / "cell.json"
    cell.write_text(cell.read_text().replace('"trait_rate": ', '"trait_rate": 1', 1))
    model.unlink()
    with pytest.raises(MarlmodError, match="did not reproduce its stored relapse curve"):
        migrate_run(run_dir)
    assert not model.exists()
