"""Divergence guard: NaN or infinite gradients or weights stop that task with an error naming
scenario, seed, stage and step; other cells finish; the failed cell is marked in the tables; a
rerun retries it. Healthy training is bit for bit what it was without the guard."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from marlmod import pipeline
from marlmod.compare import compare_runs
from marlmod.config import Scenario, parse_scenario
from marlmod.environments import resolve_env
from marlmod.errors import MarlmodError, TrainingDiverged
from marlmod.experiment import run_scenario
from marlmod.failures import load_failures
from marlmod.train import build_model, learn, training_logger


class PoisonWeights(BaseCallback):
    """Test-only: writes a NaN into the first policy weight after the first rollout."""

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        with torch.no_grad():
            self.model.policy.mlp_extractor.policy_net[0].weight[0, 0] = float("nan")


def fresh_model(scenario: Scenario):
    return build_model(scenario, resolve_env(scenario.env).factory(1.0), seed=0)


def test_nan_weights_stop_training_naming_stage_and_step(tiny_scenario: Scenario) -> None:
    model = fresh_model(tiny_scenario)
    with pytest.raises(TrainingDiverged) as diverged:
        learn(model, 128, PoisonWeights(), log_name="pretrain")
    assert str(diverged.value).startswith(
        "training diverged in pretrain at agent-step 64: non-finite weights (after non-finite "
        "gradients: the loss was NaN or inf) in mlp_extractor.policy_net.0.weight"
    )


def test_weights_too_large_for_the_policys_outputs_stop_training_by_name(
    tiny_scenario: Scenario,
) -> None:
    """Finite weights whose outputs overflow break torch's action sampling: named, not torch's."""
    model = fresh_model(tiny_scenario)
    with torch.no_grad():
        for layer in model.policy.mlp_extractor.policy_net[::2]:
            layer.weight.fill_(1e30)
    with pytest.raises(TrainingDiverged, match="in scratch at agent-step 0: non-finite action lo"):
        learn(model, 128, log_name="scratch")


def test_guard_leaves_healthy_training_bit_for_bit(tiny_scenario: Scenario) -> None:
    guarded = fresh_model(tiny_scenario)  # building seeds the global RNGs training draws from
    learn(guarded, 256, log_name="run")
    plain = fresh_model(tiny_scenario)
    plain.set_logger(training_logger(plain, "run", False))
    plain.learn(total_timesteps=256, progress_bar=False)  # SB3's own call, no guard
    plain_weights = plain.policy.state_dict()
    for name, weight in guarded.policy.state_dict().items():
        assert torch.equal(weight, plain_weights[name]), name


def test_absurd_learning_rate_fails_its_attacks_and_every_other_task_finishes(
    tmp_path: Path, tiny_dict: dict
) -> None:
    tiny_dict["relearn"] = {
        "steps": 64,
        "eval_points": 1,
        "learning_rates": [3e-4, 1e20],
        "starts": ["retrained"],
        "cells": ["contrast"],
    }
    with pytest.raises(MarlmodError) as failed:
        run_scenario(parse_scenario(tiny_dict), tmp_path, workers=2)
    message = str(failed.value)
    assert message.startswith("3 task(s) failed, the rest finished")
    assert "tiny seed 0, RelearnTask(" in message
    assert "training diverged in relearn_" in message and "at agent-step 64" in message
    run_dir = tmp_path / "tiny"
    assert sorted(f["task"].split("target=")[1].split(",")[0] for f in load_failures(run_dir)) == [
        "'contrast'",
        "'control_model'",
        "'scratch'",
    ]
    attacks = sorted(p.name for p in run_dir.glob("seed_0/relearn/*/*.json"))
    assert attacks == ["retrained_lr0.0003.json"] * 3  # the healthy rate's attacks finished
    assert "## Failed tasks" in (run_dir / "summary.md").read_text()


def poison_cell(name: str, seed: int):
    """``train_with_curve`` poisoning cell ``name``'s retraining of ``seed`` (``PoisonWeights``)."""
    original = pipeline.train_with_curve

    def train_with_curve(model, steps, points, evaluate, callback, log_name, *args, **kwargs):
        if log_name == f"retrain_{name}" and evaluate.__self__.seed == seed:  # SeedRun.evaluate
            callback = [PoisonWeights()] + ([callback] if callback is not None else [])
        return original(model, steps, points, evaluate, callback, log_name, *args, **kwargs)

    return train_with_curve


