"""The batched Gathering twin reproduces SharedPolicyVecEnv over the ParallelEnv exactly."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from envs.gathering import GatheringEnv
from marlmod.config import parse_scenario
from marlmod.fast import batched_venv
from marlmod.fast.gathering import BatchedGathering
from marlmod.train import build_model, make_venv
from marlmod.vec_env import SharedPolicyVecEnv

KWARGS = [
    {},
    {"grid_size": 5, "max_cycles": 7, "n_agents": 3, "aggression_bonus": 1.0},
    # crowded: shared apple cells (eating order), frequent zaps, respawns and regrowth
    {
        "n_agents": 4,
        "grid_size": 3,
        "apple_density": 0.9,
        "respawn_prob": 0.6,
        "zap_range": 1,
        "freeze_steps": 1,
        "view_radius": 2,
        "max_cycles": 11,
        "zap_cost": 0.1,
        "aggression_bonus": 0.5,
    },
]


def assert_same_step(ref: tuple, fast: tuple) -> None:
    for a, b in zip(ref[:3], fast[:3], strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    for info_a, info_b in zip(ref[3], fast[3], strict=True):
        term_a = info_a.pop("terminal_observation", None)
        term_b = info_b.pop("terminal_observation", None)
        assert (term_a is None) == (term_b is None)
        if term_a is not None:
            np.testing.assert_array_equal(term_a, term_b)
        assert info_a == info_b


@pytest.mark.parametrize("kwargs", KWARGS)
@pytest.mark.parametrize("seed", [0, 1, 17])
def test_trajectories_match_the_parallel_env_across_resets(kwargs: dict, seed: int) -> None:
    copies = 3
    ref = SharedPolicyVecEnv([partial(GatheringEnv, **kwargs)] * copies)
    fast = BatchedGathering(copies, **kwargs)
    assert fast.num_envs == ref.num_envs and fast.observation_space == ref.observation_space
    ref.seed(seed), fast.seed(seed)
    np.testing.assert_array_equal(ref.reset(), fast.reset())
    rng = np.random.default_rng(seed)
    resets = 0
    for _ in range(2 * GatheringEnv(**kwargs).max_cycles + 5):  # several automatic resets
        actions = rng.integers(0, 6, size=ref.num_envs)
        ref_step, fast_step = ref.step(actions), fast.step(actions)
        resets += int(ref_step[2].any())
        assert_same_step(ref_step, fast_step)
    assert resets >= 2


def test_reseeding_mid_run_matches_too() -> None:
    ref, fast = SharedPolicyVecEnv([GatheringEnv] * 2), BatchedGathering(2)
    for seed in (3, 4):
        ref.seed(seed), fast.seed(seed)
        np.testing.assert_array_equal(ref.reset(), fast.reset())
        for _ in range(5):
            actions = np.full(4, 5)
            assert_same_step(ref.step(actions), fast.step(actions))


def test_registry_picks_the_twin_only_for_the_exact_class() -> None:
    assert isinstance(batched_venv(partial(GatheringEnv, grid_size=5), 2), BatchedGathering)

    class Variant(GatheringEnv):
        pass

    assert batched_venv(Variant, 2) is None


def test_make_venv_honours_the_vectorised_flag(tiny_dict: dict) -> None:
    make_env = partial(GatheringEnv, grid_size=5, max_cycles=20)
    assert isinstance(make_venv(parse_scenario(tiny_dict), make_env), BatchedGathering)
    tiny_dict["ppo"]["vectorised"] = False
    assert isinstance(make_venv(parse_scenario(tiny_dict), make_env), SharedPolicyVecEnv)


def test_training_on_the_twin_gives_the_same_policy(tiny_dict: dict) -> None:
    """Identical trajectories and seeding mean the fast path changes speed, not results."""
    make_env = partial(GatheringEnv, grid_size=5, max_cycles=20, aggression_bonus=1.0)

    def trained(vectorised: bool) -> list[torch.Tensor]:
        tiny_dict["ppo"]["vectorised"] = vectorised
        model: PPO = build_model(parse_scenario(tiny_dict), make_env, seed=3)
        model.learn(256)
        return [p.detach().clone() for p in model.policy.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(trained(True), trained(False), strict=True))


def test_images_follow_the_reference_renderer() -> None:
    fast = BatchedGathering(2, render_mode="rgb_array")
    fast.seed(0)
    fast.reset()
    ref = GatheringEnv(render_mode="rgb_array")
    ref.reset(seed=1)
    np.testing.assert_array_equal(fast.get_images()[1], ref.render())
