"""The plain SuperSuit route: SB3's seed= works through it and matches marlmod's own seam."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from envs.gathering import GatheringEnv
from marlmod.vec_env import SharedPolicyVecEnv

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
MAKE_ENV = partial(GatheringEnv, grid_size=5, max_cycles=5)


@pytest.fixture
def supersuit_venv(monkeypatch: pytest.MonkeyPatch):
    """The route lives with the benchmark that uses it (scripts, not an installed package)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from supersuit_route import supersuit_venv

    return supersuit_venv


def train(venv, seed: int) -> list[torch.Tensor]:
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=16,
        batch_size=32,
        n_epochs=1,
        policy_kwargs={"net_arch": [8]},
        seed=seed,
        device="cpu",
    )
    model.learn(64)
    return [p.detach().clone() for p in model.policy.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_sb3_seed_argument_works_and_is_reproducible(supersuit_venv) -> None:
    first, second = train(supersuit_venv(MAKE_ENV, 2), 5), train(supersuit_venv(MAKE_ENV, 2), 5)
    assert same(first, second)
    assert not same(first, train(supersuit_venv(MAKE_ENV, 2), 6))


def test_seeded_route_trains_exactly_like_shared_policy_vec_env(supersuit_venv) -> None:
    shared = SharedPolicyVecEnv([MAKE_ENV] * 2)
    assert same(train(supersuit_venv(MAKE_ENV, 2), 5), train(shared, 5))


def test_truncation_is_flagged_and_unseeded_copies_differ(supersuit_venv) -> None:
    venv = supersuit_venv(MAKE_ENV, 4)
    obs = venv.reset()
    assert len({o.tobytes() for o in obs.reshape(4, -1)}) > 1  # copies not clones of one game
    for _ in range(5):
        _, _, dones, infos = venv.step(np.zeros(venv.num_envs, dtype=np.int64))
    assert dones.all() and all(info["TimeLimit.truncated"] for info in infos)


def test_env_without_render_mode_is_accepted(supersuit_venv) -> None:
    def bare() -> GatheringEnv:
        env = MAKE_ENV()
        del env.render_mode
        return env

    assert supersuit_venv(bare, 2).reset().shape[0] == 4
