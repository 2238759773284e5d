"""The Gathering env: PettingZoo conformance and the behaviour labels on hand-built situations."""

from __future__ import annotations

import numpy as np
import pettingzoo
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

import envs
from envs.gathering import DOWN, STAY, ZAP, GatheringEnv, flat_to_planes


def placed(positions: list[tuple[int, int]], **kwargs) -> GatheringEnv:
    """An env with agents at ``positions`` and no apples anywhere (unless re-added)."""
    env = GatheringEnv(n_agents=len(positions), apple_density=0.0, **kwargs)
    env.reset(seed=0)
    env.positions = np.array(positions, dtype=np.int64)
    return env


def test_registered_and_passes_pettingzoo_api_test() -> None:
    env = pettingzoo.make("parallel", envs.GATHERING_ID, aggression_bonus=1.0)
    parallel_api_test(env, num_cycles=300)


def test_same_seed_same_trajectory() -> None:
    parallel_seed_test(lambda: GatheringEnv(aggression_bonus=1.0, n_agents=3))


def test_zap_in_range_is_a_hit_with_bonus_and_freezes_the_victim() -> None:
    env = placed([(0, 0), (1, 2)], zap_range=2, aggression_bonus=2.5, zap_cost=0.3)
    _, rewards, _, _, infos = env.step({"agent_0": ZAP, "agent_1": STAY})
    assert infos["agent_0"]["behaviour"] == {"attack": True, "hit": True}
    assert infos["agent_0"]["opportunity"] == {"attack": True}
    assert infos["agent_0"]["bonus_reward"] == 2.5
    assert infos["agent_0"]["task_reward"] == 0.0
    assert rewards["agent_0"] == pytest.approx(2.5 - 0.3)
    assert infos["agent_1"]["frozen"] and infos["agent_1"]["behaviour"]["attack"] is False


def test_zap_out_of_range_is_an_attack_but_not_a_hit() -> None:
    env = placed([(0, 0), (4, 4)], zap_range=2, aggression_bonus=1.0)
    _, rewards, _, _, infos = env.step({"agent_0": ZAP, "agent_1": STAY})
    assert infos["agent_0"]["behaviour"] == {"attack": True, "hit": False}
    assert infos["agent_0"]["opportunity"] == {"attack": False}
    assert infos["agent_0"]["bonus_reward"] == 0.0
    assert rewards["agent_0"] == pytest.approx(-env.zap_cost)


def test_cooperative_variant_pays_no_bonus() -> None:
    env = placed([(0, 0), (0, 1)], aggression_bonus=0.0)
    _, _, _, _, infos = env.step({"agent_0": ZAP, "agent_1": STAY})
    assert infos["agent_0"]["behaviour"]["hit"] and infos["agent_0"]["bonus_reward"] == 0.0


def test_frozen_agent_cannot_attack_and_wakes_after_freeze_steps() -> None:
    env = placed([(0, 0), (0, 1)], freeze_steps=3)
    env.step({"agent_0": ZAP, "agent_1": STAY})
    for _ in range(2):
        _, _, _, _, infos = env.step({"agent_0": STAY, "agent_1": ZAP})
        assert infos["agent_1"]["frozen"] and not infos["agent_1"]["behaviour"]["attack"]
    _, _, _, _, infos = env.step({"agent_0": STAY, "agent_1": STAY})
    assert not infos["agent_1"]["frozen"]


def test_eating_an_apple_is_task_reward_not_bonus() -> None:
    env = placed([(0, 0), (4, 4)], aggression_bonus=5.0)
    env.apples[1, 0] = True
    _, rewards, _, _, infos = env.step({"agent_0": DOWN, "agent_1": STAY})
    assert infos["agent_0"]["task_reward"] == 1.0 and infos["agent_0"]["bonus_reward"] == 0.0
    assert rewards["agent_0"] == 1.0


def test_observation_shows_rival_in_egocentric_window() -> None:
    env = placed([(3, 3), (3, 4)], view_radius=1)
    obs = env._observations()["agent_0"]
    window = obs[:-1].reshape(3, 3, 3)
    assert window[1, 1, 2] == 1.0  # rival one cell to the right
    assert window[1].sum() == 1.0 and obs[-1] == 0.0


def test_planes_are_the_flat_observation_as_maps_with_the_frozen_flag_as_a_plane() -> None:
    """``observation="planes"`` (for a CNN) carries exactly the flat numbers, channel-first, and
    the frozen flag as a fourth constant plane; the default stays the flat vector."""
    flat, planes = (
        placed([(3, 3), (3, 4)], view_radius=1),
        placed([(3, 3), (3, 4)], view_radius=1, observation="planes"),
    )
    assert flat.observation_space("agent_0").shape == (28,)
    assert planes.observation_space("agent_0").shape == (4, 3, 3)
    seen = []
    for action in (STAY, ZAP):  # agent_1 is frozen by the zap
        a = flat.step({"agent_0": action, "agent_1": STAY})[0]
        b = planes.step({"agent_0": action, "agent_1": STAY})[0]
        for agent in a:
            assert planes.observation_space(agent).contains(b[agent])
            np.testing.assert_array_equal(b[agent][:3].reshape(-1), a[agent][:-1])
            assert (b[agent][3] == a[agent][-1]).all()
        seen.append(b)
    assert seen[0]["agent_0"][1, 1, 2] == 1.0  # the rival, one cell to the right
    assert (seen[0]["agent_1"][3] == 0.0).all() and (seen[1]["agent_1"][3] == 1.0).all()
    assert (seen[1]["agent_1"][:3] == 0.0).all()  # frozen: nothing but the flag
    np.testing.assert_array_equal(flat_to_planes(a["agent_1"]), b["agent_1"])
    parallel_seed_test(lambda: GatheringEnv(aggression_bonus=1.0, observation="planes"))


def test_render_rgb_array() -> None:
    env = GatheringEnv(render_mode="rgb_array", grid_size=6)
    env.reset(seed=1)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (72, 72, 3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_agents": 1},
        {"apple_density": 1.5},
        {"zap_range": 0},
        {"render_mode": "human"},
        {"observation": "pixels"},
    ],
)
def test_bad_arguments_fail_naming_the_argument(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        GatheringEnv(**kwargs)
