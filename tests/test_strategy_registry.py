"""The strategy registry: every entry is complete and tells the truth about its scorer, and config
validation derives its refusals (unknown names, unmet needs, layer kinds) from the entries."""

from __future__ import annotations

import re
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from small_nets import policy_3_4_4_3

from marlmod.config import parse_scenario
from marlmod.errors import MarlmodError
from marlmod.layers import ACTION_HEAD, LayerKind
from marlmod.record import activations_on
from marlmod.strategies.evidence import Evidence
from marlmod.strategies.registry import STRATEGIES, Need, StrategySpec, names_for

LAYER = "mlp_extractor.policy_net.3"
OPTIONAL_FIELDS = [f.name for f in fields(Evidence) if f.name not in ("acts", "trait")]


def full_evidence(layer: str = LAYER) -> Evidence:
    """Evidence with every field filled, as ``SeedRun.evidence`` builds it (``head_evidence`` for
    the action head: logits, and no routed units)."""
    torch.manual_seed(0)
    policy = policy_3_4_4_3()
    gen = np.random.default_rng(0)
    obs = gen.random((200, 3)).astype(np.float32)
    acts = activations_on(policy, layer, obs)
    trait = (acts[:, 1] + 0.1 * gen.normal(size=200)) > np.median(acts[:, 1])
    return Evidence(
        acts=acts,
        trait=trait,
        opportunity=trait | (gen.random(200) < 0.5),
        obs=obs,
        actions=np.where(trait, 2, gen.integers(0, 2, 200)),
        control_acts=np.maximum(gen.normal(size=(200, 5)), 0.0),
        policy=policy,
        layer=layer,
        routed_units=(0,) if layer != ACTION_HEAD else None,
    )


def scorer_output(name: str, ev: Evidence) -> np.ndarray:
    """The scorer itself, past ``score_units``' checks: what it really reads."""
    return np.asarray(STRATEGIES[name].load()(ev, np.random.default_rng(3)), dtype=np.float64)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_entry_is_complete_and_its_scorer_loads(name: str) -> None:
    spec = STRATEGIES[name]
    assert spec.name == name
    assert spec.summary and spec.layer_kinds <= set(LayerKind)
    assert all(isinstance(need, Need) for need in spec.needs)
    assert callable(spec.load())
    assert spec.scorer.startswith("marlmod.strategies."), "every strategy lives in strategies/"


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_declared_needs_are_exactly_the_evidence_the_scorer_reads(name: str) -> None:
    """Remove one optional Evidence field at a time: the scorer fails for exactly the fields its
    entry's needs name, so the registry cannot claim less (or more) than the scorer reads."""
    ev = full_evidence()
    scorer_output(name, ev)  # everything present: it scores
    declared = STRATEGIES[name].evidence_fields()
    for field in OPTIONAL_FIELDS:
        if field in declared:
            with pytest.raises(MarlmodError, match=f"needs Evidence.{field}"):
                scorer_output(name, replace(ev, **{field: None}))
        else:
            scorer_output(name, replace(ev, **{field: None}))


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_trait_label_need_matches_whether_scores_follow_the_labels(name: str) -> None:
    ev = full_evidence()
    shuffled = replace(ev, trait=np.random.default_rng(1).permutation(ev.trait))
    same = np.array_equal(scorer_output(name, ev), scorer_output(name, shuffled))
    assert same == (Need.TRAIT_LABELS not in STRATEGIES[name].needs)


@pytest.mark.parametrize("name", names_for(LayerKind.ACTION_HEAD))
def test_strategies_the_registry_allows_on_the_action_head_score_it(name: str) -> None:
    ev = full_evidence(ACTION_HEAD)
    assert scorer_output(name, ev).shape == (ev.units,)


def test_a_limited_entry_must_say_why() -> None:
    with pytest.raises(ValueError, match="layer_limit"):
        StrategySpec("x", "x", "m:f", frozenset(), frozenset({LayerKind.HIDDEN}))
    with pytest.raises(ValueError, match="module:function"):
        StrategySpec("x", "x", "no_function", frozenset(), frozenset(LayerKind), per_channel="x")


