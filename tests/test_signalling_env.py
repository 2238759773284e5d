"""The Signalling env: PettingZoo conformance and the behaviour labels on hand-built rounds."""

from __future__ import annotations

import numpy as np
import pettingzoo
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

import envs
from envs.signalling import FOLLOW, SignallingEnv

IGNORE = 1

SENDER, LISTENER = "agent_0", "agent_1"


def rigged(site: int, value: float, **kwargs) -> SignallingEnv:
    """An env whose current round has the resource at ``site`` with ``value``."""
    env = SignallingEnv(**kwargs)
    env.reset(seed=0)
    env.site, env.value = site, value
    return env


def play(env: SignallingEnv, message: int, listener: int, next_site: int = 0) -> tuple[dict, dict]:
    """Send ``message`` now, then score it with the listener taking action ``listener``."""
    env.step({SENDER: message, LISTENER: FOLLOW})
    env.site = next_site
    _, rewards, _, _, infos = env.step({SENDER: next_site, LISTENER: listener})
    return rewards, infos


def test_registered_and_passes_pettingzoo_api_test() -> None:
    env = pettingzoo.make("parallel", envs.SIGNALLING_ID, deception_bonus=1.0)
    parallel_api_test(env, num_cycles=300)


def test_same_seed_same_trajectory() -> None:
    parallel_seed_test(lambda: SignallingEnv(deception_bonus=1.0, n_listeners=2))


def test_metadata_declares_the_marlmod_protocol() -> None:
    meta = SignallingEnv.metadata["marlmod"]
    assert meta["bonus_kwarg"] == "deception_bonus"
    assert {"message", "truthful", "lie", "misled"} <= set(meta["behaviours"])


def test_spaces_are_shared_and_role_is_observed() -> None:
    env = SignallingEnv(n_listeners=2)
    observations, infos = env.reset(seed=1)
    for agent in env.possible_agents:
        assert env.observation_space(agent) == env.observation_space(SENDER)
        assert env.action_space(agent) == env.action_space(SENDER)
    assert observations[SENDER][:2].tolist() == [1.0, 0.0]
    assert observations[LISTENER][:2].tolist() == [0.0, 1.0]
    assert infos[SENDER]["role"] == "sender" and infos["agent_2"]["role"] == "listener"


def test_sender_alone_sees_site_and_value_listener_alone_sees_message() -> None:
    env = rigged(site=2, value=0.2, n_sites=4)
    observations = env._observations()
    assert observations[SENDER][2 + 2] == 1.0 and observations[SENDER][6:8].tolist() == [1.0, 0.0]
    assert observations[LISTENER][2:8].sum() == 0.0
    observations, *_ = env.step({SENDER: 3, LISTENER: FOLLOW})
    assert observations[LISTENER][8 + 3] == 1.0 and observations[LISTENER][8:].sum() == 1.0
    assert observations[SENDER][8:].sum() == 0.0
    assert observations[SENDER][6:8].sum() == 1.0  # a value level is always shown


def test_truthful_message_followed_is_not_a_lie_and_pays_task_reward_to_all() -> None:
    env = rigged(site=1, value=1.0, deception_bonus=0.5)
    _, _, _, _, infos = env.step({SENDER: 1, LISTENER: IGNORE})
    sent = infos[SENDER]["behaviour"]
    assert sent["message"] and sent["truthful"] and not sent["lie"]
    env.site = 0
    _, rewards, _, _, infos = env.step({SENDER: 0, LISTENER: FOLLOW})
    assert infos[SENDER]["behaviour"]["followed"] and not infos[SENDER]["behaviour"]["misled"]
    assert infos[LISTENER]["behaviour"]["followed"] and not infos[LISTENER]["behaviour"]["misled"]
    assert rewards == {SENDER: 1.0, LISTENER: 1.0}
    assert infos[SENDER]["bonus_reward"] == 0.0 and infos[SENDER]["task_reward"] == 1.0


def test_lie_acted_on_is_misled_and_pays_bonus_to_the_sender_only() -> None:
    env = rigged(site=1, value=0.2, deception_bonus=0.5)
    _, _, _, _, infos = env.step({SENDER: 3, LISTENER: IGNORE})
    assert infos[SENDER]["behaviour"]["lie"] and not infos[SENDER]["behaviour"]["truthful"]
    assert infos[SENDER]["opportunity"]["lie"] and not infos[LISTENER]["opportunity"]["lie"]
    env.site = 0
    _, rewards, _, _, infos = env.step({SENDER: 0, LISTENER: FOLLOW})
    assert infos[SENDER]["behaviour"]["misled"] and infos[LISTENER]["behaviour"]["misled"]
    assert infos[SENDER]["bonus_reward"] == 0.5 and infos[SENDER]["task_reward"] == 0.0
    assert infos[LISTENER]["bonus_reward"] == 0.0
    assert rewards == {SENDER: 0.5, LISTENER: 0.0}


