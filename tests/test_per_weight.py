"""Weight-level locating: per-weight scores on a hand-wired network where the answer is planted,
and a matched-size pick."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from small_nets import policy_3_4_4_3
from stable_baselines3.common.policies import ActorCriticPolicy

from marlmod.errors import MarlmodError
from marlmod.record import activations_on, inputs_on
from marlmod.strategies.evidence import Evidence
from marlmod.strategies.per_weight import credit, per_weight_scores, top_weights

FIRST = "mlp_extractor.policy_net.1"  # producer policy_net.0 reads the observation directly
PRODUCER, CONSUMER = "mlp_extractor.policy_net.0", "mlp_extractor.policy_net.2"
UNIT_SCORES = np.array([0.5, 2.0, -1.0, 0.1])  # unit 1 drives the trait; unit 2 is quiet for it


def wired_policy() -> ActorCriticPolicy:
    """obs 3 → 4 → 4 → 3 actions, ReLU; unit 1 of the first hidden layer sends almost all of
    its output through one weight (to unit 2 of the next layer)."""
    policy = policy_3_4_4_3()
    with torch.no_grad():
        net = policy.mlp_extractor.policy_net
        net[0].weight.fill_(0.5)
        net[0].bias.fill_(0.1)
        net[2].weight.fill_(0.2)
        net[2].weight[:, 1] = torch.tensor([0.0, 0.0, 3.0, 0.1])
    return policy


def wired_evidence(policy: ActorCriticPolicy, rows: int = 64) -> Evidence:
    """Observation feature 0 is silent on every trait row."""
    gen = np.random.default_rng(0)
    obs = gen.random((rows, 3)).astype(np.float32)
    trait = np.arange(rows) % 4 == 0
    obs[trait, 0] = 0.0
    return Evidence(
        acts=activations_on(policy, FIRST, obs),
        trait=trait,
        obs=obs,
        actions=np.zeros(rows, dtype=int),
        policy=policy,
        layer=FIRST,
    )


def test_planted_behaviour_weight_ranks_first() -> None:
    scores = credit(wired_evidence(wired_policy()), UNIT_SCORES)
    assert top_weights(scores, 1) == (
        (f"{PRODUCER}.weight", ()),
        (f"{PRODUCER}.bias", ()),
        (f"{CONSUMER}.weight", (2 * 4 + 1,)),  # row 2, column 1: the planted connection
    )
    assert np.all(scores[f"{PRODUCER}.weight"][:, 0] == 0)  # its input is silent on the trait
    quiet = {name: np.zeros(s.shape, bool) for name, s in scores.items()}  # unit 2's entries
    quiet[f"{PRODUCER}.weight"][2, 1:] = True  # (column 0's input is silent: scored 0 above)
    quiet[f"{PRODUCER}.bias"][2] = True
    quiet[f"{CONSUMER}.weight"][:, 2] = True
    mine = np.concatenate([s[quiet[n]] for n, s in scores.items()])
    others = np.concatenate([s[~quiet[n]] for n, s in scores.items()])
    assert (mine < 0).all() and mine.max() < others.min()  # the quiet unit's weights rank last


def test_each_side_of_a_unit_carries_its_whole_score() -> None:
    """Shares sum to one per side: all incoming (weights and bias) and all outgoing weights of
    unit u each add up to its unit score, so no side is over- or under-credited."""
    scores = credit(wired_evidence(wired_policy()), UNIT_SCORES)
    incoming = scores[f"{PRODUCER}.weight"].sum(axis=1) + scores[f"{PRODUCER}.bias"]
    outgoing = scores[f"{CONSUMER}.weight"].sum(axis=0)
    np.testing.assert_allclose(incoming, UNIT_SCORES)
    np.testing.assert_allclose(outgoing, UNIT_SCORES)


def test_inputs_on_returns_the_linear_input_and_removes_its_hook() -> None:
    policy = wired_policy()
    obs = np.random.default_rng(1).random((5, 3)).astype(np.float32)
    np.testing.assert_allclose(inputs_on(policy, PRODUCER, obs), obs)
    np.testing.assert_allclose(
        inputs_on(policy, CONSUMER, obs), activations_on(policy, FIRST, obs), rtol=1e-6
    )
    assert not policy.mlp_extractor.policy_net[2]._forward_pre_hooks


def test_random_weights_ignore_unit_scores_and_follow_the_rng() -> None:
    ev = wired_evidence(wired_policy())

    def pick(unit_scores: np.ndarray, seed: int) -> tuple:
        scores = per_weight_scores("random", ev, unit_scores, np.random.default_rng(seed))
        return top_weights(scores, 10)

    assert pick(UNIT_SCORES, 3) == pick(-UNIT_SCORES, 3)
    assert pick(UNIT_SCORES, 3) != pick(UNIT_SCORES, 4)
    assert sum(len(indices) for _, indices in pick(UNIT_SCORES, 3)) == 10


def test_top_weights_counts_and_breaks_ties_by_position() -> None:
    scores = {"a": np.array([[1.0, 3.0], [0.0, 3.0]]), "b": np.array([3.0, 2.0])}
    assert top_weights(scores, 3) == (("a", (1, 3)), ("b", (0,)))
    assert top_weights(scores, 4) == (("a", (1, 3)), ("b", (0, 1)))
    with pytest.raises(MarlmodError, match="cannot prune 7 of 6 weights"):
        top_weights(scores, 7)


def test_credit_needs_matching_finite_unit_scores_and_trait_rows() -> None:
    ev = wired_evidence(wired_policy())
    with pytest.raises(MarlmodError, match="4 finite unit scores"):
        credit(ev, np.array([1.0, np.inf, 0.0, 0.0]))
    with pytest.raises(MarlmodError, match="needs Evidence.policy"):
        credit(Evidence(acts=ev.acts, trait=ev.trait), UNIT_SCORES)
