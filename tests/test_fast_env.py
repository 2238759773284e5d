"""The batched twins reproduce SharedPolicyVecEnv over their ParallelEnvs exactly."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv

from envs.gathering import GatheringEnv
from envs.gathering_batched import BatchedGathering
from envs.signalling import SignallingEnv
from envs.signalling_batched import BatchedSignalling
from marlmod.config import parse_scenario
from marlmod.train import build_model, make_venv
from marlmod.vec_env import SharedPolicyVecEnv, batched_venv

GATHERING_KWARGS = [
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
    # image planes for a CNN policy: the same observations reshaped, frozen flag as a plane
    {
        "observation": "planes",
        "n_agents": 3,
        "grid_size": 4,
        "freeze_steps": 2,
        "max_cycles": 9,
        "aggression_bonus": 1.0,
        "zap_range": 3,
    },
]
SIGNALLING_KWARGS = [
    {},  # the cooperative variant
    {"deception_bonus": 0.5, "max_cycles": 6},
    # two sites (both candidates: the decoy offset draws nothing), several listeners
    {"n_sites": 2, "n_listeners": 3, "low_prob": 0.5, "deception_bonus": 1.0, "max_cycles": 5},
    {
        "n_sites": 7,
        "n_listeners": 2,
        "low_value": 0.3,
        "high_value": 0.7,
        "low_prob": 0.8,
        "deception_bonus": 0.25,
        "max_cycles": 9,
    },
    # one value only: every round reads "high"; every round is low by the draw
    {"low_value": 1.0, "high_value": 1.0, "low_prob": 1.0, "n_listeners": 2, "max_cycles": 3},
]
CASES = [
    *(
        pytest.param(GatheringEnv, BatchedGathering, kw, id=f"gathering-{i}")
        for i, kw in enumerate(GATHERING_KWARGS)
    ),
    *(
        pytest.param(SignallingEnv, BatchedSignalling, kw, id=f"signalling-{i}")
        for i, kw in enumerate(SIGNALLING_KWARGS)
    ),
]
TWINS = [
    pytest.param(GatheringEnv, BatchedGathering, id="gathering"),
    pytest.param(SignallingEnv, BatchedSignalling, id="signalling"),
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
        assert_same_types(info_a, info_b)


def assert_same_types(a: object, b: object) -> None:
    """Labels keep the reference's Python types (a NumPy bool or float would compare equal
    but serialise differently)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        for key in a:
            assert_same_types(a[key], b[key])


@pytest.mark.parametrize(("env_cls", "twin_cls", "kwargs"), CASES)
@pytest.mark.parametrize("seed", [0, 1, 17])
def test_trajectories_match_the_parallel_env_across_resets(
    env_cls: type, twin_cls: type[VecEnv], kwargs: dict, seed: int
) -> None:
    copies = 3
    ref = SharedPolicyVecEnv([partial(env_cls, **kwargs)] * copies)
    fast = twin_cls(copies, **kwargs)
    assert fast.num_envs == ref.num_envs and fast.observation_space == ref.observation_space
    assert fast.action_space == ref.action_space
    ref.seed(seed), fast.seed(seed)
    np.testing.assert_array_equal(ref.reset(), fast.reset())
    rng = np.random.default_rng(seed)
    resets = 0
    for _ in range(2 * env_cls(**kwargs).max_cycles + 5):  # several automatic resets
        actions = rng.integers(0, ref.action_space.n, size=ref.num_envs)
        ref_step, fast_step = ref.step(actions), fast.step(actions)
        resets += int(ref_step[2].any())
        assert_same_step(ref_step, fast_step)
    assert resets >= 2


@pytest.mark.parametrize(("env_cls", "twin_cls"), TWINS)
def test_reseeding_mid_run_matches_too(env_cls: type, twin_cls: type[VecEnv]) -> None:
    ref, fast = SharedPolicyVecEnv([env_cls] * 2), twin_cls(2)
    for seed in (3, 4):
        ref.seed(seed), fast.seed(seed)
        np.testing.assert_array_equal(ref.reset(), fast.reset())
        for _ in range(5):
            actions = np.full(ref.num_envs, ref.action_space.n - 1)
            assert_same_step(ref.step(actions), fast.step(actions))