def strategies_table(summary: str) -> pd.DataFrame:
    """The strategies table of ``summary.md``, as strings."""
    section = summary.split("## Strategies")[1].split("\n## ")[0]
    lines = [line.strip("|") for line in section.splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.split("|")] for line in lines]
    return pd.DataFrame(rows[2:], columns=rows[0])


def test_a_diverged_cell_is_marked_failed_in_the_tables_and_a_rerun_retries_it(
    tmp_path: Path, tiny_dict: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny_dict["seeds"] = [0, 1]
    tiny_dict["relearn"] = {  # a second phase, which reads the first phase's cells
        "steps": 64,
        "eval_points": 1,
        "learning_rates": [3e-4],
        "starts": ["retrained"],
        "cells": ["none"],
    }
    scenario = parse_scenario(tiny_dict)
    with monkeypatch.context() as patched, pytest.raises(MarlmodError, match="1 task"):
        patched.setattr(pipeline, "train_with_curve", poison_cell("contrast", seed=0))
        run_scenario(scenario, tmp_path / "run", workers=1)
    run_dir = tmp_path / "run" / "tiny"
    [failure] = load_failures(run_dir)
    assert failure["cell"] == "contrast" and failure["seed"] == 0
    assert failure["error"].startswith("training diverged in retrain_contrast at agent-step 64")

    cells = pd.read_csv(run_dir / "cells.csv")
    assert len(cells) == 6  # 3 cells x 2 seeds: the failed one is a row, not dropped
    row = cells[(cells.strategy == "contrast") & (cells.seed == 0)].iloc[0]
    assert row.failed.startswith("training diverged") and pd.isna(row.trait_rate_retrained)
    assert cells.failed.isna().sum() == 5
    summary = (run_dir / "summary.md").read_text()
    assert strategies_table(summary)[["strategy", "seeds", "failed seeds"]].values.tolist() == [
        ["none", "2", "0"],
        ["contrast", "1", "1"],
        ["random", "2", "0"],
    ]
    assert "## Failed tasks" in summary
    assert not (run_dir / "seed_0" / "contrast" / "cell.json").exists()
    # the failed seed's second phase waits for the rerun; the other seed's ran
    assert not (run_dir / "seed_0" / "relearn").exists()
    assert (run_dir / "seed_1" / "relearn" / "none" / "retrained_lr0.0003.json").is_file()

    run_scenario(scenario, tmp_path / "run", workers=1)  # the rerun retries the failed cell
    assert not load_failures(run_dir)
    assert pd.read_csv(run_dir / "cells.csv").failed.isna().all()
    run_scenario(scenario, tmp_path / "reference", workers=1)
    comparison = compare_runs(run_dir, tmp_path / "reference" / "tiny")
    assert comparison.identical and not comparison.only_a and not comparison.only_b


def test_diverged_pretraining_fails_its_seed_and_says_no_report_was_written(
    tmp_path: Path, tiny_dict: dict
) -> None:
    tiny_dict["ppo"]["learning_rate"] = 1e20
    with pytest.raises(MarlmodError) as failed:
        run_scenario(parse_scenario(tiny_dict), tmp_path, workers=1)
    assert str(failed.value).startswith(
        "1 task(s) failed, the rest finished; no cell finished, so no report was written;"
    )
    assert "tiny seed 0, shared stages (pretraining, control, recording, prunes): training " in (
        str(failed.value)
    )
    assert "diverged in pretrain at agent-step 64" in str(failed.value)
    assert [f["task"] for f in load_failures(tmp_path / "tiny")] == [
        "shared stages (pretraining, control, recording, prunes)"
    ]
