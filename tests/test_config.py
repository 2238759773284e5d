"""Scenario configs: every shipped config loads, and bad input fails naming the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from marlmod.atomic import read_json
from marlmod.config import load_scenario, parse_scenario
from marlmod.environments import resolve_env
from marlmod.errors import MarlmodError
from marlmod.experiment import stored_digest

ROOT = Path(__file__).resolve().parent.parent

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
BASES = sorted((ROOT / "configs" / "base").glob("*.yaml"))
COMMITTED_RUNS = sorted((ROOT / "results").glob("*/run.json"))
# Configs whose env needs an optional extra: checked where it is installed (pip install '.[lab2d]').
NEEDS = {"commons_harvest": "dmlab2d", "clean_up": "dmlab2d"}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_are_valid(path: Path) -> None:
    scenario = load_scenario(path)
    if path.stem in NEEDS:
        pytest.importorskip(NEEDS[path.stem])
    resolve_env(scenario.env)
    assert scenario.name == path.stem


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_compare_against_random_units(path: Path) -> None:
    assert "random" in load_scenario(path).prune.strategies


@pytest.mark.parametrize("info_path", COMMITTED_RUNS, ids=[p.parent.name for p in COMMITTED_RUNS])
def test_each_committed_result_is_its_configs_run(info_path: Path) -> None:
    """configs/<name>.yaml, with its extends chain, is still the config results/<name> was made
    with: `marlmod run` on it resumes those results (the check prepare_run_dir makes) instead of
    refusing them. Rewriting configs as bases and overlays must keep every digest."""
    config = ROOT / "configs" / f"{info_path.parent.name}.yaml"
    assert config.is_file(), f"no config for committed results {info_path.parent}"
    assert load_scenario(config).digest == stored_digest(read_json(info_path), info_path)


def test_committed_results_are_checked() -> None:
    assert COMMITTED_RUNS, "results/*/run.json not found: the digest check above checked nothing"


@pytest.mark.parametrize("path", BASES, ids=[p.stem for p in BASES])
def test_base_configs_are_extended_and_not_runnable_alone(path: Path) -> None:
    """configs/base/ holds shared parts only (configs/README.md): each is used by a scenario,
    and none is mistaken for one (no name of its own)."""
    with pytest.raises(MarlmodError, match="at name: required key is missing"):
        load_scenario(path)
    users = [c for c in [*CONFIGS, *BASES] if path.resolve() in bases_of(c)]
    assert users, f"{path} is extended by no config"


def bases_of(config: Path) -> list[Path]:
    """The files ``config`` names in ``extends`` (one, a list, or none)."""
    bases = yaml.safe_load(config.read_text()).get("extends") or []
    return [(config.parent / b).resolve() for b in ([bases] if isinstance(bases, str) else bases)]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(learning_rat=1), "at learning_rat: unknown key"),
        (lambda d: d["ppo"].update(learning_rat=1), "at ppo.learning_rat: unknown key"),
        (lambda d: d["prune"].update(fraction=1.5), "at prune.fraction: Input should be less"),
        (
            lambda d: d["prune"].update(fraction="lots"),
            "at prune.fraction: Input should be a valid",
        ),
        (lambda d: d.pop("seeds"), "at seeds: required key is missing"),
        (lambda d: d["prune"].update(strategies=["magic"]), "unknown strategy 'magic'; valid: "),
        (
            lambda d: d["prune"].update(layer="policy.9"),
            "'policy.9' is not a hidden layer of the policy; valid: mlp_extractor.policy_net.1",
        ),
        (
            lambda d: d["prune"].update(layer="action_net"),
            "'action_net' is the action head: masking it masks the action itself, not a module, "
            "so it is pruned only in the cells that prune.action_head asks for (results mark "
            "them); valid layers: mlp_extractor.policy_net.1, mlp_extractor.policy_net.3",
        ),
        (
            lambda d: d["prune"].update(layer="mlp_extractor.value_net.1"),
            "is in the value network, which does not choose actions; valid layers: "
            "mlp_extractor.policy_net.1, mlp_extractor.policy_net.3",
        ),
        (
            lambda d: d["prune"].update(layer="mlp_extractor.policy_net.2"),
            "'mlp_extractor.policy_net.2' is not a hidden layer of the policy; valid: "
            "mlp_extractor.policy_net.1, mlp_extractor.policy_net.3",
        ),
        (lambda d: d["prune"].update(weights=["probe"]), "weights strategy 'probe' is not in"),
        (lambda d: d["prune"].update(weights=["magic"]), "unknown strategy 'magic'; valid: "),
        (
            lambda d: d["prune"].update(strategies=["contrast", "wanda"], action_head=["wanda"]),
            "action_head strategy 'wanda' cannot rank the action head, only a hidden dense "
            "layer, the channels of a convolutional layer or the units of all hidden dense layers "
            "at once: it reads the wiring around a hidden layer (the layer before it and the one "
            "after); valid: contrast, random, selective, opportunity, probe, control, "
            "attribution, activation_magnitude",
        ),
        (lambda d: d["network"].update(activation="gelu"), "at network.activation"),
        (lambda d: d.update(seeds=[1, 1]), "seeds must not repeat"),
        (
            lambda d: d["env"].update(bonus=-1),
            "at env.bonus: Input should be greater than or equal to 0",
        ),
    ],
)
def test_bad_fields_name_their_key(tiny_dict: dict, mutate, message: str) -> None:
    mutate(tiny_dict)
    with pytest.raises(MarlmodError, match=re.escape(message)):
        parse_scenario(tiny_dict)


def test_every_problem_is_listed_with_its_key_path(tiny_dict: dict) -> None:
    tiny_dict["ppo"]["learnin_rate"] = 1
    tiny_dict["prune"]["fraction"] = 2
    del tiny_dict["seeds"]
    with pytest.raises(MarlmodError) as caught:
        parse_scenario(tiny_dict, source="x.yaml")
    assert str(caught.value).splitlines() == [
        "x.yaml: 3 problems:",
        "  at seeds: required key is missing",
        "  at ppo.learnin_rate: unknown key",
        "  at prune.fraction: Input should be less than or equal to 1",
    ]


def test_unprintable_keys_keep_one_problem_per_line(tiny_dict: dict) -> None:
    tiny_dict["env"]["\x85"] = 0  # NEL: a line break to str.splitlines
    tiny_dict["ppo"]["a\nb"] = 0
    with pytest.raises(MarlmodError) as caught:
        parse_scenario(tiny_dict, source="x.yaml")
    assert str(caught.value).splitlines()[1:] == [
        "  at env.'\\x85': unknown key",
        "  at ppo.'a\\nb': unknown key",
    ]


def test_config_is_frozen(tiny_dict: dict) -> None:
    scenario = parse_scenario(tiny_dict)
    with pytest.raises(Exception, match="frozen"):
        scenario.pretrain_steps = 5  # type: ignore[misc]


def test_digest_changes_with_any_field(tiny_dict: dict) -> None:
    a = parse_scenario(tiny_dict).digest
    tiny_dict["ppo"]["n_epochs"] = 2
    assert parse_scenario(tiny_dict).digest != a


def test_adding_weight_and_action_head_cells_keeps_the_digest(tiny_dict: dict) -> None:
    """They choose which cells run, not what any stage computes: an existing run resumes and
    computes only the new cells (tests/test_end_to_end.py runs it)."""
    before = parse_scenario(tiny_dict).digest
    tiny_dict["prune"].update(weights=["contrast", "random"], action_head=["contrast"])
    assert parse_scenario(tiny_dict).digest == before


@pytest.mark.parametrize("hidden", [[8], [8, 8, 8]])
def test_policy_layers_are_the_activations_of_the_built_policy(
    tiny_dict: dict, hidden: list[int]
) -> None:
    """What validation accepts as prune.layer is exactly what the model has: every activation
    module of the policy MLP."""
    from torch import nn

    from marlmod.train import build_model

    tiny_dict["network"]["hidden"] = hidden
    tiny_dict["prune"]["layer"] = f"mlp_extractor.policy_net.{2 * len(hidden) - 1}"
    scenario = parse_scenario(tiny_dict)
    policy = build_model(scenario, resolve_env(scenario.env).factory(0.0), seed=0).policy
    built = [
        name
        for name, module in policy.named_modules()
        if name.startswith("mlp_extractor.policy_net.") and isinstance(module, nn.ReLU)
    ]
    assert list(scenario.network.policy_layers) == built


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(MarlmodError, match="config file not found"):
        load_scenario(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(MarlmodError, match="not valid YAML"):
        load_scenario(bad)
    bad.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(MarlmodError, match="expected a mapping"):
        load_scenario(bad)


@pytest.mark.parametrize(
    ("env_update", "message"),
    [
        ({"id": "marlmod/nothing-v0"}, "unknown environment 'marlmod/nothing-v0'; registered: "),
        ({"id": "no_such_module:factory"}, "cannot import environment"),
        ({"kwargs": {"grid_sise": 5}}, "env.kwargs rejected"),
        ({"kwargs": {"aggression_bonus": 2.0}}, "set env.bonus instead"),
        ({"trait": "theft"}, "env.trait 'theft' is not a behaviour"),
    ],
)
def test_environment_problems_are_named(tiny_dict: dict, env_update: dict, message: str) -> None:
    tiny_dict["env"].update(env_update)
    with pytest.raises(MarlmodError, match=message.replace(".", r"\.")):
        resolve_env(parse_scenario(tiny_dict).env)
