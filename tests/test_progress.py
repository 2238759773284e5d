"""The progress bar counts agent-steps: each task's estimate from the scenario, so the rate and
the time left mean something however unequal the tasks are."""

from __future__ import annotations

from pathlib import Path

import pytest
from tqdm import tqdm

from marlmod.config import parse_scenario
from marlmod.experiment import run_scenario
from marlmod.progress import EpisodeSize, TaskCosts, episode_size
from marlmod.relearn import Attack
from marlmod.tasks import (
    CellTask,
    ClusterabilityTask,
    LayerContrastsTask,
    RelearnTask,
    ScratchTask,
    SweepTask,
)

# The tiny scenario (configs/tiny.yaml) on Gathering: 2 agents, 20-step episodes; rollouts of
# 2 copies × 2 agents × 16 steps = 64 agent-steps; evaluations of 2 episodes = 80 agent-steps.
SIZE = EpisodeSize(agents=2, length=20)


def test_the_env_says_its_agents_and_episode_length(tiny_dict: dict) -> None:
    assert episode_size(parse_scenario(tiny_dict)) == SIZE


def test_task_costs_are_the_agent_steps_each_task_plays(tiny_dict: dict) -> None:
    tiny_dict["prune"]["sweep"] = [0.5, 1.0]
    tiny_dict["pretrain_steps"] = 100  # trains 2 whole rollouts: 128 agent-steps
    costs = TaskCosts(parse_scenario(tiny_dict), SIZE)
    evaluation, recording = 2 * 40, 4 * 40
    # pretrain and control, each trained and evaluated; 4 recording episodes; the random policy
    assert costs.of(None) == 2 * (128 + evaluation) + recording + evaluation
    # 128 retraining steps in 2 chunks of 64, evaluated before and after each
    retrain = 64 + 64 + 3 * evaluation
    assert costs.of(CellTask("contrast")) == retrain
    assert costs.of(ScratchTask()) == retrain
    assert costs.of(SweepTask("contrast")) == 2 * evaluation
    assert costs.of(LayerContrastsTask()) == recording
    assert costs.of(ClusterabilityTask()) == 0  # plays no env steps
    per_seed = costs.of(None) + 3 * retrain + retrain + 2 * 2 * evaluation + recording
    assert costs.per_seed() == per_seed


def test_relearning_attacks_cost_their_curve(tiny_dict: dict) -> None:
    tiny_dict["relearn"] = {"steps": 256, "eval_points": 2, "learning_rates": [1e-3]}
    costs = TaskCosts(parse_scenario(tiny_dict), SIZE)
    # geometric: chunks ending at 1/2 and all of 256 agent-steps, 3 evaluations of 80
    assert costs.of(RelearnTask(Attack("contrast", "retrained", 1e-3))) == 128 + 128 + 3 * 80


def test_unknown_episode_length_counts_training_only(tiny_dict: dict) -> None:
    costs = TaskCosts(parse_scenario(tiny_dict), EpisodeSize(agents=2, length=None))
    assert costs.of(None) == 2 * 128
    assert costs.of(LayerContrastsTask()) == 0


def test_the_bar_of_a_run_counts_its_estimated_agent_steps(
    tmp_path: Path, tiny_dict: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = parse_scenario(tiny_dict)
    run_scenario(scenario, tmp_path)
    total = tqdm.format_sizeof(TaskCosts(scenario, SIZE).total())
    last = capsys.readouterr().err.strip().split("\r")[-1]
    assert f"{total}/{total}" in last and "agent-steps/s" in last, last
