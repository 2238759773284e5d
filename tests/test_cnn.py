"""CNN policies: a unit of a convolutional layer is a channel. A planted channel that fires exactly
on the trait rows is ranked first; pruning a channel zeroes exactly its kernel, its bias and every
weight that reads it (the network then computes what it computed with the channel silenced); the
masks stay zero through sb3 training; hooks never outlive an error."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from small_nets import cnn_policy

from marlmod.clusterability import policy_weights
from marlmod.config import parse_scenario
from marlmod.environments import resolve_env
from marlmod.errors import MarlmodError
from marlmod.layers import LayerKind
from marlmod.locate import score_units
from marlmod.prune import HoldMasks, Prune, apply_masks, layer_unit_masks, unit_masks, zeroed
from marlmod.record import activations_on, record_activations
from marlmod.strategies.evidence import Evidence
from marlmod.strategies.per_weight import credit
from marlmod.strategies.registry import names_for
from marlmod.train import build_model, learn

CONV = "features_extractor.cnn.1"
TRAIT_ACTION = 2


def planted_cnn() -> torch.nn.Module:
    """Conv 4 → 3 channels (3×3, 5×5 → 3×3 maps), then 4 dense units, then 3 logits. Channel 2
    reads plane 1, which is above 0.5 exactly on trait rows (below 0.1 elsewhere), and fires
    strongly only then (weakly at times elsewhere); through dense
    unit 0 it drives the trait logit. Channels 0 and 1 read noise planes and drive other logits."""
    policy = cnn_policy()
    conv = policy.features_extractor.cnn[0]
    dense = policy.mlp_extractor.policy_net[0]
    with torch.no_grad():
        for param in (conv.weight, conv.bias, dense.weight, dense.bias):
            param.zero_()
        conv.weight[0, 0] = 0.3
        conv.weight[1, 2] = 0.3
        conv.weight[2, 1] = 1.0
        conv.bias[2] = -0.5
        dense.weight[0, 18:27] = 0.2  # channel 2's nine positions (channel-major flattening)
        dense.weight[1, 0:9] = 0.2
        dense.weight[2, 9:18] = 0.2
        policy.action_net.weight.zero_()
        policy.action_net.bias.zero_()
        policy.action_net.weight[TRAIT_ACTION, 0] = 1.0
        policy.action_net.weight[0, 1] = 1.0
        policy.action_net.weight[1, 2] = 1.0
    return policy


def planted_evidence(policy: torch.nn.Module, rows: int = 400) -> Evidence:
    gen = np.random.default_rng(0)
    obs = gen.random((rows, 4, 5, 5)).astype(np.float32)
    trait = gen.random(rows) < 0.3
    on = trait[:, None, None]  # plane 1: 0.5–1 on trait rows, 0–0.1 elsewhere
    obs[:, 1] = np.where(on, 0.5 + 0.5 * obs[:, 1], 0.1 * obs[:, 1])
    actions = np.where(trait, TRAIT_ACTION, gen.integers(0, 2, rows))
    return Evidence(
        acts=activations_on(policy, CONV, obs),
        trait=trait,
        opportunity=np.ones(rows, dtype=bool),
        obs=obs,
        actions=actions,
        control_acts=np.maximum(gen.normal(size=(rows, 5)), 0.0),
        policy=policy,
        layer=CONV,
    )


def test_a_channel_is_recorded_as_its_spatial_mean() -> None:
    policy = planted_cnn()
    ev = planted_evidence(policy)
    assert ev.acts.shape == (400, 3)
    assert ((ev.acts[:, 2] > 4) == ev.trait).all() and (ev.acts[~ev.trait, 2] < 0.5).all()
    obs = torch.as_tensor(ev.obs[:7])
    maps = torch.relu(policy.features_extractor.cnn[0](obs)).detach().numpy()
    np.testing.assert_allclose(ev.acts[:7], maps.mean(axis=(2, 3)), rtol=1e-6)


@pytest.mark.parametrize(
    "name", ["contrast", "selective", "opportunity", "probe", "control", "attribution"]
)
def test_the_planted_channel_ranks_first(name: str) -> None:
    scores = score_units(name, planted_evidence(planted_cnn()), np.random.default_rng(0))
    assert scores.shape == (3,)
    assert int(np.argmax(scores)) == 2, scores


@pytest.mark.parametrize("name", names_for(LayerKind.CONV_CHANNELS))
def test_every_strategy_the_registry_allows_on_conv_channels_scores_them(name: str) -> None:
    scores = score_units(name, planted_evidence(planted_cnn()), np.random.default_rng(0))
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_weight_strategies_read_kernels_and_every_position_that_reads_a_channel() -> None:
    policy = planted_cnn()
    ev = planted_evidence(policy)
    # channel 2: kernel 9 × 1.0 in, 9 positions × 0.2 out; channels 0 and 1: 9 × 0.3 in, 9 × 0.2
    np.testing.assert_allclose(score_units("weight_magnitude", ev, None), [-4.5, -4.5, -10.8])
    rms = np.sqrt((ev.acts.astype(np.float64) ** 2).mean(axis=0))
    np.testing.assert_allclose(score_units("wanda", ev, None), -rms * 1.8, rtol=1e-6)


def test_attribution_sums_over_positions_the_effect_of_zeroing_the_channel() -> None:
    """Σ_positions h·∂logπ/∂h is the first-order change of logπ(trait action) when the whole
    channel is zeroed (small weights, so first order holds)."""
    policy = planted_cnn()
    with torch.no_grad():
        policy.action_net.weight[TRAIT_ACTION, 0] = 0.05
    ev = planted_evidence(policy)
    score = score_units("attribution", ev, np.random.default_rng(0))[2]

    def mean_logp() -> float:
        obs = torch.as_tensor(ev.obs[ev.trait])
        with torch.no_grad():
            dist = policy.get_distribution(obs)
            return dist.log_prob(torch.full((len(obs),), TRAIT_ACTION)).mean().item()

    before = mean_logp()
    apply_masks(policy, unit_masks(policy, Prune("x", CONV, 0.3, (2,))))
    assert before - mean_logp() == pytest.approx(score, rel=0.05)


def test_per_weight_credit_gives_each_side_of_a_channel_its_whole_score() -> None:
    policy = planted_cnn()
    with torch.no_grad():  # every weight alive, so every share is defined
        policy.features_extractor.cnn[0].weight.add_(0.01)
        policy.mlp_extractor.policy_net[0].weight.add_(0.01)
    ev = planted_evidence(policy)
    scores = np.array([0.5, -1.0, 2.0])
    weights = credit(ev, scores)
    kernel = weights["features_extractor.cnn.0.weight"]
    bias = weights["features_extractor.cnn.0.bias"]
    np.testing.assert_allclose(kernel.sum(axis=(1, 2, 3)) + bias, scores)
    columns = weights["mlp_extractor.policy_net.0.weight"].reshape(4, 3, 9)
    np.testing.assert_allclose(columns.sum(axis=(0, 2)), scores)


# ---------------------------------------------------------------- pruning a channel
def two_conv_policy() -> torch.nn.Module:
    """Conv 4 → 3 (padding 1: 5×5 maps), conv 3 → 2 (3×3 maps), 18 flattened → 4 → 3 logits."""
    torch.manual_seed(0)
    return cnn_policy(conv=((3, 3, 1, 1), (2, 3, 1, 0)))


def silenced_logits(policy: torch.nn.Module, path: str, channel: int, obs: torch.Tensor):
    """The logits with ``channel`` of ``path`` forced to zero by a hook (the reference)."""

    def silence(_m: object, _i: object, out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        out[:, channel] = 0.0
        return out

    handle = dict(policy.named_modules())[path].register_forward_hook(silence)
    try:
        with torch.no_grad():
            return policy.get_distribution(obs).distribution.logits
    finally:
        handle.remove()


@pytest.mark.parametrize(
    ("path", "channel", "consumer", "expected_zeros"),
    [
        # kernel 4·3·3 + bias 1, and the next conv's input channel: 2 out × 3·3
        ("features_extractor.cnn.1", 1, "features_extractor.cnn.2.weight", 36 + 1 + 18),
        # kernel 3·3·3 + bias 1, and the dense layer's columns of the channel's 9 positions × 4
        ("features_extractor.cnn.3", 0, "mlp_extractor.policy_net.0.weight", 27 + 1 + 36),
    ],
)
def test_pruning_a_channel_zeroes_exactly_its_kernel_bias_and_readers(
    path: str, channel: int, consumer: str, expected_zeros: int
) -> None:
    policy = two_conv_policy()
    obs = torch.rand(16, 4, 5, 5)
    reference = silenced_logits(policy, path, channel, obs)
    masks = layer_unit_masks(policy, path, (channel,))
    assert consumer in masks and zeroed(masks) == expected_zeros
    assert not any(name.startswith(("vf_", "mlp_extractor.value")) for name in masks)
    pruned = copy.deepcopy(policy)
    apply_masks(pruned, masks)
    with torch.no_grad():
        logits = pruned.get_distribution(obs).distribution.logits
        values = pruned.predict_values(obs)
        unpruned_values = policy.predict_values(obs)
    torch.testing.assert_close(logits, reference, rtol=0, atol=1e-6)
    assert torch.equal(values, unpruned_values)  # the critic has its own conv stack
    assert (activations_on(pruned, path, obs.numpy())[:, channel] == 0).all()


def test_a_channel_out_of_range_is_refused() -> None:
    with pytest.raises(MarlmodError, match="out of range for features_extractor.cnn.3 \\(2 units"):
        layer_unit_masks(two_conv_policy(), "features_extractor.cnn.3", (2,))


def cnn_dict(tiny_dict: dict) -> dict:
    tiny_dict["env"]["kwargs"]["observation"] = "planes"
    tiny_dict["network"] = {"kind": "cnn", "conv": [{"channels": 3, "kernel": 3}], "hidden": [8]}
    tiny_dict["ppo"]["backend"] = "sb3"
    tiny_dict["prune"]["layer"] = CONV
    return tiny_dict


def test_channel_masks_stay_exactly_zero_through_sb3_training(tiny_dict: dict) -> None:
    scenario = parse_scenario(cnn_dict(tiny_dict))
    model = build_model(scenario, resolve_env(scenario.env).factory(1.0), seed=0)
    assert model.policy.features_extractor is not model.policy.vf_features_extractor
    learn(model, 128)
    masks = unit_masks(model.policy, Prune("random", CONV, 0.5, (0, 2)))
    before = model.policy.action_net.weight.detach().clone()
    learn(model, 256, callback=HoldMasks(masks))
    params = dict(model.policy.named_parameters())
    for name, mask in masks.items():
        assert torch.all(params[name][mask == 0] == 0), name
    assert not torch.equal(before, model.policy.action_net.weight)  # it did train


# ---------------------------------------------------------------- hooks and errors
def hook_count(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in module.modules())


def test_recording_and_attribution_hooks_are_removed_after_errors() -> None:
    policy = planted_cnn()
    with pytest.raises(ZeroDivisionError), record_activations(policy, [CONV]):
        policy.get_distribution(torch.rand(2, 4, 5, 5))
        assert hook_count(policy) == 1
        raise ZeroDivisionError
    assert hook_count(policy) == 0
    ev = planted_evidence(policy)
    broken = Evidence(**{**ev.__dict__, "actions": np.full(len(ev.trait), 7)})  # not an action
    with pytest.raises((ValueError, IndexError, RuntimeError)):
        score_units("attribution", broken, np.random.default_rng(0))
    assert hook_count(policy) == 0


# ---------------------------------------------------------------- building and refusing
def test_clusterability_graph_has_one_node_per_channel() -> None:
    """Channel-to-channel edges are kernel-slice L1 norms; the first dense layer's edge from a
    channel sums |w| over the channel's positions."""
    policy = two_conv_policy()
    weights = policy_weights(policy)
    assert [w.shape for w in weights] == [(3, 4), (2, 3), (4, 2), (3, 4)]
    conv2 = policy.features_extractor.cnn[2].weight.detach().double().abs()
    np.testing.assert_allclose(weights[1], conv2.sum(dim=(2, 3)).numpy())
    dense = policy.mlp_extractor.policy_net[0].weight.detach().double().abs()
    np.testing.assert_allclose(weights[2], dense.reshape(4, 2, 9).sum(dim=2).numpy())


