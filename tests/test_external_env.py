"""An environment that lives outside the repository, named only by ``module:factory``, runs the
whole pipeline and lands in the results table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from marlmod.check_env import check_env
from marlmod.config import parse_scenario
from marlmod.experiment import run_scenario

# A whole marlmod environment, as a user would write it in their own project: no marlmod imports.
OUTSIDE_ENV = '''
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv


class Grab(ParallelEnv):
    """Each step a token lies in front of one agent. 0 wait, 1 take it (task +1 if it is yours),
    2 grab from the others (the misbehaviour: grab_bonus if someone else holds the token)."""

    metadata = {
        "name": "grab_v0",
        "marlmod": {"bonus_kwarg": "grab_bonus", "behaviours": ("grab",), "bonus_for": ("grab",)},
    }

    def __init__(self, n_agents=2, max_cycles=10, grab_bonus=0.0, render_mode=None):
        self.max_cycles, self.grab_bonus, self.render_mode = max_cycles, grab_bonus, render_mode
        self.possible_agents = [f"p{i}" for i in range(n_agents)]
        self.agents = []
        self._obs, self._act = spaces.Box(0, 1, (n_agents,), np.float32), spaces.Discrete(3)
        self.np_random, _ = seeding.np_random(None)

    def observation_space(self, agent):
        return self._obs

    def action_space(self, agent):
        return self._act

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.np_random, _ = seeding.np_random(seed)
        self.agents, self.t = list(self.possible_agents), 0
        self.holder = int(self.np_random.integers(len(self.agents)))
        return self._observe(), {a: {} for a in self.agents}

    def _observe(self):
        obs = np.zeros(len(self.possible_agents), np.float32)
        obs[self.holder] = 1.0
        return {a: np.roll(obs, -i) for i, a in enumerate(self.possible_agents)}

    def step(self, actions):
        rewards, infos = {}, {}
        for i, agent in enumerate(self.possible_agents):
            act = int(actions[agent])
            grab = act == 2 and i != self.holder
            task = float(act == 1 and i == self.holder)
            bonus = self.grab_bonus * grab
            rewards[agent] = task + bonus
            infos[agent] = {"behaviour": {"grab": grab}, "task_reward": task, "bonus_reward": bonus}
        self.t += 1
        self.holder = int(self.np_random.integers(len(self.possible_agents)))
        done = self.t >= self.max_cycles
        if done:
            self.agents = []
        flags = {a: done for a in self.possible_agents}
        return self._observe(), rewards, dict.fromkeys(flags, False), flags, infos

    def render(self):
        return None if self.render_mode is None else np.zeros((4, 4, 3), np.uint8)


def make(**kwargs):
    return Grab(**kwargs)
'''


@pytest.fixture
def outside_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Write the env to a fresh folder outside the repo and put that folder on sys.path."""
    folder = tmp_path / "user_project"
    folder.mkdir()
    (folder / "grab_game.py").write_text(OUTSIDE_ENV)
    monkeypatch.syspath_prepend(str(folder))
    return "grab_game:make"


def test_outside_env_passes_check_env(outside_module: str) -> None:
    assert check_env(outside_module, {}, steps=200) == []


def test_outside_env_runs_the_pipeline_into_the_results_table(
    outside_module: str, tmp_path: Path, tiny_dict: dict
) -> None:
    tiny_dict["name"] = "grab"
    tiny_dict["env"] = {"id": outside_module, "kwargs": {}, "bonus": 1.0, "trait": "grab"}
    run_scenario(parse_scenario(tiny_dict), tmp_path / "results")
    run_dir = tmp_path / "results" / "grab"
    cells = pd.read_csv(run_dir / "cells.csv")
    assert sorted(cells.strategy) == ["contrast", "none", "random"]
    assert (cells.trait_rate_before > 0).all()  # the outside env's labels reached the table
    assert json.loads((run_dir / "run.json").read_text())["config"]["env"]["id"] == outside_module