def test_an_entry_for_conv_channels_must_say_what_it_reads_of_a_channel() -> None:
    with pytest.raises(ValueError, match="per_channel"):
        StrategySpec("x", "x", "m:f", frozenset(), frozenset(LayerKind))
    with pytest.raises(ValueError, match="per_channel"):
        StrategySpec(
            "x", "x", "m:f", frozenset(), frozenset({LayerKind.HIDDEN}), "why", per_channel="mean"
        )
    for name in names_for(LayerKind.CONV_CHANNELS):
        assert STRATEGIES[name].per_channel, name


# ---------------------------------------------------------------- config validation
@pytest.mark.parametrize(
    "name", [n for n in STRATEGIES if LayerKind.ACTION_HEAD not in STRATEGIES[n].layer_kinds]
)
def test_config_refuses_a_strategy_on_a_layer_kind_it_cannot_rank(
    tiny_dict: dict, name: str
) -> None:
    tiny_dict["prune"].update(strategies=[name], action_head=[name])
    tiny_dict["pretrain"] = {"method": "routing"}  # so that routed's needs are met
    ranks = {  # the kinds each of them can rank, in the registry's words
        "routed": "a hidden dense layer",
    }.get(
        name,
        "a hidden dense layer, the channels of a convolutional layer or the units of all hidden "
        "dense layers at once",
    )
    message = (
        f"action_head strategy {name!r} cannot rank the action head, only {ranks}: "
        f"it {STRATEGIES[name].layer_limit}; valid: {', '.join(names_for(LayerKind.ACTION_HEAD))}"
    )
    with pytest.raises(MarlmodError, match=re.escape(message)):
        parse_scenario(tiny_dict)


def test_config_accepts_every_strategy_the_action_head_allows(tiny_dict: dict) -> None:
    allowed = list(names_for(LayerKind.ACTION_HEAD))
    tiny_dict["prune"].update(strategies=allowed, action_head=allowed)
    assert parse_scenario(tiny_dict).prune.action_head == tuple(allowed)


def test_config_refuses_a_strategy_that_cannot_rank_the_pruned_layer(
    tiny_dict: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hidden layer is checked like the head: an entry limited to another layer kind (as a
    strategy for convolutional channels would be) is refused for ``prune.layer``."""
    head_only = StrategySpec(
        "head_only",
        "ranks logits",
        "marlmod.strategies.activations:random_units",
        frozenset(),
        frozenset({LayerKind.ACTION_HEAD}),
        "reads the logits",
    )
    monkeypatch.setitem(STRATEGIES, "head_only", head_only)
    tiny_dict["prune"]["strategies"] = ["head_only"]
    with pytest.raises(MarlmodError, match="'head_only' cannot rank a hidden dense layer, only"):
        parse_scenario(tiny_dict)


@pytest.mark.parametrize(
    "name", [n for n in STRATEGIES if Need.ROUTED_PRETRAINING in STRATEGIES[n].needs]
)
def test_config_refuses_a_strategy_whose_needs_the_scenario_cannot_meet(
    tiny_dict: dict, name: str
) -> None:
    tiny_dict["prune"]["strategies"] = [name, "random"]
    message = f"prune strategy {name!r} needs routed pretraining: set pretrain.method: routing"
    with pytest.raises(MarlmodError, match=re.escape(message)):
        parse_scenario(tiny_dict)
    tiny_dict["pretrain"] = {"method": "routing"}
    assert name in parse_scenario(tiny_dict).prune.strategies


def test_unknown_strategy_is_refused_listing_the_registry(tiny_dict: dict) -> None:
    tiny_dict["prune"]["strategies"] = ["contrast", "contarst"]
    with pytest.raises(MarlmodError, match=re.escape(f"valid: {', '.join(STRATEGIES)}")):
        parse_scenario(tiny_dict)


def test_the_docs_table_lists_every_registered_strategy() -> None:
    readme = (Path(__file__).resolve().parent.parent / "docs" / "concepts.md").read_text()
    section = readme.split("### Locating strategies")[1].split("**Cell variants.**")[0]
    table = [line for line in section.splitlines() if line.startswith("| `")]
    listed = {name for line in table for name in re.findall(r"`(\w+)`", line.split("|")[1])}
    assert listed == set(STRATEGIES)