def test_cnn_config_needs_sb3_and_refuses_what_it_cannot_serve(tiny_dict: dict) -> None:
    data = cnn_dict(tiny_dict)
    assert parse_scenario(data).network.layers == (CONV, "mlp_extractor.policy_net.1")
    for change, message in (
        ({"ppo": {**data["ppo"], "backend": "lean"}}, "network.kind cnn trains on ppo.backend sb3"),
        ({"network": {"kind": "cnn", "hidden": [8]}}, "network.kind cnn needs at least one layer"),
        ({"network": {"conv": [{"channels": 2}]}}, "network.conv is for network.kind: cnn"),
        ({"pretrain": {"method": "routing"}}, "routes the trait into units of one hidden dense"),
        ({"pretrain": {"method": "modular"}}, "a CNN policy's conv layers have no such places"),
        ({"prune": {**data["prune"], "layer": "features_extractor.cnn.2"}}, "not a hidden layer"),
        ({"prune": {**data["prune"], "layer": "vf_features_extractor.cnn.1"}}, "value network"),
    ):
        with pytest.raises(MarlmodError, match=message):
            parse_scenario({**data, **change})


def test_mlp_configs_keep_their_digest(tiny_dict: dict) -> None:
    before = parse_scenario(tiny_dict).digest
    tiny_dict["network"] = {**tiny_dict["network"], "kind": "mlp", "conv": []}
    assert parse_scenario(tiny_dict).digest == before


def test_the_cnn_refuses_flat_observations_and_layers_that_shrink_the_view(
    tiny_dict: dict,
) -> None:
    data = cnn_dict(tiny_dict)
    data["env"]["kwargs"]["observation"] = "flat"
    scenario = parse_scenario(data)
    with pytest.raises(MarlmodError, match="set env.kwargs.observation: planes"):
        build_model(scenario, resolve_env(scenario.env).factory(1.0), seed=0)
    data["env"]["kwargs"]["observation"] = "planes"
    data["network"]["conv"] = [{"channels": 2, "kernel": 5}, {"channels": 2, "kernel": 5}]
    scenario = parse_scenario(data)
    with pytest.raises(MarlmodError, match="shrinks the 7×7 observation to nothing"):
        build_model(scenario, resolve_env(scenario.env).factory(1.0), seed=0)
