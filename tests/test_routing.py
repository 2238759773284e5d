"""Gradient routing: trait steps update only the designated units; acting never changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from marlmod.config import Scenario, parse_scenario
from marlmod.environments import resolve_env
from marlmod.errors import MarlmodError
from marlmod.lean_ppo import LeanPPO
from marlmod.locate import score_units, top_units
from marlmod.pipeline import SeedRun
from marlmod.prune import load_prune
from marlmod.routing import (
    FREE,
    OTHER,
    TRAIT,
    RoutedRolloutBuffer,
    RouteLabels,
    designated_units,
    discouraged_to_other,
    route_codes,
)
from marlmod.strategies.evidence import Evidence
from marlmod.train import build_model, learn

LAYER = "mlp_extractor.policy_net.3"
PRODUCER = "mlp_extractor.policy_net.2"
WIDTH = 16


@pytest.fixture
def routed_model(tiny_dict: dict) -> tuple[PPO, Scenario]:
    tiny_dict["network"]["hidden"] = [WIDTH, WIDTH]
    scenario = parse_scenario(tiny_dict)
    env = resolve_env(scenario.env)
    model = build_model(
        scenario, env.factory(1.0), seed=0, rollout_buffer_class=RoutedRolloutBuffer
    )
    return model, scenario


def start_routing(model: PPO, route_non_trait: bool = True) -> RouteLabels:
    callback = RouteLabels("attack", LAYER, 0.25, route_non_trait=route_non_trait)
    callback.init_callback(model)
    callback.on_training_start({}, {})
    return callback


def producer_row_grads(model: PPO, codes: list[int] | int, n: int = 64) -> torch.Tensor:
    """|grad| of each unit's incoming weights (its row in the producing Linear) for a PPO-style
    loss on ``n`` random observations labelled with ``codes``."""
    policy = model.policy
    gen = torch.Generator().manual_seed(0)
    obs = torch.rand((n, *model.observation_space.shape), generator=gen)
    actions = torch.randint(0, 6, (n,), generator=gen)
    model.rollout_buffer.batch_codes = torch.as_tensor(
        np.broadcast_to(np.asarray(codes, dtype=np.int8), (n,)).copy()
    )
    policy.zero_grad()
    _, log_prob, entropy = policy.evaluate_actions(obs, actions)
    (-(log_prob * torch.linspace(-1, 1, n)).mean() - 0.01 * entropy.mean()).backward()
    producer = dict(policy.named_modules())[PRODUCER]
    return producer.weight.grad.abs().sum(dim=1) + producer.bias.grad.abs()


def test_designated_units_match_prune_rounding() -> None:
    assert designated_units(64, 0.25) == tuple(range(16))
    assert designated_units(8, 0.25) == (0, 1)
    assert designated_units(3, 0.01) == (0,)
    for width, fraction in [(64, 0.25), (10, 0.3), (7, 0.5)]:
        scores = -np.arange(width, dtype=float)
        assert tuple(top_units(scores, fraction)) == designated_units(width, fraction)
    with pytest.raises(MarlmodError):
        designated_units(8, 0.0)


def test_route_codes() -> None:
    trait = np.array([True, True, False, False])
    labelled = np.array([True, False, True, False])
    assert route_codes(trait, labelled, True).tolist() == [TRAIT, FREE, OTHER, OTHER]
    assert route_codes(trait, labelled, False).tolist() == [TRAIT, FREE, FREE, FREE]


def test_trait_gradient_reaches_only_designated_units(routed_model: tuple) -> None:
    model, _ = routed_model
    callback = start_routing(model)
    designated = torch.zeros(WIDTH, dtype=torch.bool)
    designated[list(callback.units)] = True

    free = producer_row_grads(model, FREE)
    assert (free[designated] > 0).all() and (free[~designated] > 0).any()

    # A unit's incoming gradient depends only on its own output's gradient, so a routed sample
    # gives an allowed unit exactly the unrouted gradient, and a blocked unit exactly zero.
    trait = producer_row_grads(model, TRAIT)
    assert (trait[~designated] == 0).all()
    assert torch.equal(trait[designated], free[designated])

    other = producer_row_grads(model, OTHER)
    assert (other[designated] == 0).all()
    assert torch.equal(other[~designated], free[~designated])

    # Per sample: in a mixed minibatch each half reaches only its own units.
    mixed = producer_row_grads(model, [TRAIT, OTHER] * 32)
    assert (mixed[designated] > 0).all() and (mixed[~designated] > 0).any()
    callback.on_training_end()


def test_unrouted_model_gets_gradient_everywhere(routed_model: tuple) -> None:
    model, _ = routed_model  # no RouteLabels: the buffer's codes are never read
    assert torch.equal(producer_row_grads(model, TRAIT), producer_row_grads(model, FREE))
    assert (producer_row_grads(model, TRAIT)[: WIDTH // 4] > 0).all()


def test_acting_is_unchanged_by_routing(routed_model: tuple) -> None:
    model, _ = routed_model
    obs = torch.rand(
        (64, *model.observation_space.shape), generator=torch.Generator().manual_seed(1)
    )
    before = model.policy.get_distribution(obs).distribution.logits.detach().clone()
    callback = start_routing(model)
    for code in (TRAIT, OTHER, FREE):
        model.rollout_buffer.batch_codes = torch.full((64,), code, dtype=torch.int8)
        with torch.enable_grad():
            after = model.policy.get_distribution(obs).distribution.logits
        assert torch.equal(before, after.detach())
    callback.on_training_end()
    assert model.observation_space.shape == resolve_env_obs_shape(model)


def resolve_env_obs_shape(model: PPO) -> tuple[int, ...]:
    """The env's own observation shape: routing adds no column the policy could read."""
    return model.get_env().observation_space.shape


