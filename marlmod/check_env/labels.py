"""Labels: every acting agent's info carries the declared, well-typed behaviour labels."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from marlmod.check_env.records import PROTOCOL_DOC, REQUIRED_FLOATS, Finding, Play, Spec


def is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _flag_problems(info: dict, key: str, names: tuple[str, ...]) -> list[str]:
    flags = info.get(key)
    if not isinstance(flags, dict):
        return [f"infos[agent][{key!r}] is missing or not a dict"]
    problems = []
    if set(flags) != set(names):
        problems.append(f"{key} keys {sorted(flags)} differ from the declared {sorted(names)}")
    problems += [
        f"{key}[{name!r}] is {type(v).__name__}, not bool"
        for name, v in flags.items()
        if not isinstance(v, (bool, np.bool_))
    ]
    return problems


def label_problems(info: Any, spec: Spec) -> list[str]:
    """What is wrong with one agent's info for one step (empty when well-formed)."""
    if not isinstance(info, dict):
        return ["no info dict for an agent that acted"]
    problems = _flag_problems(info, "behaviour", spec.behaviours)
    if spec.opportunities:
        problems += _flag_problems(info, "opportunity", spec.opportunities)
    for key in (*REQUIRED_FLOATS, *spec.costs):
        value = info.get(key)
        if not is_real(value) or not math.isfinite(value):
            problems.append(f"infos[agent][{key!r}] is {value!r}, not a finite float")
    if "role" in info and not isinstance(info["role"], str):
        problems.append(f"infos[agent]['role'] is {info['role']!r}, not a str")
    return problems


def check_labels(play: Play, spec: Spec) -> list[Finding]:
    """Every acting agent's info carries well-typed labels on every step."""
    first: dict[str, tuple[int, str, int]] = {}  # problem -> (step, agent, count)
    for s, step in enumerate(play.steps):
        for agent in step.acting:
            for problem in label_problems(step.infos.get(agent), spec):
                s0, a0, n = first.get(problem, (s, agent, 0))
                first[problem] = (s0, a0, n + 1)
    return [
        Finding(
            "labels",
            f"{problem} (first at step {s}, agent {agent!r}; {n} agent-steps)",
            f"fill infos[agent] every step for every agent as in {PROTOCOL_DOC}",
        )
        for problem, (s, agent, n) in first.items()
    ]


def labelled(play: Play, spec: Spec):
    """(step index, agent, info) for the well-formed agent-steps only."""
    for s, step in enumerate(play.steps):
        for agent in step.acting:
            info = step.infos.get(agent)
            if not label_problems(info, spec):
                yield s, agent, info
