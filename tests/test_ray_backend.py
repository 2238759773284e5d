"""The Ray backend runs the same cells as local workers and gives identical numbers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from marlmod.config import parse_scenario
from marlmod.errors import MarlmodError
from marlmod.experiment import run_scenario

pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # starts a Ray instance: ~20 s before any work


def test_local_ray_run_matches_local_workers(tmp_path: Path, tiny_dict: dict) -> None:
    tiny_dict["seeds"] = [0, 1]
    scenario = parse_scenario(tiny_dict)
    run_scenario(scenario, tmp_path / "local", workers=2)
    run_scenario(scenario, tmp_path / "ray", workers=2, backend="ray")
    local = pd.read_csv(tmp_path / "local" / "tiny" / "cells.csv")
    on_ray = pd.read_csv(tmp_path / "ray" / "tiny" / "cells.csv")
    pd.testing.assert_frame_equal(local, on_ray)


def test_unknown_backend_is_named(tmp_path: Path, tiny_dict: dict) -> None:
    with pytest.raises(MarlmodError, match="unknown backend 'slurm'; valid: local, ray"):
        run_scenario(parse_scenario(tiny_dict), tmp_path, backend="slurm")
