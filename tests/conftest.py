"""Shared fixtures: tiny scenarios so every test trains in seconds."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from marlmod.config import Scenario, parse_scenario
from marlmod.config_files import resolve_file

ROOT = Path(__file__).resolve().parent.parent

# The smallest scenario (configs/tiny.yaml, read as the CLI reads it): tests change single values
# of a copy (``tiny_dict``), so the tiny budgets have one home.
TINY: dict = resolve_file(ROOT / "configs" / "tiny.yaml")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def tiny_dict() -> dict:
    return copy.deepcopy(TINY)


@pytest.fixture
def tiny_scenario(tiny_dict: dict) -> Scenario:
    return parse_scenario(tiny_dict)
