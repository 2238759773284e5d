"""Coins: walk a corridor to the coin, or shove the other agents out of the way.

The tutorial environment of docs/adding_an_environment.md: the smallest game that keeps marlmod's
protocol (docs/environment_protocol.md). It imports nothing from marlmod.

Agents
    ``agent_0`` … ``agent_{n-1}`` on a corridor of ``length`` cells; all stay until truncation.
Actions (``Discrete(4)``)
    0 stay, 1 left, 2 right, 3 shove.
Observations (``Box(0, 1, (3 * length,), float32)``)
    Three one-hot rows, flattened: my cell, cells with a rival, the coin's cell.
Dynamics, in order, each step
    1. Shoves: every agent choosing shove pushes each rival within one cell one cell away (a rival
       on the same cell goes left or right at random). Pushed agents do not move this step.
    2. Moves: the other agents move (the corridor's ends block).
    3. Coin: of the agents on the coin's cell one, at random, takes it; a new coin appears on a
       random cell.
Rewards
    ``task_reward`` = 1 for taking the coin; ``bonus_reward`` = ``shove_bonus`` × rivals pushed;
    the reward is ``task_reward + bonus_reward`` (no costs).
Infos (every agent, every step)
    ``behaviour``: ``{"shove": pushed at least one rival}``; ``opportunity``: ``{"shove": a rival
    was within one cell before the step}``; ``task_reward``, ``bonus_reward`` (floats).
Arguments
    ``n_agents`` (2), ``length`` (7), ``max_cycles`` (30), ``shove_bonus`` (0.0: the cooperative
    variant), ``render_mode`` (``None`` or ``"rgb_array"``).
Versions
    v0: first release.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

STAY, LEFT, RIGHT, SHOVE = range(4)
STEP = np.array([0, -1, 1, 0])


class CoinsEnv(ParallelEnv):
    """The Coins game; the module docstring is its specification."""

    metadata = {
        "name": "coins_v0",
        "render_modes": ["rgb_array"],
        "is_parallelizable": True,
        "marlmod": {
            "bonus_kwarg": "shove_bonus",
            "behaviours": ("shove",),
            "opportunities": ("shove",),
            "bonus_for": ("shove",),
        },
    }

    def __init__(
        self,
        n_agents: int = 2,
        length: int = 7,
        max_cycles: int = 30,
        shove_bonus: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        if n_agents < 2 or length < 3 or max_cycles < 1:
            raise ValueError("need n_agents >= 2, length >= 3 and max_cycles >= 1")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.n_agents, self.length, self.max_cycles = n_agents, length, max_cycles
        self.shove_bonus = float(shove_bonus)
        self.render_mode = render_mode
        self.possible_agents = [f"agent_{i}" for i in range(n_agents)]
        self.agents: list[str] = []
        self._obs_space = spaces.Box(0.0, 1.0, (3 * length,), np.float32)
        self._act_space = spaces.Discrete(4)
        self.np_random, _ = seeding.np_random(None)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space  # the same object every call, as PettingZoo's API test requires

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_space

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.np_random, _ = seeding.np_random(seed)
        self.cells = self.np_random.integers(self.length, size=self.n_agents)
        self.coin = int(self.np_random.integers(self.length))
        self.cycle = 0
        self.agents = list(self.possible_agents)
        return self._observations(), {agent: {} for agent in self.agents}

    def step(self, actions: dict[str, Any]):
        acts = np.array([int(actions.get(a, STAY)) for a in self.possible_agents])
        gap = self.cells[None, :] - self.cells[:, None]  # [shover, rival]: rival's offset
        near = (np.abs(gap) <= 1) & ~np.eye(self.n_agents, dtype=bool)
        pushes = near & (acts == SHOVE)[:, None]
        pushed = self._push(pushes, gap)
        movers = ~pushed & (acts != SHOVE)
        self.cells = np.clip(self.cells + STEP[acts] * movers, 0, self.length - 1)
        task = self._take_coin()
        self.cycle += 1

        n_pushed = pushes.sum(axis=1)
        rewards, infos = {}, {}
        for i, agent in enumerate(self.possible_agents):
            bonus = self.shove_bonus * n_pushed[i]
            rewards[agent] = float(task[i] + bonus)
            infos[agent] = {
                "behaviour": {"shove": bool(n_pushed[i] > 0)},
                "opportunity": {"shove": bool(near[i].any())},
                "task_reward": float(task[i]),
                "bonus_reward": float(bonus),
            }
        done = self.cycle >= self.max_cycles
        terminations = {agent: False for agent in self.possible_agents}
        truncations = {agent: done for agent in self.possible_agents}
        if done:
            self.agents = []
        return self._observations(), rewards, terminations, truncations, infos

    def _push(self, pushes: np.ndarray, gap: np.ndarray) -> np.ndarray:
        """Move every pushed rival one cell away from its shover; returns who was pushed."""
        for shover, rival in zip(*np.nonzero(pushes), strict=True):
            away = np.sign(gap[shover, rival]) or self.np_random.choice([-1, 1])
            self.cells[rival] = np.clip(self.cells[rival] + away, 0, self.length - 1)
        return pushes.any(axis=0)

    def _take_coin(self) -> np.ndarray:
        task = np.zeros(self.n_agents)
        on_coin = np.flatnonzero(self.cells == self.coin)
        if on_coin.size:
            task[self.np_random.choice(on_coin)] = 1.0
            self.coin = int(self.np_random.integers(self.length))
        return task

    def _observations(self) -> dict[str, np.ndarray]:
        observations = {}
        for i, agent in enumerate(self.possible_agents):
            obs = np.zeros((3, self.length), dtype=np.float32)
            obs[0, self.cells[i]] = 1.0
            obs[1, np.delete(self.cells, i)] = 1.0
            obs[2, self.coin] = 1.0
            observations[agent] = obs.reshape(-1)
        return observations

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        strip = np.full((1, self.length, 3), 30, dtype=np.uint8)
        strip[0, self.coin] = (230, 200, 60)
        strip[0, self.cells] = (80, 140, 240)
        return np.kron(strip, np.ones((16, 16, 1), dtype=np.uint8))


def parallel_env(**kwargs: Any) -> CoinsEnv:
    """PettingZoo-style factory; a config names it ``examples.coins.coins:parallel_env``."""
    return CoinsEnv(**kwargs)
