"""The plain SuperSuit route to SB3, with the two gaps that stop it working out of the box closed.

``pettingzoo_env_to_vec_env_v1`` + ``concat_vec_envs_v1(..., base_class="stable_baselines3")`` is
the usual way to train a ParallelEnv with SB3 and parameter sharing; marlmod's benchmarks compare
against it. Used as is, it falls short in three ways that ``supersuit_venv`` fixes:

* SuperSuit reads ``env.render_mode``; an env without that attribute gets ``None``.
* SB3's ``seed=`` calls ``VecEnv.seed()``, which SuperSuit's ``ConcatVecEnv`` lacks
  (AttributeError). ``SeedableSB3VecEnv.seed`` stores the seed and hands it to the next reset,
  where SuperSuit seeds copy ``k`` with ``seed + k`` (``SharedPolicyVecEnv``'s convention).
* Copies are cloudpickled from one env, so unseeded copies share one RNG state and play the same
  game. The first reset is therefore always seeded (from fresh entropy when no seed was given).

It also restores ``TimeLimit.truncated`` in the infos of finished slots (SuperSuit's SB3 wrapper
folds truncation into ``done``), so SB3 bootstraps time-limit ends as ``SharedPolicyVecEnv`` does.
Slot order is copy-major, as in ``SharedPolicyVecEnv``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import supersuit as ss
from pettingzoo import ParallelEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn
from supersuit.vector.sb3_vector_wrapper import SB3VecEnvWrapper


class SeedableSB3VecEnv(SB3VecEnvWrapper):
    """SuperSuit's SB3 wrapper plus ``seed()`` (applied at the next reset) and truncation flags."""

    def __init__(self, venv, n_agents: int) -> None:  # venv: SuperSuit's ConcatVecEnv
        super().__init__(venv)
        self.n_agents = n_agents
        self._next_seed: int | None = int(np.random.SeedSequence().generate_state(1)[0])

    def seed(self, seed: int | None = None) -> list[int | None]:
        """Seed copy ``k`` with ``seed + k`` at the next reset (SB3 calls this for ``seed=``)."""
        self._next_seed = seed
        return [None if seed is None else seed + s // self.n_agents for s in range(self.num_envs)]

    def reset(self) -> np.ndarray:
        observations, self.reset_infos = self.venv.reset(seed=self._next_seed)
        self._next_seed = None
        return observations

    def step_wait(self) -> VecEnvStepReturn:
        observations, rewards, terminations, truncations, infos = self.venv.step_wait()
        dones = np.logical_or(terminations, truncations)
        for slot in np.flatnonzero(dones):
            infos[slot]["TimeLimit.truncated"] = bool(truncations[slot] and not terminations[slot])
        return observations, rewards, dones, infos


def supersuit_venv(make_env: Callable[[], ParallelEnv], n_copies: int) -> SeedableSB3VecEnv:
    """``n_copies`` of ``make_env()`` through SuperSuit, as a seedable SB3 VecEnv."""
    env = make_env()
    if not hasattr(env, "render_mode"):
        env.render_mode = None
    markov = ss.pettingzoo_env_to_vec_env_v1(env)
    concat = ss.concat_vec_envs_v1(markov, n_copies, num_cpus=0, base_class="gymnasium")
    return SeedableSB3VecEnv(concat, n_agents=len(env.possible_agents))
