"""The Signalling env: PettingZoo conformance and the behaviour labels on hand-built rounds."""

from __future__ import annotations

import numpy as np
import pettingzoo
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

import envs
from envs.signalling import FOLLOW, POINT_DECOY, POINT_RESOURCE, SignallingEnv

IGNORE = 1  # any listener action but FOLLOW
POINT_ELSEWHERE = 2  # the first site that is neither resource nor decoy
SENDER, LISTENER = "agent_0", "agent_1"


def rigged(site: int, decoy: int, value: float, **kwargs) -> SignallingEnv:
    """An env whose current round has the resource at ``site`` (``value``) and ``decoy``."""
    env = SignallingEnv(**kwargs)
    env.reset(seed=0)
    env.site, env.decoy, env.value = site, decoy, value
    return env


def send_then_score(
    env: SignallingEnv, sender: int, listeners: dict[str, int]
) -> tuple[dict, dict, dict]:
    """The sender acts on the rigged round; the next step scores it with ``listeners``' actions.
    Returns the sending step's infos, then the scoring step's rewards and infos."""
    _, _, _, _, sent = env.step({SENDER: sender, **{a: FOLLOW for a in listeners}})
    _, rewards, _, _, scored = env.step({SENDER: POINT_RESOURCE, **listeners})
    return sent, rewards, scored


def test_registered_and_passes_pettingzoo_api_test() -> None:
    env = pettingzoo.make("parallel", envs.SIGNALLING_ID, deception_bonus=1.0)
    parallel_api_test(env, num_cycles=300)


def test_same_seed_same_trajectory() -> None:
    parallel_seed_test(lambda: SignallingEnv(deception_bonus=1.0, n_listeners=2))


def test_metadata_declares_the_marlmod_protocol() -> None:
    meta = SignallingEnv.metadata["marlmod"]
    assert meta["bonus_kwarg"] == "deception_bonus"
    assert {"message", "truthful", "lie", "misled"} <= set(meta["behaviours"])
    assert "lie" in meta["opportunities"]


def test_spaces_are_shared_and_role_is_observed() -> None:
    env = SignallingEnv(n_listeners=2)
    observations, infos = env.reset(seed=1)
    for agent in env.possible_agents:
        assert env.observation_space(agent) == env.observation_space(SENDER)
        assert env.action_space(agent) == env.action_space(SENDER)
    assert observations[SENDER][:2].tolist() == [1.0, 0.0]
    assert observations[LISTENER][:2].tolist() == [0.0, 1.0]
    assert infos[SENDER]["role"] == "sender" and infos["agent_2"]["role"] == "listener"


def test_sender_alone_sees_site_and_value_listener_sees_candidates_and_pointer() -> None:
    env = rigged(site=2, decoy=0, value=0.1, n_sites=4)
    sender = env._observations()[SENDER]
    assert sender[2:6].tolist() == [0, 0, 1, 0] and sender[6:8].tolist() == [1, 0]
    assert sender[8:12].tolist() == [1, 0, 1, 0] and sender[12:].sum() == 0
    observations, *_ = env.step({SENDER: POINT_DECOY, LISTENER: FOLLOW})
    listener = observations[LISTENER]
    assert listener[2:8].sum() == 0  # neither the resource nor its value
    assert listener[8:12].tolist() == [1, 0, 1, 0]  # the candidates of the round it decides
    assert listener[12:].tolist() == [1, 0, 0, 0]  # the message points at site 0, the decoy
    assert observations[SENDER][12:].sum() == 0 and observations[SENDER][6:8].sum() == 1


def test_sender_actions_point_at_resource_decoy_then_the_others() -> None:
    env = rigged(site=2, decoy=0, value=1.0, n_sites=4)
    assert [env._pointed_site(a) for a in range(4)] == [2, 0, 1, 3]


def test_truthful_message_followed_is_not_a_lie_and_pays_task_reward_to_all() -> None:
    env = rigged(site=1, decoy=3, value=1.0, deception_bonus=0.5)
    sent, rewards, scored = send_then_score(env, POINT_RESOURCE, {LISTENER: FOLLOW})
    assert sent[SENDER]["behaviour"]["message"] and sent[SENDER]["behaviour"]["truthful"]
    assert not sent[SENDER]["behaviour"]["lie"] and not sent[SENDER]["behaviour"]["decoy"]
    assert scored[SENDER]["behaviour"]["followed"] and not scored[SENDER]["behaviour"]["misled"]
    assert scored[LISTENER]["behaviour"]["followed"]
    assert not scored[LISTENER]["behaviour"]["misled"]
    assert rewards == {SENDER: 1.0, LISTENER: 1.0}
    assert scored[SENDER]["bonus_reward"] == 0.0 and scored[SENDER]["task_reward"] == 1.0


def test_lie_to_the_decoy_acted_on_is_misled_and_pays_bonus_to_the_sender_only() -> None:
    env = rigged(site=1, decoy=3, value=0.1, deception_bonus=0.5)
    sent, rewards, scored = send_then_score(env, POINT_DECOY, {LISTENER: FOLLOW})
    behaviour = sent[SENDER]["behaviour"]
    assert behaviour["lie"] and behaviour["decoy"] and not behaviour["truthful"]
    assert sent[SENDER]["opportunity"]["lie"] and not sent[LISTENER]["opportunity"]["lie"]
    assert scored[SENDER]["behaviour"]["misled"] and scored[LISTENER]["behaviour"]["misled"]
    assert scored[SENDER]["bonus_reward"] == 0.5 and scored[SENDER]["task_reward"] == 0.0
    assert scored[LISTENER]["bonus_reward"] == 0.0
    assert rewards == {SENDER: 0.5, LISTENER: 0.0}