def test_signalling_labels_are_exercised() -> None:
    """The equality above covers lies, decoys, following and bonuses, not only quiet rounds."""
    kwargs = {"deception_bonus": 0.5, "n_listeners": 2, "max_cycles": 6}
    ref = SharedPolicyVecEnv([partial(SignallingEnv, **kwargs)] * 4)
    fast = BatchedSignalling(4, **kwargs)
    ref.seed(0), fast.seed(0)
    np.testing.assert_array_equal(ref.reset(), fast.reset())
    rng = np.random.default_rng(0)
    seen: set[str] = set()
    for _ in range(40):
        actions = rng.integers(0, 2, size=ref.num_envs)  # truth or decoy; follow or ignore
        ref_step, fast_step = ref.step(actions), fast.step(actions)
        for info in ref_step[3]:
            seen |= {key for key, flag in info["behaviour"].items() if flag}
            seen |= {"bonus"} if info["bonus_reward"] > 0 else set()
        assert_same_step(ref_step, fast_step)
    assert seen == {"message", "truthful", "lie", "decoy", "followed", "misled", "bonus"}


def test_registry_picks_the_twin_only_for_the_exact_class() -> None:
    assert isinstance(batched_venv(partial(GatheringEnv, grid_size=5), 2), BatchedGathering)

    class Variant(GatheringEnv):
        pass

    assert batched_venv(Variant, 2) is None

    signalling = batched_venv(partial(SignallingEnv, n_sites=3, deception_bonus=0.5), 2)
    assert isinstance(signalling, BatchedSignalling)
    assert (signalling.n_sites, signalling.template.deception_bonus) == (3, 0.5)

    class SignallingVariant(SignallingEnv):
        pass

    assert batched_venv(SignallingVariant, 2) is None


@pytest.mark.parametrize(
    ("make_env", "twin_cls"),
    [
        pytest.param(partial(GatheringEnv, grid_size=5, max_cycles=20), BatchedGathering, id="g"),
        pytest.param(partial(SignallingEnv, max_cycles=20), BatchedSignalling, id="s"),
    ],
)
def test_make_venv_honours_the_vectorised_flag(
    tiny_dict: dict, make_env: partial, twin_cls: type[VecEnv]
) -> None:
    assert isinstance(make_venv(parse_scenario(tiny_dict), make_env), twin_cls)
    tiny_dict["ppo"]["vectorised"] = False
    assert isinstance(make_venv(parse_scenario(tiny_dict), make_env), SharedPolicyVecEnv)


@pytest.mark.parametrize(
    "make_env",
    [
        pytest.param(partial(GatheringEnv, grid_size=5, max_cycles=20, aggression_bonus=1.0)),
        pytest.param(partial(SignallingEnv, max_cycles=10, deception_bonus=0.5)),
    ],
    ids=["gathering", "signalling"],
)
def test_training_on_the_twin_gives_the_same_policy(tiny_dict: dict, make_env: partial) -> None:
    """Identical trajectories and seeding mean the fast path changes speed, not results."""

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


def test_signalling_images_follow_the_reference_renderer() -> None:
    kwargs = {"render_mode": "rgb_array", "n_listeners": 2, "max_cycles": 4}
    ref = SharedPolicyVecEnv([partial(SignallingEnv, **kwargs)] * 2)
    fast = BatchedSignalling(2, **kwargs)
    ref.seed(5), fast.seed(5)
    ref.reset(), fast.reset()
    rng = np.random.default_rng(5)
    for _ in range(6):  # before the first scored round, during, and across a reset
        for a, b in zip(ref.get_images(), fast.get_images(), strict=True):
            np.testing.assert_array_equal(a, b)
        actions = rng.integers(0, 2, size=ref.num_envs)
        ref.step(actions), fast.step(actions)