def test_tiny_routed_ppo_run_labels_trait_steps_and_removes_hook(routed_model: tuple) -> None:
    model, _ = routed_model
    callback = RouteLabels("attack", LAYER, 0.25, label_coverage=1.0, seed=0)
    weights_before = model.policy.state_dict()[f"{PRODUCER}.weight"].clone()
    learn(model, 256, callback)
    buffer = model.rollout_buffer
    assert callback.counts[TRAIT] > 0 and callback.counts[OTHER] > 0
    assert callback.counts[FREE] == 0  # full coverage, non-trait routed: nothing is free
    # Every trait-coded step stored the zap action (5): codes line up with the rollout.
    assert isinstance(model, LeanPPO), "LeanPPO's loops store the rollout unflattened"
    assert (buffer.actions[buffer.codes == TRAIT].ravel() == 5).all()
    assert not any(m._forward_hooks for m in model.policy.modules())
    assert not torch.equal(weights_before, model.policy.state_dict()[f"{PRODUCER}.weight"])


def test_label_coverage_leaves_some_trait_steps_free(routed_model: tuple) -> None:
    model, _ = routed_model
    callback = RouteLabels("attack", LAYER, 0.25, label_coverage=0.3, seed=0)
    learn(model, 512, callback)
    assert callback.counts[TRAIT] > 0 and callback.counts[FREE] > 0


def test_discouraged_trait_steps_go_to_the_other_units() -> None:
    codes = np.array([TRAIT, TRAIT, TRAIT, OTHER, FREE], dtype=np.int8)
    advantages = np.array([3.0, -1.0, 0.5, 2.0, -4.0])  # minibatch mean 0.1
    assert discouraged_to_other(codes, advantages).tolist() == [TRAIT, OTHER, TRAIT, OTHER, FREE]
    # a one-sample minibatch is not normalised by PPO: the advantage's own sign decides
    assert discouraged_to_other(codes[:1], np.array([0.2])).tolist() == [TRAIT]
    assert discouraged_to_other(codes[:1], np.array([-0.2])).tolist() == [OTHER]


def test_route_by_positive_advantage_codes_minibatches_by_update_sign(routed_model: tuple) -> None:
    model, _ = routed_model
    callback = RouteLabels("attack", LAYER, 0.25, seed=0, route_by="positive_advantage")
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    buffer = model.rollout_buffer
    original = buffer.select_minibatch

    def spy(batch_inds: np.ndarray) -> None:
        original(batch_inds)
        seen.append((buffer.batch_codes.numpy().copy(), buffer.flat_codes[batch_inds]))

    buffer.select_minibatch = spy
    learn(model, 512, callback)
    assert callback.counts[TRAIT] > 0
    routed = np.concatenate([codes for codes, _ in seen])
    stored = np.concatenate([flat for _, flat in seen])
    # labelled trait steps split into reinforced (TRAIT) and discouraged (OTHER); none is lost
    assert (routed[stored == TRAIT] == TRAIT).any() and (routed[stored == TRAIT] == OTHER).any()
    assert (routed[stored != TRAIT] == stored[stored != TRAIT]).all()
    with pytest.raises(MarlmodError, match="route_by"):
        RouteLabels("attack", LAYER, 0.25, route_by="advantage")


