"""The multi-agent → SB3 seam: many copies of a PettingZoo ParallelEnv as one SB3 ``VecEnv``.

Parameter sharing means one policy acts for every agent, so each (copy, agent) pair becomes one
VecEnv slot. marlmod owns this seam instead of chaining SuperSuit wrappers because SB3's
``seed=`` calls ``VecEnv.seed()`` (which SuperSuit's ConcatVecEnv lacks) and because the behaviour
labels in each agent's ``info`` must reach recorders unchanged. Slot order is copy-major:
slot ``k * n_agents + i`` is agent ``possible_agents[i]`` of copy ``k``.

An agent that finishes before its copy's episode ends sees zeros, gets reward 0 and has its actions
ignored ("black death") until the whole copy resets; every slot of a copy is ``done`` together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn


class SharedPolicyVecEnv(VecEnv):
    """``n_copies`` ParallelEnvs × their agents as SB3 VecEnv slots, seeded per copy."""

    def __init__(self, env_fns: Sequence[Callable[[], ParallelEnv]]) -> None:
        if not env_fns:
            raise ValueError("SharedPolicyVecEnv needs at least one env factory")
        self.envs = [fn() for fn in env_fns]
        self.agents = list(self.envs[0].possible_agents)
        self.n_agents = len(self.agents)
        obs_space = self.envs[0].observation_space(self.agents[0])
        act_space = self.envs[0].action_space(self.agents[0])
        _check_shared_spaces(self.envs[0], obs_space, act_space)
        self.render_mode = getattr(self.envs[0], "render_mode", None)
        super().__init__(len(self.envs) * self.n_agents, obs_space, act_space)
        self._copy_seeds: list[int | None] = [None] * len(self.envs)
        self._actions = np.zeros(self.num_envs, dtype=np.int64)
        self._obs = np.zeros((self.num_envs, *obs_space.shape), dtype=obs_space.dtype)

    @property
    def n_copies(self) -> int:
        return len(self.envs)

    def seed(self, seed: int | None = None) -> list[int | None]:
        """Seed copy ``k`` with ``seed + k`` at the next reset (SB3 calls this for ``seed=``)."""
        self._copy_seeds = [None if seed is None else seed + k for k in range(self.n_copies)]
        return list(self._copy_seeds)

    def reset(self) -> np.ndarray:
        for k, env in enumerate(self.envs):
            observations, _ = env.reset(seed=self._copy_seeds[k])
            self._write_obs(k, observations)
        self._copy_seeds = [None] * self.n_copies
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return self._obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        dones = np.zeros(self.num_envs, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for k, env in enumerate(self.envs):
            base = k * self.n_agents
            live = list(env.agents)
            actions = {a: self._actions[base + self.agents.index(a)] for a in live}
            observations, step_rewards, terms, truncs, step_infos = env.step(actions)
            for i, agent in enumerate(self.agents):
                rewards[base + i] = step_rewards.get(agent, 0.0)
                infos[base + i] = dict(step_infos.get(agent, {}))
            self._write_obs(k, observations)
            if not env.agents:
                self._finish_episode(k, terms, truncs, dones, infos)
        return self._obs.copy(), rewards, dones, infos

    def _finish_episode(
        self, k: int, terms: dict, truncs: dict, dones: np.ndarray, infos: list[dict[str, Any]]
    ) -> None:
        """Mark every slot of copy ``k`` done, keep its terminal observation, reset the copy."""
        base = k * self.n_agents
        for i, agent in enumerate(self.agents):
            slot = base + i
            dones[slot] = True
            infos[slot]["terminal_observation"] = self._obs[slot].copy()
            infos[slot]["TimeLimit.truncated"] = bool(
                truncs.get(agent, False) and not terms.get(agent, False)
            )
        observations, _ = self.envs[k].reset()
        self._write_obs(k, observations)

    def _write_obs(self, k: int, observations: dict[str, np.ndarray]) -> None:
        base = k * self.n_agents
        for i, agent in enumerate(self.agents):
            if agent in observations:
                self._obs[base + i] = observations[agent]
            else:
                self._obs[base + i] = 0

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [env.render() for env in self.envs]

    # The remaining VecEnv API, addressed per slot; attributes live on the copy that owns the slot.
    def _copies_for(self, indices: VecEnvIndices) -> list[ParallelEnv]:
        return [self.envs[slot // self.n_agents] for slot in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(env, attr_name) for env in self._copies_for(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for env in self._copies_for(indices):
            setattr(env, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        return [
            getattr(env, method_name)(*method_args, **method_kwargs)
            for env in self._copies_for(indices)
        ]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


def _check_shared_spaces(env: ParallelEnv, obs_space: gym.Space, act_space: gym.Space) -> None:
    """Parameter sharing needs every agent to see and act in the same spaces."""
    for agent in env.possible_agents:
        if env.observation_space(agent) != obs_space or env.action_space(agent) != act_space:
            raise ValueError(
                f"agent {agent!r} has different spaces from {env.possible_agents[0]!r}; "
                "parameter sharing needs identical observation and action spaces"
            )
