"""Scenario files as YAML mappings: ``extends:`` chains and ``--set`` overrides, before validation.

A scenario file may name a base file (``extends: base/aggression.yaml``, relative to the file),
or a list of them merged left to right (a game's base, then a study's); the bases' mapping is
deep-merged under the file's keys: mappings merge key by key, lists and scalars replace. Bases
may extend bases. ``--set key.path=value`` then assigns single values as if
the file had been edited. Everything here works on plain mappings; the schema in
``marlmod.config`` validates only the result, so an unknown key fails with its path wherever it
was written, and the digest hashes the resolved config.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from marlmod.errors import MarlmodError

EXTENDS = "extends"


def resolve_file(path: str | Path) -> dict[str, Any]:
    """The mapping a scenario file stands for: its ``extends`` chain merged, ``extends`` gone."""
    return _resolve(Path(path), ())


def _resolve(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    data = read_mapping(path)
    bases = data.pop(EXTENDS, None)
    if bases is None:
        return data
    names = bases if isinstance(bases, list) and bases else [bases]
    resolved: dict[str, Any] = {}
    for base in names:  # several bases merge left to right, then the file on top
        resolved = merge(resolved, _resolve_base(path, base, chain))
    return merge(resolved, data)


def _resolve_base(path: Path, base: object, chain: tuple[Path, ...]) -> dict[str, Any]:
    if not isinstance(base, str) or not base.strip():
        raise MarlmodError(
            f"{path}: extends must be the path of a base YAML file (or a list of them), "
            f"got {base!r}"
        )
    base_path = Path(os.path.normpath(path.parent / base))
    seen = (*chain, path)
    if any(base_path.resolve() == p.resolve() for p in seen):
        names = " -> ".join(str(p) for p in (*seen, base_path))
        raise MarlmodError(f"extends cycle: {names}")
    if not base_path.is_file():
        raise MarlmodError(f"{path}: extends {base!r}, but base file {base_path} is not found")
    return _resolve(base_path, seen)


def read_mapping(path: Path) -> dict[str, Any]:
    """One YAML file's top-level mapping (safe loader), or one clear error line."""
    if not path.is_file():
        raise MarlmodError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise MarlmodError(f"{path}: not valid YAML: {_one_line(err)}") from err
    if not isinstance(data, dict):
        raise MarlmodError(f"{path}: expected a mapping of scenario fields at the top level")
    return data


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` over ``base``: mappings merge recursively, anything else in ``overlay``
    (lists, scalars, null) replaces the base's value. Neither argument is changed."""
    merged = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_assignments(data: Mapping[str, Any], assignments: Iterable[str]) -> dict[str, Any]:
    """``data`` with each ``key.path=value`` assigned in turn, as an edit of the resolved file
    would: a value (mapping or not) replaces what was at its path; missing mappings on the way
    are created, so the schema, not this function, decides which paths exist."""
    result = copy.deepcopy(dict(data))
    for text in assignments:
        keys, value = parse_assignment(text)
        node = result
        for depth, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                raise MarlmodError(
                    f"--set {text}: {where} is {type(child).__name__} {child!r}, not a mapping; "
                    f"set it whole (--set {where}=...)"
                )
            node = child
        node[keys[-1]] = value
    return result


def parse_assignment(text: str) -> tuple[tuple[str, ...], Any]:
    """``'ppo.learning_rate=1e-4'`` -> ``(('ppo', 'learning_rate'), value)``; the value is parsed
    as YAML, exactly as in a file (``[0, 1]``, ``{a: 1}``, ``true``, ``null``)."""
    key, sep, raw = text.partition("=")
    keys = tuple(part.strip() for part in key.split("."))
    if not sep or not all(keys):
        raise MarlmodError(
            f"--set {text!r}: expected key.path=value, e.g. --set ppo.learning_rate=1e-4"
        )
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise MarlmodError(f"--set {text!r}: value is not valid YAML: {_one_line(err)}") from err
    return keys, value


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())
