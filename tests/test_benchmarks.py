"""The benchmark scripts still run (tiny budgets), so they cannot rot unnoticed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from marlmod.config import PPOConfig, load_scenario

ROOT = Path(__file__).resolve().parent.parent


def run_script(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, timeout=600, check=False
    )  # the timeout only guards against a hang: a loaded CI machine took over 60 s
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_throughput_quick_prints_every_route() -> None:
    routes = "plain,plain-1t,shared,sb3,lean,compiled,lean@4x16"
    out = run_script("benchmarks/throughput.py", "--quick", "--no-locate", "--routes", routes)
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert set(routes.split(",")) <= rows.keys()
    assert rows["lean@4x16"][-1] != rows["lean"][-1]  # its own layout: other data, other weights
    # Same seed, same trajectories, same update arithmetic: every single-threaded route trains
    # exactly the same policy (the lean backend included).
    assert rows["plain-1t"][-1] == rows["shared"][-1] == rows["sb3"][-1] == rows["lean"][-1]


def test_the_default_route_trains_what_a_new_scenario_trains() -> None:
    """``default`` = ``PPOConfig()``: its resolved backend at its layout and batch size, whatever
    ``--copies``/``--n-steps`` say (the same policy as that backend's route at that layout)."""
    ppo = PPOConfig()
    same = f"{ppo.backend}@{ppo.n_copies}x{ppo.n_steps}"
    out = run_script(
        "benchmarks/throughput.py",
        *("--quick", "--no-locate", "--routes", f"default,{same}"),
        *("--batch-size", str(ppo.batch_size)),
    )
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["default"][-1] == rows[same][-1]
    assert f"default: ppo.backend {ppo.backend}, {ppo.n_copies} copies" in out


def test_routes_named_before_the_backends_are_refused_with_their_new_name() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/throughput.py", "--routes", "fast@64x32"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0 and "'fast' is now 'sb3'" in done.stderr


def test_locate_scale_quick_reports_time_and_memory() -> None:
    out = run_script("benchmarks/locate_scale.py", "--quick", "--strategies", "contrast,random")
    assert "contrast" in out and "random" in out and "peak RSS" in out


def test_learning_quality_compares_settings_across_worker_processes() -> None:
    out = run_script(
        "benchmarks/learning_quality.py",
        *("--settings", "2:16:32+sb3,2:16:32:0.001,2:16:32+lean", "--steps", "256"),
        *("--seeds", "0,1", "--episodes", "1", "--jobs", "2"),
    )
    rows = [line.split() for line in out.splitlines() if line.startswith("2:16:32")]
    assert [row[0] for row in rows] == ["2:16:32+sb3", "2:16:32:0.001", "2:16:32+lean"]
    assert rows[0][4] == "-" and rows[1][4] != "-"  # differences are against the first setting
    assert rows[2][1:4] == rows[0][1:4]  # sb3 and lean: bitwise the same training


def test_learning_quality_settings_name_a_backend() -> None:
    spec = importlib.util.spec_from_file_location("lq", ROOT / "benchmarks/learning_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    base = load_scenario(ROOT / "configs" / "tiny.yaml")
    assert module.scenario_for(base, "2:16:32").ppo.backend == base.ppo.backend
    fast = module.scenario_for(base, "4:32:64:0.001+compiled").ppo
    assert (fast.backend, fast.n_copies, fast.learning_rate) == ("compiled", 4, 0.001)
    assert module.scenario_for(base, "2:16:32+sb3").ppo.backend == "sb3"
    with pytest.raises(SystemExit, match="now \\+compiled"):
        module.scenario_for(base, "2:16:32+compile")
    with pytest.raises(SystemExit, match="valid: \\+sb3, \\+lean, \\+compiled"):
        module.scenario_for(base, "2:16:32+fast")


def test_concurrent_processes_are_reported_as_one_route() -> None:
    """``ROUTE*2`` runs two processes at once and sums their rates (not a quick run: real
    subprocesses, tiny budgets)."""
    out = run_script(
        "benchmarks/throughput.py",
        *("--routes", "lean,lean*2", "--copies", "2", "--budget", "256", "--env-steps", "512"),
        *("--n-steps", "32", "--batch-size", "64", "--no-locate"),
    )
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["lean*2"][5] == "2"  # threads: one per process
    assert rows["lean*2"][-1] == rows["lean"][-1]  # the same training, twice


def test_divergence_guard_benchmark_reports_overhead_and_identical_weights() -> None:
    out = run_script("benchmarks/divergence_guard.py", "--steps", "2048", "--rounds", "1")
    assert "overhead (median of 1):" in out and "identical weights: True" in out


def test_throughput_trains_every_route_on_the_network_asked_for() -> None:
    """--network sets the policy of every route (a width here); routes that train the same
    thing still agree bit for bit, and differ from the default 64 x 64 net's weights."""
    routes = "plain-1t,lean"
    wide = run_script(
        "benchmarks/throughput.py",
        "--quick",
        "--no-locate",
        "--routes",
        routes,
        "--network",
        '{"hidden": [16, 16]}',
    )
    default = run_script("benchmarks/throughput.py", "--quick", "--no-locate", "--routes", routes)
    weights = {
        name: {line.split()[0]: line.split()[-1] for line in out.splitlines() if line.strip()}
        for name, out in (("wide", wide), ("default", default))
    }
    assert weights["wide"]["plain-1t"] == weights["wide"]["lean"]
    assert weights["wide"]["lean"] != weights["default"]["lean"]
    assert 'network {"hidden": [16, 16]}' in wide


def test_a_backend_that_cannot_train_the_network_is_skipped_with_the_reason() -> None:
    """lean trains plain MLPs only: with a CNN its route is skipped, the others still run."""
    cnn = '{"kind": "cnn", "conv": [{"channels": 4, "kernel": 3}], "hidden": [8]}'
    out = run_script(
        "benchmarks/throughput.py",
        "--quick",
        "--no-locate",
        "--routes",
        "plain-1t,lean",
        "--env-kwargs",
        '{"observation": "planes"}',
        "--network",
        cnn,
    )
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "cannot train this model" in rows["lean"]
    assert "skipped" not in rows["plain-1t"]
