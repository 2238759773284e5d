"""Signalling, B copies stepped at once with NumPy: the fast path for training.

``BatchedSignalling`` is an SB3 ``VecEnv`` that behaves exactly like
``SharedPolicyVecEnv([SignallingEnv(**kwargs)] * B)``: same copy-major slot order
(slot ``k * n_agents + i``; the sender is agent 0 of each copy), same observations, rewards, dones
and info labels, same seeding (copy ``k`` gets ``seed + k``) and the same automatic resets (the
last three come from ``marlmod.vec_env.CopyMajorVecEnv``).

The game's random stream does not depend on the actions (a listener's random search is drawn
whether it ignores the message or not), so each step makes the same draws in every copy: the
listeners' searches, the next round's resource site and decoy offset, then the value's uniform.
Exactness comes from keeping one ``np.random.Generator`` per copy, seeded as
``SignallingEnv.reset(seed=...)`` seeds it, and making those draws in that order. The bounded
integers of a step come from one ``integers(lows, highs)`` call: NumPy draws each element of it
exactly as it draws a scalar ``integers`` call (one Lemire rejection loop per element; a range of
one value draws nothing), so it is the same stream with fewer Python calls. Everything else —
the pointed site, scoring, rewards, observations — is batched over copies.
``SignallingEnv`` declares this twin in ``metadata["marlmod"]["batched"]``;
``tests/test_fast_env.py`` checks the equivalence, so a change to ``envs/signalling.py`` (or to
NumPy's integer sampling) that this file does not follow fails there. Unlike ``envs.signalling``,
this module imports marlmod and SB3, so ``envs`` never imports it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.signalling import FOLLOW, LISTENER, NO_MESSAGE, SENDER, SignallingEnv
from marlmod.vec_env import BatchedTwin, CopiesStep

OPPORTUNITIES = ("message", "truthful", "lie", "decoy")


class BatchedSignalling(BatchedTwin):
    """``n_copies`` signalling games × their agents as SB3 VecEnv slots, stepped as arrays."""

    env_class = SignallingEnv

    def __init__(self, n_copies: int, **env_kwargs: Any) -> None:
        super().__init__(n_copies, **env_kwargs)
        self.n_listeners, self.n_sites = self.template.n_listeners, self.template.n_sites
        # One step's bounded integers per copy: each listener's search, the site, the decoy offset.
        n, k = self.n_listeners, self.n_sites
        self._lows = np.array([0] * (n + 1) + [1], dtype=np.int64)
        self._highs = np.full(n + 2, k, dtype=np.int64)
        self._draws = np.zeros((n_copies, n + 2), dtype=np.int64)
        self._uniforms = np.zeros(n_copies, dtype=np.float64)
        self._init_state()

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

    def _start_episode(self, k: int) -> None:
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

    # ------------------------------------------------------------------ one step of every copy
    def _step_copies(self, actions: np.ndarray) -> CopiesStep:
        t, n = self.template, self.n_listeners
        acts = actions.astype(np.int64)
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
        infos = _infos(truthful, decoy, followed, misled, task, bonus, value)
        ended = self.cycle >= t.max_cycles
        truncated = np.repeat(ended, self.n_agents)  # the game only ends by its time limit
        return CopiesStep(rewards.astype(np.float32).reshape(-1), ended, truncated, infos)

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

    def _observe(self) -> np.ndarray:
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

    # ------------------------------------------------------------------ pictures
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
