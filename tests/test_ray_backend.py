"""The Ray backend runs the same cells as local workers and gives identical numbers, also when a
worker dies mid-task and on a cluster whose nodes share no filesystem."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from fault_envs import killing_config

from marlmod.compare import compare_runs
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


def test_ray_task_killed_mid_training_is_retried_with_identical_results(
    tmp_path: Path, tiny_dict: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray runs a task again when its worker dies (``max_retries``)."""
    tests = str(Path(__file__).parent)
    monkeypatch.syspath_prepend(tests)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
    marker = tmp_path / "killed_once"
    tiny_dict["seeds"] = [0, 1]
    scenario = parse_scenario(killing_config(tiny_dict, marker))
    marker.touch()
    run_scenario(scenario, tmp_path / "local", workers=2)
    marker.unlink()
    run_scenario(scenario, tmp_path / "ray", workers=2, backend="ray")
    assert marker.exists(), "no Ray worker was killed"
    comparison = compare_runs(tmp_path / "local" / "tiny", tmp_path / "ray" / "tiny")
    assert comparison.identical and not comparison.only_a and not comparison.only_b


def test_ray_cluster_without_a_shared_filesystem_matches_a_local_run(
    tmp_path: Path, tiny_dict: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two simulated nodes; every job runs in a scratch directory of its node and ships its
    files back, so every result file in the run directory was written by the driver."""
    import ray
    from ray.cluster_utils import Cluster

    from marlmod import pools

    tiny_dict["seeds"] = [0, 1]
    scenario = parse_scenario(tiny_dict)
    run_scenario(scenario, tmp_path / "local", workers=2)

    written: list[str] = []

    def apply(run_dir: Path, shipped: list) -> None:
        written.extend(rel for rel, _ in shipped)
        real_apply(run_dir, shipped)

    real_apply = pools.apply
    monkeypatch.setattr(pools, "apply", apply)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        run_scenario(scenario, tmp_path / "ray", backend="ray", ray_address=cluster.address)
        nodes = [n for n in ray.nodes() if n["Alive"]]
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert len(nodes) == 2
    comparison = compare_runs(tmp_path / "local" / "tiny", tmp_path / "ray" / "tiny")
    assert comparison.identical and not comparison.only_a and not comparison.only_b
    assert set(comparison.same) <= set(written)  # only the driver wrote results