def test_lie_ignored_is_not_misled_and_pays_no_bonus() -> None:
    for seed in range(8):  # an ignoring listener searches a random site, sometimes the right one
        env = rigged(site=1, value=0.2, deception_bonus=0.5)
        env.np_random = np.random.default_rng(seed)
        rewards, infos = play(env, message=3, listener=IGNORE)
        assert not infos[SENDER]["behaviour"]["misled"]
        assert not infos[SENDER]["behaviour"]["followed"]
        assert not infos[LISTENER]["behaviour"]["followed"]
        assert infos[SENDER]["bonus_reward"] == 0.0
        assert rewards[SENDER] == rewards[LISTENER] in (0.0, pytest.approx(0.2))


def test_cooperative_variant_pays_no_bonus_for_a_lie_acted_on() -> None:
    env = rigged(site=1, value=0.2, deception_bonus=0.0)
    rewards, infos = play(env, message=2, listener=FOLLOW)
    assert infos[SENDER]["behaviour"]["misled"] and infos[SENDER]["bonus_reward"] == 0.0
    assert rewards[SENDER] == 0.0


def test_every_non_follow_action_ignores_the_message() -> None:
    env = rigged(site=1, value=1.0, n_sites=5)
    reached = set()
    env.step({SENDER: 1, LISTENER: FOLLOW})
    for action in range(1, 5):
        _, _, _, _, infos = env.step({SENDER: 1, LISTENER: action})
        assert not infos[LISTENER]["behaviour"]["followed"]
    for _ in range(100):
        env.step({SENDER: 1, LISTENER: IGNORE})
        reached.add(int(env._last_round[3][0]))
    assert reached == set(range(5))  # ignoring searches every site, the pointed one included


def test_listeners_never_send_or_lie() -> None:
    env = SignallingEnv(n_listeners=2, deception_bonus=1.0)
    env.reset(seed=3)
    for _ in range(20):
        actions = {a: env.action_space(a).sample() for a in env.agents}
        _, _, _, _, infos = env.step(actions)
        for agent in ("agent_1", "agent_2"):
            b = infos[agent]["behaviour"]
            assert not (b["message"] or b["truthful"] or b["lie"])
        b = infos[SENDER]["behaviour"]
        assert b["message"] and b["truthful"] != b["lie"]


def test_first_step_scores_nothing_and_bonus_is_shared_over_listeners() -> None:
    env = rigged(site=0, value=1.0, n_listeners=2, deception_bonus=1.0)
    _, rewards, _, _, infos = env.step({SENDER: 2, "agent_1": FOLLOW, "agent_2": FOLLOW})
    assert not any(i["behaviour"]["followed"] for i in infos.values())
    assert all(r == 0.0 for r in rewards.values())
    env.site = 1
    _, rewards, _, _, infos = env.step({SENDER: 1, "agent_1": FOLLOW, "agent_2": IGNORE})
    assert infos["agent_1"]["behaviour"]["misled"] and not infos["agent_2"]["behaviour"]["misled"]
    assert infos[SENDER]["bonus_reward"] == pytest.approx(0.5)  # half the listeners misled


def test_task_reward_is_the_fraction_of_listeners_at_the_resource() -> None:
    env = rigged(site=0, value=1.0, n_listeners=2, deception_bonus=1.0)
    env.step({SENDER: 0, "agent_1": FOLLOW, "agent_2": FOLLOW})
    _, rewards, _, _, infos = env.step({SENDER: 1, "agent_1": FOLLOW, "agent_2": FOLLOW})
    assert infos[SENDER]["task_reward"] == 1.0 and infos[SENDER]["bonus_reward"] == 0.0
    assert set(rewards.values()) == {1.0}


def test_values_follow_low_prob() -> None:
    env = SignallingEnv(low_prob=0.25, low_value=0.1, high_value=2.0)
    env.reset(seed=0)
    values = []
    for _ in range(env.max_cycles):
        values.append(env.value)
        env.step({SENDER: 0, LISTENER: 0})
    assert set(values) <= {0.1, 2.0} and 0.0 < np.mean(np.array(values) == 0.1) < 0.6


def test_render_rgb_array_shows_the_scored_round() -> None:
    env = rigged(site=1, value=1.0, render_mode="rgb_array")
    assert env.render().shape == (48, 64, 3)
    play(env, message=1, listener=FOLLOW)
    assert env.render().any()
    assert SignallingEnv().render() is None


@pytest.mark.parametrize(
    "kwargs",
    [{"n_sites": 1}, {"n_listeners": 0}, {"low_value": 2.0}, {"low_prob": 1.5}, {"max_cycles": 1}],
)
def test_bad_arguments_fail_at_construction(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SignallingEnv(**kwargs)
