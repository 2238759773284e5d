"""Gathering, B copies stepped at once with NumPy: the fast path for training.

``BatchedGathering`` is an SB3 ``VecEnv`` that behaves exactly like
``SharedPolicyVecEnv([GatheringEnv(**kwargs)] * B)``: same copy-major slot order
(slot ``k * n_agents + i``), same observations, rewards, dones and info labels, same seeding
(copy ``k`` gets ``seed + k``) and the same automatic resets. Exactness comes from keeping one
``np.random.Generator`` per copy, seeded as ``GatheringEnv.reset(seed=...)`` seeds it, and drawing
from it in the same order (reset: apple sites, start cells; step: eating order, respawn cells,
regrowth); everything else is batched over copies. ``tests/test_fast_env.py`` checks the
equivalence, so a change to ``envs/gathering.py`` that this file does not follow fails there.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from envs.gathering import MOVES, ZAP, GatheringEnv


class BatchedGathering(VecEnv):
    """``n_copies`` Gathering games × their agents as SB3 VecEnv slots, stepped as arrays."""

    def __init__(self, n_copies: int, **env_kwargs: Any) -> None:
        if n_copies < 1:
            raise ValueError(f"n_copies must be >= 1, got {n_copies}")
        # The reference env validates the kwargs, supplies the spaces and renders copies.
        self.template = GatheringEnv(**env_kwargs)
        t = self.template
        self.n_copies, self.n_agents, self.g = n_copies, t.n_agents, t.grid_size
        self.render_mode = t.render_mode
        obs_space, act_space = t.observation_space("agent_0"), t.action_space("agent_0")
        super().__init__(n_copies * t.n_agents, obs_space, act_space)
        self._rngs = [seeding.np_random(None)[0] for _ in range(n_copies)]
        self._copy_seeds: list[int | None] = [None] * n_copies
        self._actions = np.zeros(self.num_envs, dtype=np.int64)
        self._init_state()
        self._init_obs_tables()

    @classmethod
    def from_env(cls, env: GatheringEnv, n_copies: int) -> BatchedGathering:
        """Batch copies of ``env``'s configuration (its constructor args are its attributes)."""
        names = [p for p in inspect.signature(GatheringEnv.__init__).parameters if p != "self"]
        return cls(n_copies, **{name: getattr(env, name) for name in names})

    # ------------------------------------------------------------------ state
    def _init_state(self) -> None:
        b, n, g = self.n_copies, self.n_agents, self.g
        self.apple_sites = np.zeros((b, g, g), dtype=bool)
        self.apples = np.zeros((b, g, g), dtype=bool)
        self.positions = np.zeros((b, n, 2), dtype=np.int64)
        self.frozen_for = np.zeros((b, n), dtype=np.int64)
        self.cycle = np.zeros(b, dtype=np.int64)
        self.last_zaps = np.zeros((b, n), dtype=bool)
        self._not_self = ~np.eye(n, dtype=bool)
        self._regrow = np.empty((b, g, g), dtype=np.float64)
        self._order = np.empty((b, n), dtype=np.int64)

    def _init_obs_tables(self) -> None:
        """Flat gather offsets so one ``take_along_axis`` cuts every agent's window."""
        r, g, b = self.template.view_radius, self.g, self.n_copies
        w, p = 2 * r + 1, g + 2 * r
        self._p, self._w, self._r = p, w, r
        c, dy, dx = np.meshgrid(np.arange(3), np.arange(w), np.arange(w), indexing="ij")
        self._offsets = (c * p * p + dy * p + dx).reshape(-1)
        self._centre = w * w + r * w + r  # the agent's own cell in the "others" channel
        self._canvas = np.zeros((b, 3, p, p), dtype=np.float32)
        self._canvas[:, 2] = 1.0
        self._canvas[:, 2, r : r + g, r : r + g] = 0.0
        self._copy_base = (np.arange(b) * p * p)[:, None]

    def _reset_copy(self, k: int) -> None:
        """Exactly ``GatheringEnv.reset``'s draws, on copy ``k``'s generator."""
        t, g, rng = self.template, self.g, self._rngs[k]
        self.apple_sites[k] = rng.random((g, g)) < t.apple_density
        self.apples[k] = self.apple_sites[k]
        cells = rng.choice(g * g, size=self.n_agents, replace=False)
        self.positions[k] = np.stack(np.divmod(cells, g), axis=1)
        self.frozen_for[k] = 0
        self.last_zaps[k] = False
        self.cycle[k] = 0

    # ------------------------------------------------------------------ VecEnv API
    def seed(self, seed: int | None = None) -> list[int | None]:
        """Seed copy ``k`` with ``seed + k`` at the next reset (as ``SharedPolicyVecEnv``)."""
        self._copy_seeds = [None if seed is None else seed + k for k in range(self.n_copies)]
        return list(self._copy_seeds)

    def reset(self) -> np.ndarray:
        for k, seed in enumerate(self._copy_seeds):
            if seed is not None:
                self._rngs[k] = seeding.np_random(seed)[0]
            self._reset_copy(k)
        self._copy_seeds = [None] * self.n_copies
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return self._observations()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        t = self.template
        acts = self._actions.reshape(self.n_copies, self.n_agents).astype(np.int64)
        active = self.frozen_for == 0
        near = self._rivals_in_range(active)
        opportunity = near.any(axis=2) & active
        zaps = active & (acts == ZAP)
        hits_by = near & zaps[:, :, None]  # [copy, zapper, victim]
        victims = hits_by.any(axis=1)
        movers = active & ~victims & ~zaps
        task = self._move_and_eat(acts, movers)
        self._freeze_and_respawn(victims)
        self._regrow_apples()
        self.cycle += 1
        self.last_zaps = zaps

        n_hits = hits_by.sum(axis=2)
        bonus = t.aggression_bonus * n_hits
        cost = t.zap_cost * zaps
        rewards = (task + bonus - cost).astype(np.float32).reshape(-1)
        obs = self._observations()
        infos = _infos(zaps, n_hits > 0, opportunity, task, bonus, cost, self.frozen_for > 0)
        done_copies = self.cycle >= t.max_cycles
        dones = np.repeat(done_copies, self.n_agents)
        if done_copies.any():
            obs = self._finish_episodes(np.flatnonzero(done_copies), obs, infos)
        return obs, rewards, dones, infos

    def _finish_episodes(
        self, copies: np.ndarray, obs: np.ndarray, infos: list[dict[str, Any]]
    ) -> np.ndarray:
        """Keep the terminal observations, then reset the copies (the env only truncates)."""
        for k in copies:
            for slot in range(k * self.n_agents, (k + 1) * self.n_agents):
                infos[slot]["terminal_observation"] = obs[slot].copy()
                infos[slot]["TimeLimit.truncated"] = True
            self._reset_copy(int(k))
        return self._observations()

    # ------------------------------------------------------------------ dynamics, batched
    def _rivals_in_range(self, active: np.ndarray) -> np.ndarray:
        """``[k, i, j]``: active agent j is a rival of active agent i within zap range."""
        pos = self.positions
        gap = np.abs(pos[:, :, None, :] - pos[:, None, :, :]).max(axis=3)
        both = active[:, :, None] & active[:, None, :]
        return (gap <= self.template.zap_range) & both & self._not_self

    def _move_and_eat(self, acts: np.ndarray, movers: np.ndarray) -> np.ndarray:
        """Move, then let the first unfrozen agent (in each copy's drawn order) on an apple eat."""
        target = self.positions + MOVES[acts] * movers[:, :, None]
        self.positions = np.clip(target, 0, self.g - 1)
        order = self._order
        order[:] = np.arange(self.n_agents)
        for k, rng in enumerate(self._rngs):
            rng.shuffle(order[k])  # the draws of GatheringEnv's rng.permutation(n_agents)
        rank = np.argsort(order, axis=1)  # rank[k, i]: when agent i gets to eat
        k_idx = np.arange(self.n_copies)[:, None]
        rows, cols = self.positions[..., 0], self.positions[..., 1]
        eligible = (self.frozen_for == 0) & self.apples[k_idx, rows, cols]
        same_cell = (self.positions[:, :, None, :] == self.positions[:, None, :, :]).all(axis=3)
        earlier = rank[:, None, :] < rank[:, :, None]  # [k, i, j]: j eats before i
        beaten = (same_cell & earlier & eligible[:, None, :]).any(axis=2)
        eaten = eligible & ~beaten
        self.apples[k_idx.repeat(self.n_agents, 1)[eaten], rows[eaten], cols[eaten]] = False
        return eaten.astype(np.float64)

    def _freeze_and_respawn(self, victims: np.ndarray) -> None:
        waking = (self.frozen_for == 1) & ~victims
        self.frozen_for = np.maximum(self.frozen_for - 1, 0)
        self.frozen_for[victims] = self.template.freeze_steps
        for k, i in np.argwhere(waking):  # copy-major, agents ascending: each copy's draw order
            cell = self._rngs[k].integers(self.g * self.g)
            self.positions[k, i] = divmod(int(cell), self.g)

    def _regrow_apples(self) -> None:
        for k, rng in enumerate(self._rngs):
            rng.random(out=self._regrow[k])
        self.apples |= self.apple_sites & (self._regrow < self.template.respawn_prob)

    def _observations(self) -> np.ndarray:
        """Every agent's egocentric window, cut from one padded canvas per copy."""
        b, n, p, r, g = self.n_copies, self.n_agents, self._p, self._r, self.g
        active = self.frozen_for == 0
        canvas = self._canvas
        canvas[:, 0, r : r + g, r : r + g] = self.apples
        rows, cols = self.positions[..., 0], self.positions[..., 1]
        top_left = rows * p + cols  # window origin in padded coordinates
        cells = self._copy_base + top_left + (r * p + r)
        counts = np.bincount(cells[active], minlength=b * p * p).reshape(b, p, p)
        canvas[:, 1] = counts
        flat = canvas.reshape(b, 3 * p * p)
        idx = (top_left[:, :, None] + self._offsets).reshape(b, -1)
        windows = np.take_along_axis(flat, idx, axis=1).reshape(b, n, -1)
        windows[:, :, self._centre] -= active  # an agent is not its own rival
        obs = np.zeros((b, n, windows.shape[2] + 1), dtype=np.float32)
        np.minimum(windows, 1.0, out=obs[:, :, :-1])
        obs[~active] = 0.0
        obs[:, :, -1] = ~active
        return obs.reshape(b * n, -1)

    # ------------------------------------------------------------------ the rest of the VecEnv API
    def close(self) -> None:
        pass

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [self._render_copy(k) for k in range(self.n_copies)]

    def _render_copy(self, k: int) -> np.ndarray | None:
        """Render through the reference env so the picture follows its spec."""
        t = self.template
        t.apple_sites, t.apples = self.apple_sites[k], self.apples[k]
        t.positions, t.frozen_for, t._last_zaps = (
            self.positions[k],
            self.frozen_for[k],
            self.last_zaps[k],
        )
        return t.render()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Configuration attributes of the game (the same for every slot)."""
        return [getattr(self.template, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise NotImplementedError(
            "BatchedGathering copies share one configuration; build a new one (or set "
            "ppo.vectorised: false for per-copy envs)"
        )

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        raise NotImplementedError(
            "BatchedGathering has no per-copy env objects; set ppo.vectorised: false to call "
            f"{method_name!r} on each copy"
        )

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


def _infos(
    attack: np.ndarray,
    hit: np.ndarray,
    opportunity: np.ndarray,
    task: np.ndarray,
    bonus: np.ndarray,
    cost: np.ndarray,
    frozen: np.ndarray,
) -> list[dict[str, Any]]:
    """The per-slot label dicts of ``GatheringEnv.step``, built from ``tolist()`` in one pass."""
    columns = (attack, hit, opportunity, task, bonus, cost, frozen)
    return [
        {
            "behaviour": {"attack": a, "hit": h},
            "opportunity": {"attack": o},
            "task_reward": tr,
            "bonus_reward": br,
            "zap_cost": zc,
            "frozen": f,
        }
        for a, h, o, tr, br, zc, f in zip(*(c.reshape(-1).tolist() for c in columns), strict=True)
    ]
