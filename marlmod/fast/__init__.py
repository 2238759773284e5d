"""Fast paths: NumPy-batched twins of ParallelEnvs, registered by env class.

A batched twin steps every copy at once behind an SB3 ``VecEnv`` and must reproduce
``SharedPolicyVecEnv`` over the ParallelEnv exactly (tests/test_fast_env.py checks each twin).
``batched_venv`` returns ``None`` for an env without a twin, or one wrapped in anything, so the
caller falls back to ``SharedPolicyVecEnv``.
"""

from __future__ import annotations

from collections.abc import Callable

from pettingzoo import ParallelEnv
from stable_baselines3.common.vec_env import VecEnv

from envs.gathering import GatheringEnv
from envs.signalling import SignallingEnv
from marlmod.fast.gathering import BatchedGathering
from marlmod.fast.signalling import BatchedSignalling

BatchedFactory = Callable[[ParallelEnv, int], VecEnv]

BATCHED: dict[type[ParallelEnv], BatchedFactory] = {
    GatheringEnv: BatchedGathering.from_env,
    SignallingEnv: BatchedSignalling.from_env,
}


def batched_venv(make_env: Callable[[], ParallelEnv], n_copies: int) -> VecEnv | None:
    """The batched twin of ``make_env()``'s env with ``n_copies`` copies, or ``None``."""
    probe = make_env()
    try:
        factory = BATCHED.get(type(probe))  # exact type: a subclass or wrapper may change rules
        return None if factory is None else factory(probe, n_copies)
    finally:
        probe.close()
