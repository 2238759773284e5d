"""Issue 4's locating strategies, each on hand-built data or a hand-wired network where the
right answer is planted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from small_nets import policy_3_4_4_3
from stable_baselines3.common.policies import ActorCriticPolicy

from marlmod.errors import MarlmodError
from marlmod.locate import score_units
from marlmod.strategies.evidence import Evidence

LAYER = "mlp_extractor.policy_net.3"


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def relu_acts(rows: int, units: int, gen: np.random.Generator) -> np.ndarray:
    return np.maximum(gen.normal(size=(rows, units)), 0.0)


def planted(rows: int = 400, units: int = 10, seed: int = 0) -> Evidence:
    """Unit 6 fires more on trait rows; unit 2 falls quiet on them (pruning it mimics the trait)."""
    gen = rng(seed)
    trait = gen.random(rows) < 0.3
    acts = relu_acts(rows, units, gen)
    acts[:, 6] += 2.0 * trait
    acts[:, 2] *= ~trait
    return Evidence(acts=acts, trait=trait)


def context_and_decision(rows: int = 2000, seed: int = 0) -> tuple[Evidence, np.ndarray]:
    """Unit 0 encodes the context (a rival in range) strongly; unit 1 the decision to attack.

    Attacks happen only in context, so the plain contrast prefers the context unit.
    Returns the evidence and the context per row."""
    gen = rng(seed)
    context = gen.random(rows) < 0.3
    trait = context & (gen.random(rows) < 0.5)
    acts = 0.3 * relu_acts(rows, 6, gen)
    acts[:, 0] = 3.0 * context + 0.3 * gen.normal(size=rows)
    acts[:, 1] = 0.5 * trait + 0.5 * gen.normal(size=rows)
    return Evidence(acts=acts, trait=trait, opportunity=context), context


# ---------------------------------------------------------------- selective
def test_selective_ranks_the_trait_only_unit_first_and_handles_zeros() -> None:
    ev = planted()
    ev.acts[:, 8] = 0.3 * ev.trait  # weak, but fires *only* on the trait: maximally selective
    ev.acts[:, 3] = 0.0  # dead: 0 / 0
    scores = score_units("selective", ev, rng())
    assert np.isfinite(scores).all()
    assert int(np.argmax(scores)) == 8
    assert scores[3] == 0.0
    assert np.argsort(-scores)[1] == 6  # then the unit that fires more, but not only, on it


def test_activation_magnitude_is_trait_blind() -> None:
    ev = planted()
    ev.acts[:, 4] *= 5.0
    assert int(np.argmax(score_units("activation_magnitude", ev, rng()))) == 4


# ---------------------------------------------------------------- opportunity
def test_opportunity_contrast_separates_decision_from_context() -> None:
    ev, _ = context_and_decision()
    assert int(np.argmax(score_units("contrast", ev, rng()))) == 0  # fooled by the context
    scores = score_units("opportunity", ev, rng())
    assert int(np.argmax(scores)) == 1
    assert abs(scores[0]) < 0.3  # within opportunity rows the context unit says nothing


def test_opportunity_needs_labels_and_enough_rows() -> None:
    ev, context = context_and_decision()
    with pytest.raises(MarlmodError, match="needs Evidence.opportunity"):
        score_units("opportunity", Evidence(acts=ev.acts, trait=ev.trait), rng())
    rare = context & ~ev.trait  # opportunity rows with no trait at all
    rare[np.flatnonzero(ev.trait)[:3]] = True  # …and only 3 with it
    with pytest.raises(MarlmodError, match="≥10 rows per group"):
        score_units("opportunity", Evidence(acts=ev.acts, trait=ev.trait, opportunity=rare), rng())


# ---------------------------------------------------------------- probe
def test_probe_ranks_the_planted_unit_first_and_the_quiet_unit_last() -> None:
    scores = score_units("probe", planted(), rng())
    assert int(np.argmax(scores)) == 6
    assert int(np.argmin(scores)) == 2


def test_probe_is_deterministic_given_rng_and_orders_its_zeros() -> None:
    ev = planted(units=30)
    a, b = score_units("probe", ev, rng(3)), score_units("probe", ev, rng(3))
    assert np.array_equal(a, b)
    assert len(np.unique(a)) == len(a)  # no ties left for top_units to break by index


# ---------------------------------------------------------------- control
def test_control_discounts_what_the_control_network_also_encodes() -> None:
    ev, context = context_and_decision()
    gen = rng(1)
    ctrl = relu_acts(len(context), 8, gen)  # a different network: unit order means nothing
    ctrl[:, 5] = 2.0 * context + 0.05 * gen.normal(size=len(context))  # it too sees the context
    ev = Evidence(acts=ev.acts, trait=ev.trait, control_acts=ctrl)
    scores = score_units("control", ev, rng())
    assert int(np.argmax(scores)) == 1
    assert scores[1] > 3 * abs(scores[0])


def test_control_needs_control_activations() -> None:
    with pytest.raises(MarlmodError, match="needs Evidence.control_acts"):
        score_units("control", planted(), rng())


# ---------------------------------------------------------------- policy-based strategies
def tiny_policy(trait_weight: float = 2.0) -> ActorCriticPolicy:
    """obs 3 → 4 → 4 → 3 actions, ReLU, wired so every second-layer unit is active and only
    unit 1 votes for action 2 (the trait), unit 3 for action 0."""
    policy = policy_3_4_4_3()
    with torch.no_grad():
        net = policy.mlp_extractor.policy_net
        net[0].weight.fill_(0.5)
        net[0].bias.fill_(0.1)
        net[2].weight.fill_(0.5)
        net[2].bias.fill_(0.1)
        policy.action_net.weight.zero_()
        policy.action_net.bias.zero_()
        policy.action_net.weight[2, 1] = trait_weight
        policy.action_net.weight[0, 3] = 2.0
    return policy


def policy_evidence(policy: ActorCriticPolicy, rows: int = 64) -> Evidence:
    from marlmod.record import activations_on

    gen = rng(0)
    obs = gen.random((rows, 3)).astype(np.float32)
    trait = np.arange(rows) % 4 == 0
    actions = np.where(trait, 2, gen.integers(0, 2, rows))
    return Evidence(
        acts=activations_on(policy, LAYER, obs),
        trait=trait,
        obs=obs,
        actions=actions,
        policy=policy,
        layer=LAYER,
    )


def test_attribution_ranks_the_unit_driving_the_trait_action_first() -> None:
    policy = tiny_policy()
    scores = score_units("attribution", policy_evidence(policy), rng())
    assert int(np.argmax(scores)) == 1 and scores[1] > 0
    assert int(np.argmin(scores)) == 3 and scores[3] < 0  # pushes towards another action
    assert scores[0] == scores[2] == 0.0  # no path to the logits
    module = dict(policy.named_modules())[LAYER]
    assert not module._forward_hooks  # the hook is gone
    assert all(p.grad is None for p in policy.parameters())  # weights untouched by autograd


def test_attribution_matches_the_effect_of_zeroing_a_unit() -> None:
    """h·∂logπ/∂h is the first-order change in logπ when the unit is set to zero (so the
    effect is kept small here, where first order holds)."""
    policy = tiny_policy(trait_weight=0.2)
    ev = policy_evidence(policy)
    score = score_units("attribution", ev, rng())[1]

    def mean_logp() -> float:
        obs = torch.as_tensor(ev.obs[ev.trait])
        with torch.no_grad():
            return policy.get_distribution(obs).log_prob(torch.full((len(obs),), 2)).mean().item()

    before = mean_logp()
    with torch.no_grad():
        policy.action_net.weight[:, 1] = 0.0
    assert before - mean_logp() == pytest.approx(score, rel=0.2)


def test_policy_strategies_say_what_they_need() -> None:
    for name in ("attribution", "weight_magnitude", "wanda"):
        with pytest.raises(MarlmodError, match="needs Evidence.policy"):
            score_units(name, planted(), rng())


def test_weight_magnitude_prunes_the_smallest_unit_first() -> None:
    policy = tiny_policy()
    with torch.no_grad():
        policy.mlp_extractor.policy_net[2].weight[0] = 0.01  # unit 0's incoming weights
    scores = score_units("weight_magnitude", policy_evidence(policy), rng())
    assert int(np.argmax(scores)) == 0
    assert (scores <= 0).all()


def test_wanda_weighs_outgoing_weights_by_activation() -> None:
    policy = tiny_policy()
    ev = policy_evidence(policy)
    ev.acts[:, 1] *= 1e-3  # big outgoing weight, almost no activation: sends little onward
    scores = score_units("wanda", ev, rng())
    assert scores[1] > scores[3]  # unit 3: same weight, full activation
    assert scores[0] == scores[2] == 0.0  # no outgoing weights: nothing to lose (-0.0 == 0.0)


# ---------------------------------------------------------------- the action head
def test_strategies_rank_the_trait_logit_first_on_the_action_head() -> None:
    """``<strategy>~action_head`` cells score the logits with the same strategies: here only
    logit 2 varies with the state, and the trait (taking action 2) happens where it is high."""
    from marlmod.record import activations_on

    policy = tiny_policy()
    with torch.no_grad():
        policy.action_net.weight[0, 3] = 0.0  # logits 0 and 1 constant 0
    obs = rng(0).random((200, 3)).astype(np.float32)
    logits = activations_on(policy, "action_net", obs)
    trait = logits[:, 2] > np.median(logits[:, 2])
    ev = Evidence(
        acts=logits,
        trait=trait,
        obs=obs,
        actions=np.where(trait, 2, 0),
        policy=policy,
        layer="action_net",
    )
    for name in ("contrast", "attribution", "selective"):
        assert int(np.argmax(score_units(name, ev, rng()))) == 2, name
    with pytest.raises(MarlmodError, match="'wanda' cannot rank the action head, only a hidden"):
        score_units("wanda", ev, rng())  # the registry's reason, as config validation gives it