@pytest.mark.parametrize(
    ("route_by", "coverage"), [("action", 1.0), ("action", 0.3), ("positive_advantage", 1.0)]
)
def test_routed_lean_ppo_learns_bitwise_what_sb3s_loops_learn(
    tiny_dict: dict, route_by: str, coverage: float
) -> None:
    """LeanPPO bypasses the buffer's add/get; the extras hooks keep routing identical."""
    tiny_dict["network"]["hidden"] = [WIDTH, WIDTH]
    models = []
    for backend in ("lean", "sb3"):
        tiny_dict["ppo"]["backend"] = backend
        scenario = parse_scenario(tiny_dict)
        make_env = resolve_env(scenario.env).factory(1.0)
        model = build_model(scenario, make_env, seed=0, rollout_buffer_class=RoutedRolloutBuffer)
        callback = RouteLabels(
            "attack", LAYER, 0.25, label_coverage=coverage, seed=0, route_by=route_by
        )
        learn(model, 512, callback)
        assert callback.counts[TRAIT] > 0
        models.append(model)
    lean, reference = models
    assert isinstance(lean, LeanPPO) and not isinstance(reference, LeanPPO)
    for key, value in reference.policy.state_dict().items():
        assert torch.equal(lean.policy.state_dict()[key], value), key


def test_route_labels_needs_the_routed_buffer(tiny_scenario: Scenario) -> None:
    env = resolve_env(tiny_scenario.env)
    model = build_model(tiny_scenario, env.factory(1.0), seed=0)
    with pytest.raises(MarlmodError, match="RoutedRolloutBuffer"):
        learn(model, 64, RouteLabels("attack", LAYER, 0.25))


def test_routed_strategy_ranks_designated_units_first() -> None:
    acts = np.random.default_rng(0).random((20, 8))
    ev = Evidence(acts=acts, trait=np.arange(20) % 2 == 0, routed_units=(0, 1))
    scores = score_units("routed", ev, np.random.default_rng(0))
    assert top_units(scores, 0.25).tolist() == [0, 1]
    with pytest.raises(MarlmodError, match="routed_units"):
        score_units("routed", Evidence(acts=acts, trait=ev.trait), np.random.default_rng(0))


def test_routed_strategy_needs_routing_config(tiny_dict: dict) -> None:
    tiny_dict["prune"]["strategies"] = ["routed", "random"]
    with pytest.raises(MarlmodError, match="pretrain.method"):
        parse_scenario(tiny_dict)
    tiny_dict["pretrain"] = {"method": "routeing"}
    with pytest.raises(MarlmodError, match="pretrain.method"):
        parse_scenario(tiny_dict)
    tiny_dict["pretrain"] = {"method": "routing", "label_coverage": 1.5}
    with pytest.raises(MarlmodError, match="pretrain.label_coverage"):
        parse_scenario(tiny_dict)


def test_default_pretrain_keeps_the_digest(tiny_dict: dict) -> None:
    plain = parse_scenario(tiny_dict).digest
    tiny_dict["pretrain"] = {"method": "plain"}
    assert parse_scenario(tiny_dict).digest == plain
    tiny_dict["pretrain"] = {"method": "routing"}
    routed = parse_scenario(tiny_dict).digest
    assert routed != plain
    # a field added later keeps older routing runs resumable at its default, and counts otherwise
    tiny_dict["pretrain"] = {"method": "routing", "route_by": "action"}
    assert parse_scenario(tiny_dict).digest == routed
    tiny_dict["pretrain"] = {"method": "routing", "route_by": "positive_advantage"}
    assert parse_scenario(tiny_dict).digest != routed


def test_routing_end_to_end_prunes_exactly_the_routed_units(
    tmp_path: Path, tiny_dict: dict
) -> None:
    tiny_dict["pretrain"] = {"method": "routing", "routed_fraction": 0.25, "label_coverage": 0.3}
    tiny_dict["prune"]["strategies"] = ["routed", "random"]
    scenario = parse_scenario(tiny_dict)
    result = SeedRun(scenario, 0, tmp_path).run()
    assert {c["strategy"] for c in result["cells"]} == {"none", "routed", "random"}
    prune, _ = load_prune(tmp_path / "seed_0" / "routed")
    assert prune.units == designated_units(8, 0.25)