def test_unbelievable_lie_acted_on_is_misled_but_pays_no_bonus() -> None:
    env = rigged(site=1, decoy=3, value=0.1, deception_bonus=0.5)
    sent, rewards, scored = send_then_score(env, POINT_ELSEWHERE, {LISTENER: FOLLOW})
    assert sent[SENDER]["behaviour"]["lie"] and not sent[SENDER]["behaviour"]["decoy"]
    assert scored[SENDER]["behaviour"]["misled"] and scored[SENDER]["bonus_reward"] == 0.0
    assert rewards == {SENDER: 0.0, LISTENER: 0.0}


def test_lie_ignored_is_not_misled_and_pays_no_bonus() -> None:
    for seed in range(8):  # an ignoring listener searches a random site, sometimes the right one
        env = rigged(site=1, decoy=3, value=0.1, deception_bonus=0.5)
        env.np_random = np.random.default_rng(seed)
        _, rewards, scored = send_then_score(env, POINT_DECOY, {LISTENER: IGNORE})
        for agent in (SENDER, LISTENER):
            assert not scored[agent]["behaviour"]["misled"]
            assert not scored[agent]["behaviour"]["followed"]
        assert scored[SENDER]["bonus_reward"] == 0.0
        assert rewards[SENDER] == rewards[LISTENER] in (0.0, pytest.approx(0.1))


def test_cooperative_variant_pays_no_bonus_for_a_lie_acted_on() -> None:
    env = rigged(site=1, decoy=3, value=0.1, deception_bonus=0.0)
    _, rewards, scored = send_then_score(env, POINT_DECOY, {LISTENER: FOLLOW})
    assert scored[SENDER]["behaviour"]["misled"] and scored[SENDER]["bonus_reward"] == 0.0
    assert rewards == {SENDER: 0.0, LISTENER: 0.0}


def test_every_non_follow_action_ignores_the_message_and_searches_a_random_site() -> None:
    env = rigged(site=1, decoy=3, value=1.0, n_sites=5)
    env.step({SENDER: POINT_RESOURCE, LISTENER: FOLLOW})
    reached = set()
    for step in range(40):
        _, _, _, _, infos = env.step({SENDER: POINT_RESOURCE, LISTENER: 1 + step % 4})
        assert not infos[LISTENER]["behaviour"]["followed"]
        reached.add(int(env._last_round[4][0]))
    assert reached == set(range(5))  # any site, the pointed one included


def test_listeners_never_send_or_lie() -> None:
    env = SignallingEnv(n_listeners=2, deception_bonus=1.0)
    env.reset(seed=3)
    for _ in range(20):
        actions = {a: env.action_space(a).sample() for a in env.agents}
        _, _, _, _, infos = env.step(actions)
        for agent in ("agent_1", "agent_2"):
            b = infos[agent]["behaviour"]
            assert not (b["message"] or b["truthful"] or b["lie"] or b["decoy"])
        b = infos[SENDER]["behaviour"]
        assert b["message"] and b["truthful"] != b["lie"]


def test_first_step_scores_nothing_and_bonus_is_shared_over_listeners() -> None:
    env = rigged(site=0, decoy=2, value=1.0, n_listeners=2, deception_bonus=1.0)
    listeners = {"agent_1": FOLLOW, "agent_2": IGNORE}
    _, _, _, _, first = env.step({SENDER: POINT_DECOY, "agent_1": FOLLOW, "agent_2": FOLLOW})
    assert not any(i["behaviour"]["followed"] for i in first.values())
    _, _, _, _, scored = env.step({SENDER: POINT_RESOURCE, **listeners})
    assert scored["agent_1"]["behaviour"]["misled"]
    assert not scored["agent_2"]["behaviour"]["misled"]
    assert scored[SENDER]["bonus_reward"] == pytest.approx(0.5)  # half the listeners misled


def test_task_reward_is_the_fraction_of_listeners_at_the_resource() -> None:
    env = rigged(site=0, decoy=2, value=1.0, n_listeners=2, deception_bonus=1.0)
    listeners = {"agent_1": FOLLOW, "agent_2": FOLLOW}
    _, rewards, scored = send_then_score(env, POINT_RESOURCE, listeners)
    assert scored[SENDER]["task_reward"] == 1.0 and scored[SENDER]["bonus_reward"] == 0.0
    assert set(rewards.values()) == {1.0}


def test_values_follow_low_prob() -> None:
    env = SignallingEnv(low_prob=0.25, low_value=0.1, high_value=2.0)
    env.reset(seed=0)
    values = []
    for _ in range(env.max_cycles):
        values.append(env.value)
        env.step({SENDER: POINT_RESOURCE, LISTENER: FOLLOW})
    assert set(values) <= {0.1, 2.0} and 0.0 < np.mean(np.array(values) == 0.1) < 0.6


def test_render_rgb_array_shows_the_scored_round() -> None:
    env = rigged(site=1, decoy=3, value=1.0, render_mode="rgb_array")
    assert env.render().shape == (48, 64, 3)
    send_then_score(env, POINT_RESOURCE, {LISTENER: FOLLOW})
    assert env.render().any()
    assert SignallingEnv().render() is None


@pytest.mark.parametrize(
    "kwargs",
    [{"n_sites": 1}, {"n_listeners": 0}, {"low_value": 2.0}, {"low_prob": 1.5}, {"max_cycles": 1}],
)
def test_bad_arguments_fail_at_construction(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SignallingEnv(**kwargs)
