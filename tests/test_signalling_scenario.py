"""The deception scenario through the whole pipeline, on a tiny budget: the roles reach the tables.

A tiny net on a few hundred steps learns nothing; what this checks is plumbing — the sender-only
trait rate, the per-role task returns and every stage's outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from marlmod.config import load_scenario, parse_scenario
from marlmod.experiment import run_scenario
from marlmod.pipeline import SeedRun
from tests.conftest import ROOT

TINY_DECEPTION: dict = {
    "name": "tiny_deception",
    "env": {
        "id": "marlmod/signalling-v0",
        "kwargs": {"max_cycles": 10},
        "bonus": 0.5,
        "trait": "lie",
        "trait_role": "sender",
    },
    "seeds": [0],
    "network": {"hidden": [8, 8], "activation": "relu"},
    "ppo": {"n_copies": 2, "n_steps": 16, "batch_size": 32, "n_epochs": 1},
    "pretrain_steps": 128,
    "retrain": {"steps": 128, "eval_points": 2},
    "evaluation": {"episodes": 2},
    "record_episodes": 4,
    "prune": {"layer": "mlp_extractor.policy_net.3", "fraction": 0.25},
}


def test_tiny_deception_scenario_end_to_end(tmp_path: Path) -> None:
    scenario = parse_scenario(TINY_DECEPTION)
    run_scenario(scenario, tmp_path)
    run_dir = tmp_path / "tiny_deception"
    cells = pd.read_csv(run_dir / "cells.csv")
    assert sorted(cells.strategy.unique()) == ["contrast", "none", "random"]
    assert (cells[cells.strategy == "contrast"].units_pruned == 2).all()
    # An untrained sender points at random: about 3 in 4 of its messages are lies.
    assert 0.4 < cells.trait_rate_before.iloc[0] <= 1.0

    _, control = SeedRun(scenario, 0, run_dir).pretrained("control")
    assert set(control.role_returns) == {"sender", "listener"}
    with np.load(run_dir / "seed_0" / "record" / "activations.npz") as record:
        # Sender rows only (one agent × 10 steps × 4 episodes), all seen with the sender flag.
        assert record["trait"].shape == (40,) and (record["obs"][:, 0] == 1.0).all()


def test_deception_config_is_valid_and_targets_the_sender() -> None:
    scenario = load_scenario(ROOT / "configs" / "deception.yaml")
    assert scenario.env.id == "marlmod/signalling-v0"
    assert (scenario.env.trait, scenario.env.trait_role) == ("lie", "sender")
    assert len(scenario.seeds) >= 3 and set(scenario.prune.strategies) >= {"contrast", "random"}
