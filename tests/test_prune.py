"""Pruning: the right weights are zeroed (units, individual weights, action logits), they stay
exactly zero through retraining, and a stored prune loads back (tensors only), also one stored
before prunes had a granularity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from marlmod.compiled_update import cpp_compiler
from marlmod.config import Scenario, parse_scenario
from marlmod.environments import resolve_env
from marlmod.errors import MarlmodError
from marlmod.prune import (
    HoldMasks,
    Prune,
    apply_masks,
    hidden_layer,
    load_prune,
    masks_for,
    save_prune,
    unit_masks,
    zeroed,
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


@pytest.mark.parametrize(
    "backend",
    [
        "sb3",
        "lean",
        pytest.param(
            "compiled",  # the fused step bypasses optimizer.step(); hooks must still run
            marks=pytest.mark.skipif(cpp_compiler() is None, reason="needs a C++ compiler"),
        ),
    ],
)
def test_masked_weights_stay_exactly_zero_through_retraining(
    tiny_dict: dict, tmp_path: Path, backend: str
) -> None:
    tiny_dict["ppo"]["backend"] = backend
    tiny_scenario = parse_scenario(tiny_dict)
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


PRODUCER, HEAD = "mlp_extractor.policy_net.2", "action_net"
SOME_WEIGHTS = (
    (f"{PRODUCER}.weight", (0, 9, 63)),
    (f"{PRODUCER}.bias", (7,)),
    (f"{HEAD}.weight", (5,)),
)


def test_weight_prune_zeroes_exactly_the_named_entries(tiny_scenario: Scenario) -> None:
    policy = tiny_model(tiny_scenario).policy
    prune = Prune("contrast", LAST, 0.25, (), "weights", SOME_WEIGHTS)
    masks = masks_for(policy, prune)
    assert zeroed(masks) == 5
    apply_masks(policy, masks)
    producer = policy.mlp_extractor.policy_net[2]
    assert producer.weight[0, 0] == 0 and producer.weight[1, 1] == 0 and producer.weight[7, 7] == 0
    assert producer.bias[7] == 0 and policy.action_net.weight[0, 5] == 0
    assert int((producer.weight == 0).sum()) == 3  # nothing else in the layer
    with pytest.raises(MarlmodError, match="weight index out of range"):
        masks_for(policy, Prune("c", LAST, 0.25, (), "weights", ((f"{HEAD}.bias", (6,)),)))
    with pytest.raises(MarlmodError, match="unknown parameter"):
        masks_for(policy, Prune("c", LAST, 0.25, (), "weights", (("nope.weight", (0,)),)))


def test_unit_prune_count_is_what_weight_cells_match(tiny_scenario: Scenario) -> None:
    """Two units of an 8-wide layer between 8 inputs and 6 logits: 2 × (8 + 1 + 6) entries."""
    policy = tiny_model(tiny_scenario).policy
    assert zeroed(masks_for(policy, Prune("contrast", LAST, 0.25, (1, 5)))) == 30


def test_action_head_prune_holds_its_logits_at_zero(tiny_scenario: Scenario) -> None:
    policy = tiny_model(tiny_scenario).policy
    prune = Prune("contrast", HEAD, 0.25, (1, 4))
    assert prune.action_head
    apply_masks(policy, masks_for(policy, prune))
    obs = torch.rand(5, policy.observation_space.shape[0])
    logits = policy.action_net(policy.mlp_extractor.forward_actor(obs)).detach()
    assert torch.all(logits[:, [1, 4]] == 0) and torch.all(logits[:, [0, 2, 3, 5]] != 0)
    with pytest.raises(MarlmodError, match="logit index out of range"):
        masks_for(policy, Prune("contrast", HEAD, 0.25, (6,)))


@pytest.mark.parametrize("kind", ["weights", "action_head"])
def test_weight_and_head_masks_stay_exactly_zero_through_retraining(
    tiny_scenario: Scenario, kind: str
) -> None:
    model = tiny_model(tiny_scenario, bonus=1.0)
    prune = (
        Prune("random", LAST, 0.25, (), "weights", SOME_WEIGHTS)
        if kind == "weights"
        else Prune("random", HEAD, 0.25, (2,))
    )
    masks = masks_for(model.policy, prune)
    learn(model, 256, callback=HoldMasks(masks))
    params = dict(model.policy.named_parameters())
    for name, mask in masks.items():
        assert torch.all(params[name][mask == 0] == 0), name
        assert torch.any(params[name][mask == 1] != 0), name  # the rest trained on


def test_prune_json_without_granularity_loads_as_a_unit_prune(
    tiny_scenario: Scenario, tmp_path: Path
) -> None:
    """Stored results (e.g. results/aggression/seed_*/<strategy>/prune.json) predate the
    granularity field; they must load unchanged so runs resume without recomputation."""
    policy = tiny_model(tiny_scenario).policy
    old = {"fraction": 0.25, "layer": LAST, "strategy": "contrast", "units": [2, 4]}
    (tmp_path / "prune.json").write_text(json.dumps(old, indent=2, sort_keys=True))
    torch.save(unit_masks(policy, Prune("contrast", LAST, 0.25, (2, 4))), tmp_path / "masks.pt")
    prune, masks = load_prune(tmp_path)
    assert prune == Prune("contrast", LAST, 0.25, (2, 4), "units", ())
    assert zeroed(masks) == 30


def test_weight_prune_round_trips_and_bad_granularity_is_named(
    tiny_scenario: Scenario, tmp_path: Path
) -> None:
    policy = tiny_model(tiny_scenario).policy
    prune = Prune("contrast", LAST, 0.25, (), "weights", SOME_WEIGHTS)
    save_prune(prune, masks_for(policy, prune), tmp_path)
    assert load_prune(tmp_path)[0] == prune
    stored = json.loads((tmp_path / "prune.json").read_text())
    assert stored["granularity"] == "weights" and stored["weights"][f"{HEAD}.weight"] == [5]
    stored["granularity"] = "neurons"
    (tmp_path / "prune.json").write_text(json.dumps(stored))
    with pytest.raises(MarlmodError, match="corrupt or missing prune .*granularity 'neurons'"):
        load_prune(tmp_path)
