"""Pruning: the right weights are zeroed, they stay exactly zero through retraining, and a
stored prune loads back (tensors only)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from marlmod.config import Scenario
from marlmod.environments import resolve_env
from marlmod.errors import MarlmodError
from marlmod.prune import (
    HoldMasks,
    Prune,
    apply_masks,
    hidden_layer,
    load_prune,
    save_prune,
    unit_masks,
)
from marlmod.train import build_model, learn, load_model, save_model

LAST = "mlp_extractor.policy_net.3"


def tiny_model(scenario: Scenario, bonus: float = 0.0):
    return build_model(scenario, resolve_env(scenario.env).factory(bonus), seed=0)


def test_hidden_layer_finds_producer_and_consumer(tiny_scenario: Scenario) -> None:
    policy = tiny_model(tiny_scenario).policy
    assert hidden_layer(policy, LAST).producer == "mlp_extractor.policy_net.2"
    assert hidden_layer(policy, LAST).consumer == "action_net"
    first = hidden_layer(policy, "mlp_extractor.policy_net.1")
    assert (first.producer, first.consumer) == (
        "mlp_extractor.policy_net.0",
        "mlp_extractor.policy_net.2",
    )


def test_masks_zero_incoming_bias_and_outgoing_weights(tiny_scenario: Scenario) -> None:
    policy = tiny_model(tiny_scenario).policy
    apply_masks(policy, unit_masks(policy, Prune("contrast", LAST, 0.25, (1, 5))))
    producer, head = policy.mlp_extractor.policy_net[2], policy.action_net
    for unit in (1, 5):
        assert torch.all(producer.weight[unit] == 0) and producer.bias[unit] == 0
        assert torch.all(head.weight[:, unit] == 0)
    assert torch.all(producer.weight[0] != 0)


def test_unit_out_of_range_is_rejected(tiny_scenario: Scenario) -> None:
    policy = tiny_model(tiny_scenario).policy
    with pytest.raises(MarlmodError, match="out of range"):
        unit_masks(policy, Prune("contrast", LAST, 0.25, (8,)))


def test_masked_weights_stay_exactly_zero_through_retraining(
    tiny_scenario: Scenario, tmp_path: Path
) -> None:
    model = tiny_model(tiny_scenario, bonus=1.0)
    learn(model, 128)
    save_model(model, tmp_path / "model.zip")
    make_env = resolve_env(tiny_scenario.env).factory(0.0)
    model = load_model(tmp_path / "model.zip", tiny_scenario, make_env, seed=0)
    masks = unit_masks(model.policy, Prune("random", LAST, 0.25, (0, 3)))
    before = model.policy.action_net.weight.detach().clone()
    learn(model, 256, callback=HoldMasks(masks))
    params = dict(model.policy.named_parameters())
    for name, mask in masks.items():
        assert torch.all(params[name][mask == 0] == 0), name
    assert not torch.equal(before, model.policy.action_net.weight)  # it did train
    assert sum(len(h) for h in [model.policy.optimizer._optimizer_step_post_hooks]) == 0


def test_without_holding_masks_pruned_weights_regrow(tiny_scenario: Scenario) -> None:
    """The control for the test above: Adam moves zeroed weights unless the mask is held."""
    model = tiny_model(tiny_scenario, bonus=1.0)
    learn(model, 128)
    masks = unit_masks(model.policy, Prune("random", LAST, 0.25, (0, 3)))
    apply_masks(model.policy, masks)
    learn(model, 256, continue_run=True)
    assert torch.any(model.policy.action_net.weight[:, [0, 3]] != 0)


def test_prune_round_trips_and_corrupt_masks_are_named(
    tiny_scenario: Scenario, tmp_path: Path
) -> None:
    policy = tiny_model(tiny_scenario).policy
    prune = Prune("contrast", LAST, 0.25, (2, 4))
    masks = unit_masks(policy, prune)
    save_prune(prune, masks, tmp_path)
    loaded, loaded_masks = load_prune(tmp_path)
    assert loaded == prune
    assert all(torch.equal(masks[k], loaded_masks[k]) for k in masks)
    (tmp_path / "masks.pt").write_bytes(b"not a tensor file")
    with pytest.raises(MarlmodError, match="masks.pt|corrupt"):
        load_prune(tmp_path)
