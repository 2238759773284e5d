"""The multi-agent → SB3 seam: copies of a PettingZoo game as one SB3 ``VecEnv``, copy-major.

Parameter sharing means one policy acts for every agent, so each (copy, agent) pair becomes one
VecEnv slot: slot ``k * n_agents + i`` is agent ``possible_agents[i]`` of copy ``k``.
``CopyMajorVecEnv`` writes that layout, seeding, automatic resets and the per-slot VecEnv API once;
its subclasses only say how copies reset, step and are observed:

* ``SharedPolicyVecEnv``: one ``ParallelEnv`` object per copy, stepped in turn; works for any env.
* ``BatchedTwin``: the base of an env's NumPy-batched twin (e.g. ``envs/gathering_batched.py``),
  which steps every copy at once and equals ``SharedPolicyVecEnv`` step for step
  (tests/test_fast_env.py). An env declares its twin in ``metadata["marlmod"]["batched"]``;
  ``batched_venv`` builds it, for exactly the env class it was written for.

marlmod owns this seam instead of chaining SuperSuit wrappers because SB3's ``seed=`` calls
``VecEnv.seed()`` (which SuperSuit's ConcatVecEnv lacks) and because the behaviour labels in each
agent's ``info`` must reach recorders unchanged.

An agent that finishes before its copy's episode ends sees zeros, gets reward 0 and has its actions
ignored ("black death") until the whole copy resets; every slot of a copy is ``done`` together.
"""

from __future__ import annotations

import inspect
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from marlmod.environments import batched_twin


class CopiesStep(NamedTuple):
    """One step of every copy, as a ``CopyMajorVecEnv`` subclass reports it (slots copy-major)."""

    rewards: np.ndarray  # float32 [num_envs]
    ended: np.ndarray  # bool [n_copies]: the copy's episode is over, so all its slots are done
    truncated: np.ndarray  # bool [num_envs]: ended by a time limit, not a terminal state
    infos: list[dict[str, Any]]  # one per slot; the base adds terminal observations to them


