"""Scenario files: ``extends`` chains merge as documented, ``--set`` edits the resolved mapping,
and every failure is one line naming the file, the chain or the key path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from marlmod.config import load_scenario, parse_scenario
from marlmod.config_files import apply_assignments, merge, parse_assignment
from marlmod.errors import MarlmodError


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def base(tmp_path: Path, tiny_dict: dict) -> Path:
    """The tiny scenario without its name: a base, incomplete on its own."""
    del tiny_dict["name"]
    return write(tmp_path / "base" / "tiny.yaml", tiny_dict)


def test_merge_recurses_into_mappings_and_replaces_everything_else() -> None:
    base = {"a": {"b": 1, "c": [1, 2], "d": {"e": 1}}, "f": 1}
    overlay = {"a": {"c": [3], "d": {"g": 2}}, "f": None, "h": 5}
    assert merge(base, overlay) == {
        "a": {"b": 1, "c": [3], "d": {"e": 1, "g": 2}},
        "f": None,
        "h": 5,
    }
    assert base == {"a": {"b": 1, "c": [1, 2], "d": {"e": 1}}, "f": 1}  # inputs untouched
    assert overlay == {"a": {"c": [3], "d": {"g": 2}}, "f": None, "h": 5}


def test_overlay_resolves_to_the_written_out_scenario(
    tmp_path: Path, base: Path, tiny_dict: dict
) -> None:
    overlay = write(
        tmp_path / "small.yaml",
        {
            "extends": "base/tiny.yaml",
            "name": "small",
            "seeds": [3],
            "ppo": {"n_epochs": 2},
            "prune": {"strategies": ["random"]},
        },
    )
    tiny_dict.update(name="small", seeds=[3])
    tiny_dict["ppo"]["n_epochs"] = 2
    tiny_dict["prune"]["strategies"] = ["random"]
    scenario = load_scenario(overlay)
    assert scenario == parse_scenario(tiny_dict)
    assert scenario.ppo.n_steps == 16  # the base's other ppo keys survive the overlay's ppo
    assert scenario.seeds == (3,) and scenario.prune.strategies == ("random",)  # lists replace


def test_chains_resolve_each_base_relative_to_its_own_file(tmp_path: Path, base: Path) -> None:
    write(tmp_path / "base" / "middle.yaml", {"extends": "tiny.yaml", "ppo": {"n_epochs": 3}})
    top = write(
        tmp_path / "runs" / "top.yaml",
        {"extends": "../base/middle.yaml", "name": "top", "ppo": {"n_steps": 32}},
    )
    scenario = load_scenario(top)
    assert (scenario.ppo.n_epochs, scenario.ppo.n_steps, scenario.ppo.n_copies) == (3, 32, 2)


def test_a_list_of_bases_merges_left_to_right_then_the_file(tmp_path: Path, base: Path) -> None:
    write(tmp_path / "base" / "study.yaml", {"ppo": {"n_epochs": 3, "n_steps": 32}})
    top = write(
        tmp_path / "top.yaml",
        {"extends": ["base/tiny.yaml", "base/study.yaml"], "name": "top", "ppo": {"n_steps": 64}},
    )
    scenario = load_scenario(top)
    assert (scenario.ppo.n_epochs, scenario.ppo.n_steps, scenario.ppo.n_copies) == (3, 64, 2)
    swapped = write(
        tmp_path / "swapped.yaml",
        {"extends": ["base/study.yaml", "base/tiny.yaml"], "name": "swapped"},
    )
    assert load_scenario(swapped).ppo.n_epochs == 1  # the later base wins


def test_extends_cycles_are_named_with_their_chain(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", {"extends": "b.yaml", "name": "a"})
    write(tmp_path / "b.yaml", {"extends": "a.yaml"})
    with pytest.raises(MarlmodError, match=r"^extends cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml$"):
        load_scenario(tmp_path / "a.yaml")
    write(tmp_path / "self.yaml", {"extends": "./self.yaml"})
    with pytest.raises(MarlmodError, match=r"extends cycle: .*self\.yaml -> .*self\.yaml$"):
        load_scenario(tmp_path / "self.yaml")


def test_missing_or_malformed_base_is_named(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", {"extends": "base/nope.yaml", "name": "a"})
    with pytest.raises(MarlmodError, match=r"a\.yaml: extends 'base/nope\.yaml', but base file "):
        load_scenario(tmp_path / "a.yaml")
    write(tmp_path / "a.yaml", {"extends": [["x.yaml"]], "name": "a"})
    with pytest.raises(MarlmodError, match=r"a\.yaml: extends must be the path of a base YAML"):
        load_scenario(tmp_path / "a.yaml")
    write(tmp_path / "a.yaml", {"extends": "list.yaml"})
    (tmp_path / "list.yaml").write_text("[1, 2]")
    with pytest.raises(MarlmodError, match=r"list\.yaml: expected a mapping"):
        load_scenario(tmp_path / "a.yaml")


def test_unknown_keys_in_an_overlay_or_its_base_fail_with_their_path(
    tmp_path: Path, base: Path
) -> None:
    overlay = {"extends": "base/tiny.yaml", "name": "x", "ppo": {"learnin_rate": 1}}
    with pytest.raises(MarlmodError, match=r"x\.yaml: at ppo\.learnin_rate: unknown key$"):
        load_scenario(write(tmp_path / "x.yaml", overlay))
    base.write_text(base.read_text() + "evaluation_episodes: 3\n")
    with pytest.raises(MarlmodError, match="at evaluation_episodes: unknown key"):
        load_scenario(tmp_path / "x.yaml")


def test_a_base_alone_is_not_a_scenario(base: Path) -> None:
    with pytest.raises(MarlmodError, match="at name: required key is missing"):
        load_scenario(base)


@pytest.mark.parametrize(
    ("assignment", "keys", "value"),
    [
        ("seeds=[0]", ("seeds",), [0]),
        ("seeds=[0, 2]", ("seeds",), [0, 2]),
        ("ppo.learning_rate=1.0e-4", ("ppo", "learning_rate"), 1e-4),
        ("prune.strategies=[contrast,random]", ("prune", "strategies"), ["contrast", "random"]),
        ("evaluation.deterministic=true", ("evaluation", "deterministic"), True),
        ("env.kwargs={grid_size: 6}", ("env", "kwargs"), {"grid_size": 6}),
        ("env.kwargs.grid_size=6", ("env", "kwargs", "grid_size"), 6),
        ("name=a=b", ("name",), "a=b"),  # only the first '=' splits
        ("env.trait_role=", ("env", "trait_role"), None),
    ],
)
def test_assignment_values_are_yaml(assignment: str, keys: tuple, value: object) -> None:
    assert parse_assignment(assignment) == (keys, value)


def test_assignments_reach_the_scenario_with_their_types(tiny_dict: dict) -> None:
    path_free = ["env.kwargs.grid_size=6", "ppo.learning_rate=1e-4", "seeds=[0, 2]"]
    data = apply_assignments(tiny_dict, path_free)
    scenario = parse_scenario(data)
    assert data["env"]["kwargs"] == {"grid_size": 6, "max_cycles": 20}  # an int, not "6"
    assert scenario.ppo.learning_rate == 1e-4 and scenario.seeds == (0, 2)


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("seeds", "--set 'seeds': expected key.path=value"),
        ("=3", "--set '=3': expected key.path=value"),
        ("ppo..n_epochs=1", "--set 'ppo..n_epochs=1': expected key.path=value"),
        ("seeds=[0", "--set 'seeds=[0': value is not valid YAML: "),
        ("ppo.n_epochs.x=1", "--set ppo.n_epochs.x=1: ppo.n_epochs is int 1, not a mapping"),
        ("ppo.learnin_rate=1", "--set ppo.learnin_rate=1: at ppo.learnin_rate: unknown key"),
        ("pruning.fraction=0.5", "--set pruning.fraction=0.5: at pruning: unknown key"),
        ("prune.fraction=lots", "--set prune.fraction=lots: at prune.fraction: Input should be"),
    ],
)
def test_bad_assignments_are_one_line_naming_them(
    tmp_path: Path, tiny_dict: dict, assignment: str, message: str
) -> None:
    path = write(tmp_path / "tiny.yaml", tiny_dict)
    with pytest.raises(MarlmodError, match=re.escape(message)) as caught:
        load_scenario(path, [assignment])
    assert len(str(caught.value).splitlines()) == 1


@pytest.mark.parametrize(
    ("assignments", "edit"),
    [
        (["ppo.learning_rate=1e-4"], {"ppo": {"learning_rate": 1e-4}}),
        (["seeds=[0, 1]", "pretrain_steps=256"], {"seeds": [0, 1], "pretrain_steps": 256}),
        (["env.kwargs.grid_size=6"], {"env": {"kwargs": {"grid_size": 6}}}),
        (["prune.fraction=0.1", "prune.fraction=0.5"], {"prune": {"fraction": 0.5}}),  # last wins
    ],
)
def test_set_gives_the_digest_of_the_edited_file(
    tmp_path: Path, tiny_dict: dict, assignments: list[str], edit: dict
) -> None:
    original = write(tmp_path / "tiny.yaml", tiny_dict)
    edited = write(tmp_path / "edited" / "tiny.yaml", merge(tiny_dict, edit))
    overridden = load_scenario(original, assignments)
    assert overridden == load_scenario(edited)
    assert overridden.digest == load_scenario(edited).digest != load_scenario(original).digest


def test_set_applies_after_extends(tmp_path: Path, base: Path) -> None:
    overlay = write(tmp_path / "x.yaml", {"extends": "base/tiny.yaml", "name": "x"})
    assert load_scenario(overlay, ["ppo.n_epochs=5"]).ppo.n_epochs == 5
    with pytest.raises(MarlmodError, match="at extends: unknown key"):
        load_scenario(overlay, ["extends=other.yaml"])  # a file's key, not a scenario field
