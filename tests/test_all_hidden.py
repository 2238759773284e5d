"""``prune.layer: all_hidden``: the units of every hidden dense layer ranked jointly, a fraction of
all of them pruned, stored per layer, and every stage downstream (scores, masks, per-weight cells,
relocation, layer contrasts) working on them — or refused at load with the reason."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from small_nets import policy_3_4_4_3

from marlmod.config import parse_scenario
from marlmod.errors import MarlmodError
from marlmod.layers import ALL_HIDDEN, LayerKind
from marlmod.locate import score_units
from marlmod.pipeline import SeedRun
from marlmod.prune import Prune, apply_masks, load_prune, save_prune, unit_masks, unit_prune
from marlmod.record import activations_on
from marlmod.seed_extras import relocation
from marlmod.strategies.evidence import Evidence
from marlmod.strategies.per_weight import credit
from marlmod.strategies.registry import names_for

LAYERS = ("mlp_extractor.policy_net.1", "mlp_extractor.policy_net.3")
WIDTHS = ((LAYERS[0], 4), (LAYERS[1], 4))


def planted_policy() -> torch.nn.Module:
    """obs 3 → 4 → 4 → 3 actions; first-layer unit 2 is 3·obs[0], the trait is obs[0] > 0.7, and
    the second layer does not read that unit (so no unit there copies it)."""
    torch.manual_seed(0)
    policy = policy_3_4_4_3()
    with torch.no_grad():
        first = policy.mlp_extractor.policy_net[0]
        first.weight[2] = torch.tensor([3.0, 0.0, 0.0])
        first.weight[:2, 0] = first.weight[3, 0] = 0.0
        first.bias[2] = 0.0
        policy.mlp_extractor.policy_net[2].weight[:, 2] = 0.0
    return policy


def evidence(layer: str, policy: torch.nn.Module | None = None) -> Evidence:
    """Evidence of ``layer`` (or all hidden layers side by side) on the same states."""
    policy = policy or planted_policy()
    gen = np.random.default_rng(0)
    obs = gen.random((300, 3)).astype(np.float32)
    trait = obs[:, 0] > 0.7
    paths = LAYERS if layer == ALL_HIDDEN else (layer,)
    return Evidence(
        acts=np.concatenate([activations_on(policy, p, obs) for p in paths], axis=1),
        trait=trait,
        obs=obs,
        actions=np.where(trait, 2, gen.integers(0, 2, 300)),
        policy=policy,
        layer=layer,
    )


def test_units_are_numbered_across_layers_and_stored_per_layer(tmp_path: Path) -> None:
    prune = unit_prune("contrast", ALL_HIDDEN, 0.25, [1, 4, 7], WIDTHS)
    assert prune.layer_units == ((LAYERS[0], (1,)), (LAYERS[1], (0, 3)))
    save_prune(prune, {}, tmp_path)
    stored = json.loads((tmp_path / "prune.json").read_text())
    assert stored["layer_units"] == {LAYERS[0]: [1], LAYERS[1]: [0, 3]}
    assert load_prune(tmp_path)[0] == prune
    single = unit_prune("contrast", LAYERS[1], 0.25, [0, 3], WIDTHS[1:])
    assert "layer_units" not in single.to_json()  # single-layer prune files as before
    with pytest.raises(MarlmodError, match="out of range for all_hidden"):
        unit_prune("contrast", ALL_HIDDEN, 0.25, [8], WIDTHS)
    with pytest.raises(MarlmodError, match="lists its units per layer"):
        Prune("contrast", ALL_HIDDEN, 0.25, (1,))


def test_all_hidden_masks_silence_each_layers_units() -> None:
    """Pruning unit 1 of layer 1 and units 0 and 3 of layer 2 computes what the network computes
    with those units forced to zero; the Linear between the layers carries both masks."""
    torch.manual_seed(0)
    policy = policy_3_4_4_3()
    prune = unit_prune("contrast", ALL_HIDDEN, 0.25, [1, 4, 7], WIDTHS)
    masks = unit_masks(policy, prune)
    between = masks["mlp_extractor.policy_net.2.weight"]
    assert (between[:, 1] == 0).all() and (between[[0, 3], :] == 0).all()
    assert int((between == 0).sum()) == 4 + 2 * 4 - 2
    obs = torch.rand(32, 3)
    handles = [
        dict(policy.named_modules())[path].register_forward_hook(
            lambda _m, _i, out, units=units: out.index_fill(1, torch.tensor(units), 0.0)
        )
        for path, units in prune.layer_units
    ]
    with torch.no_grad():
        reference = policy.get_distribution(obs).distribution.logits
    for handle in handles:
        handle.remove()
    pruned = copy.deepcopy(policy)
    apply_masks(pruned, masks)
    with torch.no_grad():
        logits = pruned.get_distribution(obs).distribution.logits
    torch.testing.assert_close(logits, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["attribution", "weight_magnitude", "wanda"])
def test_policy_strategies_score_all_hidden_as_each_layer_side_by_side(name: str) -> None:
    """Joint ranking means comparable scores: over all_hidden each unit gets exactly the score
    its own layer would give it (attribution still flows through the layers after it)."""
    joint = score_units(name, evidence(ALL_HIDDEN), np.random.default_rng(0))
    each = [score_units(name, evidence(path), np.random.default_rng(0)) for path in LAYERS]
    np.testing.assert_allclose(joint, np.concatenate(each), rtol=1e-12)


@pytest.mark.parametrize("name", ["contrast", "selective", "probe"])
def test_the_planted_unit_of_the_first_layer_ranks_first_among_all(name: str) -> None:
    scores = score_units(name, evidence(ALL_HIDDEN), np.random.default_rng(0))
    assert scores.shape == (8,) and int(np.argmax(scores)) == 2, scores


@pytest.mark.parametrize("name", names_for(LayerKind.ALL_HIDDEN))
def test_every_strategy_the_registry_allows_on_all_hidden_scores_it(name: str) -> None:
    ev = evidence(ALL_HIDDEN)
    gen = np.random.default_rng(2)
    ev = Evidence(
        **{
            **ev.__dict__,
            "opportunity": ev.trait | (gen.random(len(ev.trait)) < 0.5),
            "control_acts": np.maximum(gen.normal(size=(len(ev.trait), 5)), 0.0),
        }
    )
    scores = score_units(name, ev, np.random.default_rng(0))
    assert scores.shape == (8,) and np.isfinite(scores).all()


def test_per_weight_credit_sums_both_layers_on_the_linear_between_them() -> None:
    scores = np.random.default_rng(1).normal(size=8)
    joint = credit(evidence(ALL_HIDDEN), scores)
    first = credit(evidence(LAYERS[0]), scores[:4])
    second = credit(evidence(LAYERS[1]), scores[4:])
    shared = "mlp_extractor.policy_net.2.weight"
    np.testing.assert_allclose(joint[shared], first[shared] + second[shared])
    np.testing.assert_allclose(joint["action_net.weight"], second["action_net.weight"])
    np.testing.assert_allclose(
        joint["mlp_extractor.policy_net.0.weight"], first["mlp_extractor.policy_net.0.weight"]
    )


def test_config_accepts_all_hidden_and_refuses_what_needs_one_layer(tiny_dict: dict) -> None:
    tiny_dict["prune"].update(layer=ALL_HIDDEN, strategies=["contrast", "cluster", "random"])
    assert parse_scenario(tiny_dict).network.units(ALL_HIDDEN) == (
        ("mlp_extractor.policy_net.1", 8),
        ("mlp_extractor.policy_net.3", 8),
    )
    tiny_dict["prune"]["strategies"] = ["routed"]
    with pytest.raises(
        MarlmodError,
        match=re.escape("'routed' cannot rank the units of all hidden dense layers at once"),
    ):
        parse_scenario(tiny_dict)
    tiny_dict["prune"]["strategies"] = ["contrast"]
    tiny_dict["pretrain"] = {"method": "routing"}
    with pytest.raises(MarlmodError, match="routes the trait into units of one hidden dense"):
        parse_scenario(tiny_dict)


def test_a_seed_scores_prunes_and_relocates_across_all_hidden_layers(
    tiny_dict: dict, tmp_path: Path
) -> None:
    """Through the pipeline: evidence holds every hidden layer side by side, scores one per
    hidden unit, the prune a fraction of all of them, stored per layer; relocation re-locates
    across the layers and excludes the units already pruned."""
    tiny_dict["network"]["hidden"] = [8, 4]
    tiny_dict["prune"].update(layer=ALL_HIDDEN, fraction=0.25, relocate=["contrast"])
    seed = SeedRun(parse_scenario(tiny_dict), 0, tmp_path)
    model = seed.pretrained_model()
    ev = seed.evidence(model)
    assert ev.acts.shape[1] == ev.control_acts.shape[1] == 12
    first = activations_on(model.policy, LAYERS[0], ev.obs[:5])
    np.testing.assert_allclose(ev.acts[:5, :8], first, atol=1e-6)
    seed.prune_for("contrast", model)
    prune, masks = load_prune(seed.dir / "contrast")
    assert len(prune.units) == 3  # round(0.25 × 12): the same share of all hidden units
    assert len(seed.scores("contrast", model)) == 12
    assert sum(len(u) for _, u in prune.layer_units) == 3
    result = relocation(seed, "contrast")
    if "new_units" in result:
        assert not set(result["new_units"]) & set(prune.units)
    assert (seed.dir / "pretrain" / "timing.csv").is_file()