class CopyMajorVecEnv(VecEnv):
    """``n_copies`` copies of a game × ``n_agents`` agents as SB3 VecEnv slots, copy-major.

    Written once here: the slot layout (slot ``k * n_agents + i`` is agent ``i`` of copy ``k``);
    seeding (``seed(s)`` gives copy ``k`` the seed ``s + k`` at the next ``reset``, ``None`` fresh
    entropy); automatic resets (when a copy's episode ends, each of its slots gets
    ``terminal_observation`` and ``TimeLimit.truncated`` in its info and the copy starts anew on its
    own random stream); and the per-slot VecEnv API, each slot addressing the copy that owns it.

    A subclass builds its copies, then calls ``super().__init__(n_copies, n_agents, obs_space,
    act_space)`` (SB3 reads ``render_mode`` through ``get_attr`` there, so ``_copy_env`` must work
    by then), and implements:

    * ``_reset_copy(k, seed)``: start a new episode in copy ``k``. ``seed=None`` continues the
      copy's own random stream (automatic resets); an int reseeds it as ``env.reset(seed=...)``.
    * ``_step_copies(actions)``: step every copy once, ``actions[k, i]`` being agent ``i`` of copy
      ``k`` (``[n_copies, n_agents]``), and return a ``CopiesStep``. Leave ended copies as they
      are: the base reads their terminal observations, then calls ``_reset_copy``.
    * ``_observe()``: every slot's current observation, ``[num_envs, *obs_shape]``, as a new array
      the caller may keep (read after each reset and step, and again after automatic resets).
    * ``_copy_env(k)``: the object holding copy ``k``'s attributes (``get_attr``; also
      ``set_attr``, ``env_method`` and ``close`` when ``per_copy_envs``).
    * ``_render_copy(k)``: copy ``k``'s picture (``get_images``).

    Copies may live anywhere (in worker processes, say) as long as these hold; such a subclass
    overrides the per-slot methods that must reach into a copy.
    """

    #: Each copy is its own env object, so ``set_attr`` and ``env_method`` can address one copy.
    #: A batched twin holds one configuration for all copies and refuses them.
    per_copy_envs: ClassVar[bool] = True

    def __init__(
        self, n_copies: int, n_agents: int, observation_space: gym.Space, action_space: gym.Space
    ) -> None:
        self.n_copies, self.n_agents = n_copies, n_agents
        super().__init__(n_copies * n_agents, observation_space, action_space)
        self._copy_seeds: list[int | None] = [None] * n_copies
        self._actions = np.zeros(self.num_envs, dtype=np.int64)

    # ------------------------------------------------------------------ what a subclass implements
    @abstractmethod
    def _reset_copy(self, k: int, seed: int | None) -> None: ...

    @abstractmethod
    def _step_copies(self, actions: np.ndarray) -> CopiesStep: ...

    @abstractmethod
    def _observe(self) -> np.ndarray: ...

    @abstractmethod
    def _copy_env(self, k: int) -> Any: ...

    @abstractmethod
    def _render_copy(self, k: int) -> np.ndarray | None: ...

    # ------------------------------------------------------------------ seeding, reset, step
    def seed(self, seed: int | None = None) -> list[int | None]:
        """Seed copy ``k`` with ``seed + k`` at the next reset (SB3 calls this for ``seed=``)."""
        self._copy_seeds = [None if seed is None else seed + k for k in range(self.n_copies)]
        return list(self._copy_seeds)

    def reset(self) -> np.ndarray:
        for k, seed in enumerate(self._copy_seeds):
            self._reset_copy(k, seed)
        self._copy_seeds = [None] * self.n_copies
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return self._observe()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        step = self._step_copies(self._actions.reshape(self.n_copies, self.n_agents))
        obs = self._observe()
        ended = np.flatnonzero(step.ended)
        for k in ended:
            for slot in range(k * self.n_agents, (k + 1) * self.n_agents):
                step.infos[slot]["terminal_observation"] = obs[slot].copy()
                step.infos[slot]["TimeLimit.truncated"] = bool(step.truncated[slot])
            self._reset_copy(int(k), None)
        if ended.size:
            obs = self._observe()
        return obs, step.rewards, np.repeat(step.ended, self.n_agents), step.infos

    # ------------------------------------------------------------------ the per-slot VecEnv API
    def _copies_of(self, indices: VecEnvIndices) -> list[int]:
        """The copy owning each addressed slot."""
        return [slot // self.n_agents for slot in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self._copy_env(k), attr_name) for k in self._copies_of(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self._require_per_copy_envs(f"set {attr_name!r}")
        for k in self._copies_of(indices):
            setattr(self._copy_env(k), attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        self._require_per_copy_envs(f"call {method_name!r}")
        return [
            getattr(self._copy_env(k), method_name)(*method_args, **method_kwargs)
            for k in self._copies_of(indices)
        ]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """Copies are PettingZoo envs, never gymnasium wrappers."""
        return [False for _ in self._get_indices(indices)]

    def close(self) -> None:
        distinct = {id(env): env for env in map(self._copy_env, range(self.n_copies))}
        for env in distinct.values():
            env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        """One picture per copy (not per slot: a copy's agents share it)."""
        return [self._render_copy(k) for k in range(self.n_copies)]

    def _require_per_copy_envs(self, what: str) -> None:
        if not self.per_copy_envs:
            raise NotImplementedError(
                f"{type(self).__name__} copies share one configuration and have no per-copy env "
                f"objects, so it cannot {what} per slot; set ppo.vectorised: false for per-copy "
                "envs"
            )


class SharedPolicyVecEnv(CopyMajorVecEnv):
    """One ``ParallelEnv`` per copy, stepped in turn: marlmod's seam for any env."""

    def __init__(self, env_fns: Sequence[Callable[[], ParallelEnv]]) -> None:
        if not env_fns:
            raise ValueError("SharedPolicyVecEnv needs at least one env factory")
        self.envs = [fn() for fn in env_fns]
        self.agents = list(self.envs[0].possible_agents)
        obs_space = self.envs[0].observation_space(self.agents[0])
        act_space = self.envs[0].action_space(self.agents[0])
        _check_shared_spaces(self.envs[0], obs_space, act_space)
        super().__init__(len(self.envs), len(self.agents), obs_space, act_space)
        self._obs = np.zeros((self.num_envs, *obs_space.shape), dtype=obs_space.dtype)

    def _reset_copy(self, k: int, seed: int | None) -> None:
        observations, _ = self.envs[k].reset(seed=seed)
        self._write_obs(k, observations)

    def _step_copies(self, actions: np.ndarray) -> CopiesStep:
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        ended = np.zeros(self.n_copies, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for k, env in enumerate(self.envs):
            base = k * self.n_agents
            live = {a: actions[k, self.agents.index(a)] for a in env.agents}
            observations, step_rewards, terms, truncs, step_infos = env.step(live)
            for i, agent in enumerate(self.agents):
                rewards[base + i] = step_rewards.get(agent, 0.0)
                infos[base + i] = dict(step_infos.get(agent, {}))
                truncated[base + i] = truncs.get(agent, False) and not terms.get(agent, False)
            self._write_obs(k, observations)
            ended[k] = not env.agents
        return CopiesStep(rewards, ended, truncated, infos)

    def _write_obs(self, k: int, observations: dict[str, np.ndarray]) -> None:
        """Copy ``k``'s rows; an agent missing from ``observations`` (finished) sees zeros."""
        base = k * self.n_agents
        for i, agent in enumerate(self.agents):
            if agent in observations:
                self._obs[base + i] = observations[agent]
            else:
                self._obs[base + i] = 0

    def _observe(self) -> np.ndarray:
        return self._obs.copy()

    def _copy_env(self, k: int) -> ParallelEnv:
        return self.envs[k]

    def _render_copy(self, k: int) -> np.ndarray | None:
        return self.envs[k].render()


class BatchedTwin(CopyMajorVecEnv):
    """Base of an env's NumPy-batched twin: every copy stepped at once with arrays, equal to
    ``SharedPolicyVecEnv`` over ``env_class`` step for step (observations, rewards, dones, labels).

    A subclass sets ``env_class`` to the one env class it reproduces: ``batched_venv`` uses the
    twin only when ``type(env) is env_class``, because a subclass or a wrapper may change the
    rules. It implements ``_start_episode(k)`` (the env's ``reset`` on copy ``k``) and the other
    ``CopyMajorVecEnv`` hooks. ``template`` is an ``env_class`` built from the twin's kwargs: it
    validates them, supplies the spaces, answers ``get_attr`` and can render a copy's state.
    ``_rngs[k]`` is copy ``k``'s generator, seeded as ``env_class.reset(seed=...)`` seeds
    ``np_random``, so a twin that draws from it in the env's order reproduces the env exactly.
    """

    env_class: ClassVar[type[ParallelEnv]]
    per_copy_envs = False

    def __init__(self, n_copies: int, **env_kwargs: Any) -> None:
        if n_copies < 1:
            raise ValueError(f"n_copies must be >= 1, got {n_copies}")
        self.template = self.env_class(**env_kwargs)
        agents = self.template.possible_agents
        obs_space = self.template.observation_space(agents[0])
        act_space = self.template.action_space(agents[0])
        self._rngs = [seeding.np_random(None)[0] for _ in range(n_copies)]
        super().__init__(n_copies, len(agents), obs_space, act_space)

    @classmethod
    def from_env(cls, env: ParallelEnv, n_copies: int) -> BatchedTwin:
        """Batch copies of ``env``'s configuration (its constructor args are its attributes)."""
        names = [p for p in inspect.signature(cls.env_class.__init__).parameters if p != "self"]
        return cls(n_copies, **{name: getattr(env, name) for name in names})

    @abstractmethod
    def _start_episode(self, k: int) -> None:
        """Exactly ``env_class.reset``'s work and draws, on copy ``k`` and its generator."""

    def _reset_copy(self, k: int, seed: int | None) -> None:
        if seed is not None:
            self._rngs[k] = seeding.np_random(seed)[0]
        self._start_episode(k)

    def _copy_env(self, k: int) -> ParallelEnv:
        return self.template


def batched_venv(make_env: Callable[[], ParallelEnv], n_copies: int) -> VecEnv | None:
    """``n_copies`` of ``make_env()``'s env as the batched twin it declares, or ``None`` when it
    declares none or is not exactly the class its twin was written for (use per-copy envs then)."""
    probe = make_env()
    try:
        twin = batched_twin(probe)
        return None if twin is None else twin.from_env(probe, n_copies)
    finally:
        probe.close()


def _check_shared_spaces(env: ParallelEnv, obs_space: gym.Space, act_space: gym.Space) -> None:
    """Parameter sharing needs every agent to see and act in the same spaces."""
    for agent in env.possible_agents:
        if env.observation_space(agent) != obs_space or env.action_space(agent) != act_space:
            raise ValueError(
                f"agent {agent!r} has different spaces from {env.possible_agents[0]!r}; "
                "parameter sharing needs identical observation and action spaces"
            )
