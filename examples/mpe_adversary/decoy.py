"""Simple Adversary with a decoy bonus: a thin marlmod adapter around a third-party PettingZoo env.

The game is mpe2's ``simple_adversary_v3``, unchanged: one adversary and ``N`` good agents move
among ``N`` landmarks; one landmark is the goal, which only the good agents know. Good agents are
rewarded for being near the goal and for the adversary being far from it; the adversary for being
near it. Covering the other (decoy) landmarks lures the adversary away: deception. This adapter
adds only what marlmod's protocol (docs/environment_protocol.md) asks for; it imports nothing
from marlmod.

Agents
    ``adversary_0``, ``agent_0`` … ``agent_{N-1}``; roles ``"adversary"`` and ``"good"``.
Actions (``Discrete(5)``)
    mpe2's: no-op, left, right, down, up.
Observations (``Box(-inf, inf, (4N + 3,), float32)``)
    ``[is_good, goal offset, landmark offsets, other agents' offsets]``. mpe2 gives the adversary
    no goal offset (it must not know the goal); the adapter puts zeros there so every agent has
    one shape, which parameter sharing needs, and the ``is_good`` flag tells the roles apart.
Rewards
    ``task_reward`` = mpe2's reward; ``bonus_reward`` = ``decoy_bonus`` for a good agent on a
    decoy; the reward is ``task_reward + bonus_reward``.
Infos (every agent, every step; mpe2's own infos are kept)
    ``behaviour``: ``{"decoy": a good agent within decoy_radius of a landmark that is not the
    goal}`` (always False for the adversary); ``role``; ``task_reward``, ``bonus_reward``.
Arguments
    ``N`` (2), ``max_cycles`` (25), ``decoy_bonus`` (0.0: plain simple_adversary),
    ``decoy_radius`` (0.3), ``render_mode`` (``None`` or ``"rgb_array"``).
Seeding
    All randomness is mpe2's, drawn from its ``np_random`` and reseeded by ``reset(seed=...)``.
Versions
    v0: first release, on mpe2 1.1's ``simple_adversary_v3``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # mpe2 imports pygame for rendering
from mpe2 import simple_adversary_v3  # noqa: E402


class DecoyAdversary(ParallelEnv):
    """mpe2's Simple Adversary, relabelled for marlmod; see the module docstring."""

    metadata = {
        "name": "decoy_adversary_v0",
        "render_modes": ["rgb_array"],
        "is_parallelizable": True,
        "marlmod": {
            "bonus_kwarg": "decoy_bonus",
            "behaviours": ("decoy",),
            "bonus_for": ("decoy",),
        },
    }

    def __init__(
        self,
        N: int = 2,
        max_cycles: int = 25,
        decoy_bonus: float = 0.0,
        decoy_radius: float = 0.3,
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self._env = simple_adversary_v3.parallel_env(
            N=N, max_cycles=max_cycles, continuous_actions=False, render_mode=render_mode
        )
        self._world = self._env.unwrapped.world
        self.decoy_bonus, self.decoy_radius = float(decoy_bonus), decoy_radius
        self.render_mode = render_mode
        self.possible_agents = list(self._env.possible_agents)
        width = max(self._env.observation_space(a).shape[0] for a in self.possible_agents)
        self._obs_space = spaces.Box(-np.inf, np.inf, (width + 1,), np.float32)
        self._act_space = self._env.action_space(self.possible_agents[0])

    @property
    def agents(self) -> list[str]:
        return self._env.agents

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_space

    def reset(self, seed: int | None = None, options: dict | None = None):
        observations, infos = self._env.reset(seed=seed, options=options)
        return self._pad(observations), infos

    def step(self, actions: dict[str, Any]):
        observations, task, terminations, truncations, infos = self._env.step(actions)
        rewards, labelled = {}, {}
        for agent in infos:
            decoy = self._on_decoy(agent)
            bonus = self.decoy_bonus * decoy
            rewards[agent] = float(task[agent]) + bonus
            labelled[agent] = {
                **infos[agent],
                "behaviour": {"decoy": decoy},
                "role": "adversary" if agent.startswith("adversary") else "good",
                "task_reward": float(task[agent]),
                "bonus_reward": bonus,
            }
        return self._pad(observations), rewards, terminations, truncations, labelled

    def _on_decoy(self, agent: str) -> bool:
        body = next(a for a in self._world.agents if a.name == agent)
        if body.adversary:
            return False
        decoys = [lm for lm in self._world.landmarks if lm is not body.goal_a]
        return any(
            np.linalg.norm(body.state.p_pos - lm.state.p_pos) < self.decoy_radius for lm in decoys
        )

    def _pad(self, observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``[is_good, zeros where mpe2 hides the goal from the adversary, mpe2's observation]``."""
        width = self._obs_space.shape[0]
        return {
            agent: np.concatenate(
                [[float(not agent.startswith("adversary"))], np.zeros(width - 1 - len(obs)), obs]
            ).astype(np.float32)
            for agent, obs in observations.items()
        }

    def render(self) -> np.ndarray | None:
        return self._env.render()

    def close(self) -> None:
        self._env.close()


def parallel_env(**kwargs: Any) -> DecoyAdversary:
    """PettingZoo-style factory; a config names it ``examples.mpe_adversary.decoy:parallel_env``."""
    return DecoyAdversary(**kwargs)
