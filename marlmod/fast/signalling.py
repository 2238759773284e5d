"""Signalling, B copies stepped at once with NumPy: the fast path for training.

``BatchedSignalling`` is an SB3 ``VecEnv`` that behaves exactly like
``SharedPolicyVecEnv([SignallingEnv(**kwargs)] * B)``: same copy-major slot order
(slot ``k * n_agents + i``; the sender is agent 0 of each copy), same observations, rewards, dones
and info labels, same seeding (copy ``k`` gets ``seed + k``) and the same automatic resets.

The game's random stream does not depend on the actions (a listener's random search is drawn
whether it ignores the message or not), so each step makes the same draws in every copy: the
listeners' searches, the next round's resource site and decoy offset, then the value's uniform.
Exactness comes from keeping one ``np.random.Generator`` per copy, seeded as
``SignallingEnv.reset(seed=...)`` seeds it, and making those draws in that order. The bounded
integers of a step come from one ``integers(lows, highs)`` call: NumPy draws each element of it
exactly as it draws a scalar ``integers`` call (one Lemire rejection loop per element; a range of
one value draws nothing), so it is the same stream with fewer Python calls. Everything else —
the pointed site, scoring, rewards, observations — is batched over copies.
``tests/test_fast_env.py`` checks the equivalence, so a change to ``envs/signalling.py`` (or to
NumPy's integer sampling) that this file does not follow fails there.
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

from envs.signalling import FOLLOW, LISTENER, NO_MESSAGE, SENDER, SignallingEnv

OPPORTUNITIES = ("message", "truthful", "lie", "decoy")


class BatchedSignalling(VecEnv):
    """``n_copies`` signalling games × their agents as SB3 VecEnv slots, stepped as arrays."""

    def __init__(self, n_copies: int, **env_kwargs: Any) -> None:
        if n_copies < 1:
            raise ValueError(f"n_copies must be >= 1, got {n_copies}")
        # The reference env validates the kwargs, supplies the spaces and renders copies.
        self.template = SignallingEnv(**env_kwargs)
        t = self.template
        self.n_copies, self.n_listeners, self.n_sites = n_copies, t.n_listeners, t.n_sites
        self.n_agents = 1 + t.n_listeners
        self.render_mode = t.render_mode
        obs_space, act_space = t.observation_space("agent_0"), t.action_space("agent_0")
        super().__init__(n_copies * self.n_agents, obs_space, act_space)
        self._rngs = [seeding.np_random(None)[0] for _ in range(n_copies)]
        self._copy_seeds: list[int | None] = [None] * n_copies
        self._actions = np.zeros(self.num_envs, dtype=np.int64)
        # One step's bounded integers per copy: each listener's search, the site, the decoy offset.
        n, k = self.n_listeners, self.n_sites
        self._lows = np.array([0] * (n + 1) + [1], dtype=np.int64)
        self._highs = np.full(n + 2, k, dtype=np.int64)
        self._draws = np.zeros((n_copies, n + 2), dtype=np.int64)
        self._uniforms = np.zeros(n_copies, dtype=np.float64)
        self._init_state()

    @classmethod
    def from_env(cls, env: SignallingEnv, n_copies: int) -> BatchedSignalling:
        """Batch copies of ``env``'s configuration (its constructor args are its attributes)."""
        names = [p for p in inspect.signature(SignallingEnv.__init__).parameters if p != "self"]
        return cls(n_copies, **{name: getattr(env, name) for name in names})

    # ------------------------------------------------------------------ state
    def _init_state(self) -> None:
        b, n = self.n_copies, self.n_listeners
        self.cycle = np.zeros(b, dtype=np.int64)
        # This round's (the sender sees it) and the previous one's (the listeners decide it).
        self.site = np.zeros(b, dtype=np.int64)
        self.decoy = np.zeros(b, dtype=np.int64)
        self.value = np.zeros(b, dtype=np.float64)
        self.message = np.full(b, NO_MESSAGE, dtype=np.int64)
        self.prev_site = np.full(b, NO_MESSAGE, dtype=np.int64)
        self.prev_decoy = np.full(b, NO_MESSAGE, dtype=np.int64)
        self.prev_value = np.zeros(b, dtype=np.float64)
        # The round scored last step, for rendering (``SignallingEnv._last_round``).
        self.last_site = np.full(b, NO_MESSAGE, dtype=np.int64)
        self.last_decoy = np.full(b, NO_MESSAGE, dtype=np.int64)
        self.last_value = np.zeros(b, dtype=np.float64)
        self.last_message = np.full(b, NO_MESSAGE, dtype=np.int64)
        self.last_choices = np.zeros((b, n), dtype=np.int64)
        self.last_scored = np.zeros(b, dtype=bool)
        self._copy_idx = np.arange(b)
        self._sites = np.arange(self.n_sites)

    def _reset_copy(self, k: int) -> None:
        """Exactly ``SignallingEnv.reset``: clear the pipeline, draw the first round."""
        self.cycle[k] = 0
        self.message[k] = self.prev_site[k] = self.prev_decoy[k] = NO_MESSAGE
        self.prev_value[k] = 0.0
        self.last_site[k] = self.last_decoy[k] = self.last_message[k] = NO_MESSAGE
        self.last_value[k] = 0.0
        self.last_scored[k] = False
        rng = self._rngs[k]
        site = rng.integers(self.n_sites, size=1)  # ``_draw_round``'s three draws, in its order
        offset = rng.integers(1, self.n_sites, size=1)
        self._set_round(np.array([k]), site, offset, rng.random(size=1))

    def _set_round(
        self, copies: np.ndarray, site: np.ndarray, offset: np.ndarray, uniform: np.ndarray
    ) -> None:
        """``SignallingEnv._draw_round`` from its draws: decoy = site + offset, value by the
        uniform."""
        t = self.template
        self.site[copies] = site
        self.decoy[copies] = (site + offset) % self.n_sites
        self.value[copies] = np.where(uniform < t.low_prob, t.low_value, t.high_value)

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
        t, n = self.template, self.n_listeners
        acts = self._actions.reshape(self.n_copies, self.n_agents).astype(np.int64)
        message = self._pointed_site(acts[:, 0])
        acted = acts[:, 1:] == FOLLOW
        self._draw_step()
        searched = self._draws[:, :n]

        # Score the round whose message the listeners just saw (``SignallingEnv._score``).
        choices = np.where(acted, self.message[:, None], searched)
        scored = self.message != NO_MESSAGE
        followed = scored[:, None] & acted
        lured = followed & (self.message == self.prev_decoy)[:, None]
        misled = followed & (self.message != self.prev_site)[:, None]
        correct = scored[:, None] & (choices == self.prev_site[:, None])
        # value × fraction, in the reference's order of operations, so the floats are identical
        task = self.prev_value * (correct.sum(axis=1) / n)
        bonus = t.deception_bonus * (lured.sum(axis=1) / n)
        value = np.where(scored, self.prev_value, 0.0)
        self.last_site[:], self.last_decoy[:], self.last_value[:] = (
            self.prev_site,
            self.prev_decoy,
            self.prev_value,
        )
        self.last_message[:], self.last_choices[:], self.last_scored[:] = (
            self.message,
            choices,
            scored,
        )
        truthful, decoy = message == self.site, message == self.decoy

        # The new message is about this round, which listeners decide next step; draw the next.
        self.message, self.prev_site, self.prev_decoy, self.prev_value = (
            message,
            self.site.copy(),
            self.decoy.copy(),
            self.value.copy(),
        )
        self._set_round(self._copy_idx, self._draws[:, n], self._draws[:, n + 1], self._uniforms)
        self.cycle += 1

        rewards = np.repeat(task[:, None], self.n_agents, axis=1)
        rewards[:, 0] += bonus
        obs = self._observations()
        infos = _infos(truthful, decoy, followed, misled, task, bonus, value)
        done_copies = self.cycle >= t.max_cycles
        dones = np.repeat(done_copies, self.n_agents)
        if done_copies.any():
            obs = self._finish_episodes(np.flatnonzero(done_copies), obs, infos)
        return obs, rewards.astype(np.float32).reshape(-1), dones, infos

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
    def _draw_step(self) -> None:
        """One step's draws on each copy's generator, in ``SignallingEnv.step``'s order: the
        searches (``_score``), then the next round's site, decoy offset and uniform."""
        lows, highs, draws, uniforms = self._lows, self._highs, self._draws, self._uniforms
        for k, rng in enumerate(self._rngs):
            draws[k] = rng.integers(lows, highs)
            uniforms[k] = rng.random()

    def _pointed_site(self, actions: np.ndarray) -> np.ndarray:
        """Each sender's pointed site: its action indexes (resource, decoy, the others in
        ascending order), as ``SignallingEnv._pointed_site``'s list does."""
        sites = self._sites[None, :]
        rank = np.where(
            sites == self.site[:, None], 0, np.where(sites == self.decoy[:, None], 1, sites + 2)
        )
        frame = np.argsort(rank, axis=1)
        return frame[self._copy_idx, actions]

    def _observations(self) -> np.ndarray:
        """The sender's and the listeners' rows of every copy (module docstring of the env)."""
        b, k, idx = self.n_copies, self.n_sites, self._copy_idx
        obs = np.zeros((b, self.n_agents, 4 + 3 * k), dtype=np.float32)
        sender = obs[:, 0]
        sender[:, 0] = 1.0
        sender[idx, 2 + self.site] = 1.0
        sender[idx, 2 + k + (self.value == self.template.high_value)] = 1.0
        sender[idx, 4 + k + self.site] = 1.0
        sender[idx, 4 + k + self.decoy] = 1.0
        listener = np.zeros((b, 4 + 3 * k), dtype=np.float32)
        listener[:, 1] = 1.0
        sent = np.flatnonzero(self.message != NO_MESSAGE)
        listener[sent, 4 + k + self.prev_site[sent]] = 1.0
        listener[sent, 4 + k + self.prev_decoy[sent]] = 1.0
        listener[sent, 4 + 2 * k + self.message[sent]] = 1.0
        obs[:, 1:] = listener[:, None]
        return obs.reshape(b * self.n_agents, -1)

    # ------------------------------------------------------------------ the rest of the VecEnv API
    def close(self) -> None:
        pass

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [self._render_copy(k) for k in range(self.n_copies)]

    def _render_copy(self, k: int) -> np.ndarray | None:
        """Render through the reference env so the picture follows its spec."""
        self.template._last_round = (
            int(self.last_site[k]),
            int(self.last_decoy[k]),
            float(self.last_value[k]),
            int(self.last_message[k]),
            self.last_choices[k].copy() if self.last_scored[k] else None,
        )
        return self.template.render()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Configuration attributes of the game (the same for every slot)."""
        return [getattr(self.template, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise NotImplementedError(
            "BatchedSignalling copies share one configuration; build a new one (or set "
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
            "BatchedSignalling has no per-copy env objects; set ppo.vectorised: false to call "
            f"{method_name!r} on each copy"
        )

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


def _infos(
    truthful: np.ndarray,
    decoy: np.ndarray,
    followed: np.ndarray,
    misled: np.ndarray,
    task: np.ndarray,
    bonus: np.ndarray,
    value: np.ndarray,
) -> list[dict[str, Any]]:
    """The per-slot label dicts of ``SignallingEnv.step`` (sender first, then its listeners),
    built from ``tolist()`` so they hold Python bools and floats as the reference's do."""
    infos: list[dict[str, Any]] = []
    columns = (
        truthful,
        decoy,
        followed.any(axis=1),
        misled.any(axis=1),
        followed,
        misled,
        task,
        bonus,
        value,
    )
    for tr, dc, s_fol, s_mis, l_fol, l_mis, ta, bo, va in zip(
        *(c.tolist() for c in columns), strict=True
    ):
        infos.append(
            {
                "role": SENDER,
                "behaviour": {
                    "message": True,
                    "truthful": tr,
                    "lie": not tr,
                    "decoy": dc,
                    "followed": s_fol,
                    "misled": s_mis,
                },
                "opportunity": dict.fromkeys(OPPORTUNITIES, True),
                "task_reward": ta,
                "bonus_reward": bo,
                "value": va,
            }
        )
        infos.extend(
            {
                "role": LISTENER,
                "behaviour": {
                    "message": False,
                    "truthful": False,
                    "lie": False,
                    "decoy": False,
                    "followed": fol,
                    "misled": mis,
                },
                "opportunity": dict.fromkeys(OPPORTUNITIES, False),
                "task_reward": ta,
                "bonus_reward": 0.0,
                "value": va,
            }
            for fol, mis in zip(l_fol, l_mis, strict=True)
        )
    return infos
