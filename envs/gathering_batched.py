"""Gathering, B copies stepped at once with NumPy: the fast path for training.

``BatchedGathering`` is an SB3 ``VecEnv`` that behaves exactly like
``SharedPolicyVecEnv([GatheringEnv(**kwargs)] * B)``: same copy-major slot order
(slot ``k * n_agents + i``), same observations, rewards, dones and info labels, same seeding
(copy ``k`` gets ``seed + k``) and the same automatic resets (the last three come from
``marlmod.vec_env.CopyMajorVecEnv``). Exactness comes from keeping one ``np.random.Generator`` per
copy, seeded as ``GatheringEnv.reset(seed=...)`` seeds it, and drawing from it in the same order
(reset: apple sites, start cells; step: eating order, respawn cells, regrowth); everything else is
batched over copies. ``GatheringEnv`` declares this twin in ``metadata["marlmod"]["batched"]``;
``tests/test_fast_env.py`` checks the equivalence, so a change to ``envs/gathering.py`` that this
file does not follow fails there. Both observation forms are served: ``"planes"`` is the flat
observation reshaped by the env module's own ``flat_to_planes``. Unlike ``envs.gathering``, this
module imports marlmod and SB3, so ``envs`` never imports it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.gathering import MOVES, ZAP, GatheringEnv, flat_to_planes
from marlmod.vec_env import BatchedTwin, CopiesStep


class BatchedGathering(BatchedTwin):
    """``n_copies`` Gathering games × their agents as SB3 VecEnv slots, stepped as arrays."""

    env_class = GatheringEnv

    def __init__(self, n_copies: int, **env_kwargs: Any) -> None:
        super().__init__(n_copies, **env_kwargs)
        self.g = self.template.grid_size
        self._init_state()
        self._init_obs_tables()

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

    def _start_episode(self, k: int) -> None:
        """Exactly ``GatheringEnv.reset``'s draws, on copy ``k``'s generator."""
        t, g, rng = self.template, self.g, self._rngs[k]
        self.apple_sites[k] = rng.random((g, g)) < t.apple_density
        self.apples[k] = self.apple_sites[k]
        cells = rng.choice(g * g, size=self.n_agents, replace=False)
        self.positions[k] = np.stack(np.divmod(cells, g), axis=1)
        self.frozen_for[k] = 0
        self.last_zaps[k] = False
        self.cycle[k] = 0

    # ------------------------------------------------------------------ one step of every copy
    def _step_copies(self, actions: np.ndarray) -> CopiesStep:
        t = self.template
        acts = actions.astype(np.int64)
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
        infos = _infos(zaps, n_hits > 0, opportunity, task, bonus, cost, self.frozen_for > 0)
        ended = self.cycle >= t.max_cycles
        truncated = np.repeat(ended, self.n_agents)  # the game only ends by its time limit
        return CopiesStep(rewards, ended, truncated, infos)

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

    def _observe(self) -> np.ndarray:
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
        obs = obs.reshape(b * n, -1)
        return obs if self.template.observation == "flat" else flat_to_planes(obs)

    # ------------------------------------------------------------------ pictures
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
