"""Property test: every mutation of a valid config is either accepted or rejected with a
MarlmodError naming a key path — never a traceback from deeper down, never a silent default."""

from __future__ import annotations

import copy
from typing import Any

from conftest import TINY
from hypothesis import given, settings
from hypothesis import strategies as st

from marlmod.config import parse_scenario
from marlmod.errors import MarlmodError

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**9),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(tree, dict):
        out = []
        for key, value in tree.items():
            out.append((*prefix, key))
            out += paths(value, (*prefix, key))
        return out
    return []


PATHS = paths(TINY)


def set_path(tree: dict, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def drop_path(tree: dict, path: tuple) -> None:
    for key in path[:-1]:
        tree = tree[key]
    del tree[path[-1]]


def assert_every_problem_names_a_key_path(message: str) -> None:
    """One line 'config: at <path>: ...', or 'config: N problems:' then N lines '  at <path>: ...'
    (describe_validation_error): every rejection names where it is."""
    first, *rest = message.splitlines()
    if not rest:
        assert first.startswith("config: at "), message
        return
    assert first == f"config: {len(rest)} problems:", message
    assert all(line.startswith("  at ") for line in rest), message


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(PATHS), value=JUNK, action=st.sampled_from(["set", "drop", "extra"]))
def test_mutated_configs_are_accepted_or_named(path: tuple, value: Any, action: str) -> None:
    data = copy.deepcopy(TINY)
    if action == "set":
        set_path(data, path, value)
    elif action == "drop":
        drop_path(data, path)
    else:
        set_path(data, (*path[:-1], "unexpected_key"), value)
    try:
        scenario = parse_scenario(data)
    except MarlmodError as err:
        assert_every_problem_names_a_key_path(str(err))
        return
    if action == "extra" and not (path[:-1] and path[-2] == "kwargs"):
        raise AssertionError(f"unknown key at {path[:-1]} was silently accepted")
    assert scenario.digest  # accepted configs are complete and hashable
