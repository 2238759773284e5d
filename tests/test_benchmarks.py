"""The benchmark scripts still run (tiny budgets), so they cannot rot unnoticed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_script(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_throughput_quick_prints_every_route() -> None:
    routes = "plain,plain-1t,shared,fast,lean,compiled,lean@4x16"
    out = run_script("benchmarks/throughput.py", "--quick", "--no-locate", "--routes", routes)
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert set(routes.split(",")) <= rows.keys()
    assert rows["lean@4x16"][-1] != rows["lean"][-1]  # its own layout: other data, other weights
    # Same seed, same trajectories, same update arithmetic: every single-threaded route trains
    # exactly the same policy (LeanPPO included).
    assert rows["plain-1t"][-1] == rows["shared"][-1] == rows["fast"][-1] == rows["lean"][-1]


def test_locate_scale_quick_reports_time_and_memory() -> None:
    out = run_script("benchmarks/locate_scale.py", "--quick", "--strategies", "contrast,random")
    assert "contrast" in out and "random" in out and "peak RSS" in out


def test_learning_quality_compares_settings_across_worker_processes() -> None:
    out = run_script(
        "benchmarks/learning_quality.py",
        *("--settings", "2:16:32,2:16:32:0.001", "--steps", "256", "--seeds", "0,1"),
        *("--episodes", "1", "--jobs", "2"),
    )
    rows = [line.split() for line in out.splitlines() if line.startswith("2:16:32")]
    assert [row[0] for row in rows] == ["2:16:32", "2:16:32:0.001"]
    assert rows[0][4] == "-" and rows[1][4] != "-"  # differences are against the first setting


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
