"""Shared fixtures: tiny scenarios so every test trains in seconds."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from marlmod.config import Scenario, parse_scenario

ROOT = Path(__file__).resolve().parent.parent

TINY: dict = {
    "name": "tiny",
    "env": {
        "id": "marlmod/gathering-v0",
        "kwargs": {"grid_size": 5, "max_cycles": 20},
        "bonus": 1.0,
        "trait": "attack",
    },
    "seeds": [0],
    "network": {"hidden": [8, 8], "activation": "relu"},
    "ppo": {"n_copies": 2, "n_steps": 16, "batch_size": 32, "n_epochs": 1},
    "pretrain_steps": 128,
    "retrain": {"steps": 128, "eval_points": 2},
    "evaluation": {"episodes": 2},
    "record_episodes": 4,
    "clusterability_shuffles": 2,
    "prune": {
        "layer": "mlp_extractor.policy_net.3",
        "fraction": 0.25,
        "strategies": ["contrast", "random"],
    },
}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def tiny_dict() -> dict:
    return copy.deepcopy(TINY)


@pytest.fixture
def tiny_scenario(tiny_dict: dict) -> Scenario:
    return parse_scenario(tiny_dict)
