"""The scripts that measure speed and decide defaults still run and compute what they say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import machine_limits  # noqa: E402  (benchmarks/, a script directory)


def run_script(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_update_flops_count_every_linear_layer_forward_and_backward(tiny_scenario) -> None:
    """Counted by hand for the tiny scenario's 8x8 MLP: every Linear of both nets and heads."""
    from functools import partial

    from envs.gathering import GatheringEnv
    from marlmod.train import build_model

    model = build_model(tiny_scenario, partial(GatheringEnv, grid_size=5), 0)
    obs, actions = model.observation_space.shape[0], model.action_space.n
    shapes = [(obs, 8), (8, 8), (obs, 8), (8, 8), (8, actions), (8, 1)]
    assert [(i, o) for i, o, _ in machine_limits.linear_shapes(model.policy)] == shapes
    rows = 32
    forward = sum(2 * rows * i * o for i, o in shapes)
    first_layers = 2 * rows * obs * 8 * 2  # policy and value nets' first layers
    backward = 2 * forward - first_layers  # no input gradient for the observation
    weights = sum(p.numel() for p in model.policy.parameters())
    assert machine_limits.update_flops(model.policy, rows) == {
        "forward": forward,
        "backward": backward,
        "optimiser": machine_limits.OPTIMISER_FLOPS_PER_WEIGHT * weights,
    }


def test_machine_limits_quick_prints_peak_update_and_env_rates() -> None:
    out = run_script("benchmarks/machine_limits.py", "--quick", "--backend", "lean")
    assert "matmul peak" in out and "MFLOP per minibatch" in out
    assert "% of the peak" in out and "env alone, random actions" in out
    assert "ppo.backend lean" in out


def test_scenario_phases_times_every_phase_of_a_tiny_run() -> None:
    out = run_script("benchmarks/scenario_phases.py", "configs/tiny.yaml", "--full-budgets")
    phases = {line.split()[0] for line in out.splitlines() if line and line[0].isalpha()}
    assert {"pretrain", "retrain", "evaluate", "record", "clusterability", "report"} <= phases
    assert "imports" in phases and "other" in phases and "total" in phases
    assert "trained 768 agent-steps" in out  # pretrain + control 128 each, 4 curves of 128


def test_learning_quality_resumes_from_saved_results_and_gives_a_verdict(tmp_path: Path) -> None:
    saved = tmp_path / "quality.json"
    common = ("--settings", "2:16:32+lean,4:8:32+lean", "--steps", "64", "--episodes", "1")
    run_script("benchmarks/learning_quality.py", *common, "--seeds", "0", "--save", str(saved))
    stored = json.loads(saved.read_text())
    assert sorted(stored["outcomes"]) == ["2:16:32+lean seed 0", "4:8:32+lean seed 0"]
    stored["outcomes"]["2:16:32+lean seed 0"][0] = 0.75  # a rerun reads it, never recomputes
    saved.write_text(json.dumps(stored))
    out = run_script(
        "benchmarks/learning_quality.py",
        *(*common, "--seeds", "0-1", "--save", str(saved), "--margins", "0,0"),
    )
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("2:", "4:"))}
    first_mean = float(rows["2:16:32+lean"].split()[1])
    expected = (0.75 + stored_rate(saved, "2:16:32+lean seed 1")) / 2
    assert first_mean == pytest.approx(expected, abs=1e-4)
    assert rows["4:8:32+lean"].endswith("not shown")  # nothing fits inside margins of 0
    assert len(json.loads(saved.read_text())["outcomes"]) == 4


def stored_rate(path: Path, key: str) -> float:
    return json.loads(path.read_text())["outcomes"][key][0]


def test_learning_quality_verdict_needs_both_intervals_inside_the_margins() -> None:
    import learning_quality

    reference = ([0.10, 0.11, 0.09, 0.10], [40.0, 41.0, 39.0, 40.0])
    near = ([0.101, 0.109, 0.091, 0.099], [39.8, 40.9, 39.1, 40.0])
    assert learning_quality.verdict(*near, reference, (0.02, 0.05)) == "equal"
    assert learning_quality.verdict(*near, reference, (0.001, 0.05)) == "not shown"  # trait
    worse = (near[0], [36.0, 37.0, 35.0, 36.0])  # 10% less task return
    assert learning_quality.verdict(*worse, reference, (0.02, 0.05)) == "not shown"
    better = (near[0], [44.0, 45.0, 43.0, 44.0])  # a gain is never a relevant loss
    assert learning_quality.verdict(*better, reference, (0.02, 0.05)) == "equal"
    assert learning_quality.verdict(*reference, reference, (0.02, 0.05)) == "-"


def test_learning_quality_refuses_a_save_file_of_another_comparison(tmp_path: Path) -> None:
    saved = tmp_path / "quality.json"
    saved.write_text(json.dumps({"spec": {"config": "other.yaml"}, "outcomes": {}}))
    done = subprocess.run(
        [sys.executable, "benchmarks/learning_quality.py", "--save", str(saved), "--steps", "64"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0 and "use another --save" in done.stderr
