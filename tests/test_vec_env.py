"""The multi-agent → SB3 seam: slot order, seeding through SB3's seed=, episode ends, labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env  # noqa: F401  (documented API)

from envs.gathering import ZAP, GatheringEnv
from marlmod.vec_env import SharedPolicyVecEnv


def make_venv(copies: int = 2, **kwargs) -> SharedPolicyVecEnv:
    return SharedPolicyVecEnv([lambda: GatheringEnv(grid_size=5, max_cycles=5, **kwargs)] * copies)


def test_slots_are_copy_major_and_match_the_parallel_env() -> None:
    venv = make_venv(copies=2)
    venv.seed(7)
    obs = venv.reset()
    reference = GatheringEnv(grid_size=5, max_cycles=5)
    for k in range(2):
        ref_obs, _ = reference.reset(seed=7 + k)
        for i, agent in enumerate(reference.possible_agents):
            np.testing.assert_array_equal(obs[k * 2 + i], ref_obs[agent])


def test_labels_reach_each_slot_and_all_slots_end_together() -> None:
    venv = make_venv(copies=2, aggression_bonus=1.0)
    venv.seed(0)
    venv.reset()
    for t in range(5):
        obs, rewards, dones, infos = venv.step(np.full(4, ZAP))
        assert all(info["behaviour"]["attack"] in (True, False) for info in infos)
        assert dones.all() == (t == 4) and dones.any() == (t == 4)
    assert all("terminal_observation" in info and info["TimeLimit.truncated"] for info in infos)
    assert obs.shape == (4, venv.observation_space.shape[0])


def test_seed_reproduces_episodes_and_differs_between_seeds() -> None:
    def trajectory(seed: int) -> np.ndarray:
        venv = make_venv()
        venv.seed(seed)
        frames = [venv.reset()]
        rng = np.random.default_rng(0)
        for _ in range(12):  # crosses an automatic reset
            frames.append(venv.step(rng.integers(0, 6, size=4))[0])
        return np.stack(frames)

    np.testing.assert_array_equal(trajectory(3), trajectory(3))
    assert not np.array_equal(trajectory(3), trajectory(4))


def test_sb3_seed_argument_makes_training_reproducible() -> None:
    def trained(seed: int) -> list[torch.Tensor]:
        model = PPO(
            "MlpPolicy",
            make_venv(),
            n_steps=16,
            batch_size=32,
            n_epochs=1,
            policy_kwargs={"net_arch": [8]},
            seed=seed,
            device="cpu",
        )
        model.learn(64)
        return [p.detach().clone() for p in model.policy.parameters()]

    first, second, other = trained(5), trained(5), trained(6)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=False))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=False))


def test_render_mode_is_exposed_for_sb3_and_images_come_from_each_copy() -> None:
    venv = SharedPolicyVecEnv([lambda: GatheringEnv(render_mode="rgb_array")] * 2)
    venv.reset()
    assert venv.render_mode == "rgb_array"
    assert len(venv.get_images()) == 2


def test_per_slot_calls_reach_the_copy_that_owns_the_slot() -> None:
    venv = make_venv(copies=3)  # two agents per copy: slots 2 and 3 are copy 1
    venv.set_attr("marker", "b", indices=[2])
    venv.set_attr("marker", "c", indices=5)
    assert [getattr(env, "marker", None) for env in venv.envs] == [None, "b", "c"]
    assert venv.get_attr("marker", indices=[3, 4]) == ["b", "c"]
    assert (
        venv.env_method("observation_space", "agent_0", indices=[0, 5])
        == [venv.observation_space] * 2
    )
    assert venv.env_is_wrapped(object, indices=[1, 2]) == [False, False]


def test_a_batched_twin_answers_attributes_but_refuses_per_copy_calls() -> None:
    from envs.gathering_batched import BatchedGathering

    twin = BatchedGathering(2, grid_size=5)
    assert twin.get_attr("grid_size", indices=[0, 3]) == [5, 5]
    with pytest.raises(NotImplementedError, match="ppo.vectorised: false"):
        twin.set_attr("grid_size", 6)
    with pytest.raises(NotImplementedError, match="'render'"):
        twin.env_method("render")


def test_an_ended_copy_restarts_and_keeps_its_terminal_observation() -> None:
    """SB3 expects the next episode's first observation, the last one in the info."""
    venv = make_venv(copies=2)
    venv.seed(7)
    venv.reset()
    actions = np.full(4, ZAP)
    for _ in range(5):
        obs, _, dones, infos = venv.step(actions)
    assert dones.all()
    reference = GatheringEnv(grid_size=5, max_cycles=5)
    for k in range(2):
        reference.reset(seed=7 + k)
        for _ in range(5):
            last, *_ = reference.step(dict.fromkeys(reference.agents, ZAP))
        first, _ = reference.reset()  # the copy's own stream continues, unseeded
        for i, agent in enumerate(reference.possible_agents):
            np.testing.assert_array_equal(infos[k * 2 + i]["terminal_observation"], last[agent])
            np.testing.assert_array_equal(obs[k * 2 + i], first[agent])
