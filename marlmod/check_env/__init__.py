"""Checking an environment against marlmod's protocol before any training is spent on it.

``check_env`` runs PettingZoo's own API and seed tests, then plays the environment at random —
twice with the bonus on (same seed) and once with it off (same seed, same actions) — and hands
those recordings to small pure checks. Each check returns a list of ``Finding``s saying what
failed and what to fix; an empty list means the check passed. The protocol itself is written
down in ``docs/environment_protocol.md``.

One module per kind of check (``spec``, ``spaces``, ``labels``, ``rewards``,
``determinism``), the recordings they read in ``records`` and how they are made in ``running``;
this module runs them in order.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from marlmod.check_env.determinism import check_bonus_isolated, check_determinism, first_difference
from marlmod.check_env.labels import check_labels, label_problems
from marlmod.check_env.records import Finding, Play, Spec, Step
from marlmod.check_env.rewards import (
    check_bonus_off,
    check_bonus_pays,
    check_occurrence,
    check_reward_sum,
)
from marlmod.check_env.running import check_render, random_play, run_pettingzoo_tests
from marlmod.check_env.spaces import check_observations, check_spaces
from marlmod.check_env.spec import read_spec
from marlmod.environments import resolve_constructor
from marlmod.errors import MarlmodError

__all__ = [
    "Finding",
    "Play",
    "Spec",
    "Step",
    "check_bonus_isolated",
    "check_bonus_off",
    "check_bonus_pays",
    "check_determinism",
    "check_env",
    "check_labels",
    "check_observations",
    "check_occurrence",
    "check_render",
    "check_reward_sum",
    "check_spaces",
    "first_difference",
    "label_problems",
    "parse_kwargs",
    "random_play",
    "read_spec",
    "run_pettingzoo_tests",
]


def check_env(
    env_id: str, kwargs: dict[str, Any], steps: int = 1000, bonus: float = 1.0, seed: int = 0
) -> list[Finding]:
    """Every check on the env behind ``env_id`` (registry id or ``module:factory``)."""
    constructor = resolve_constructor(env_id)
    try:
        probe = constructor(**kwargs)
    except (TypeError, ValueError) as err:
        raise MarlmodError(f"kwargs rejected by {env_id!r}: {err}") from err
    spec, findings = read_spec(getattr(probe, "metadata", None))
    findings += check_spaces(probe)
    probe.close()
    if spec is None:
        return findings + run_pettingzoo_tests(partial(constructor, **kwargs), steps)
    if spec.bonus_kwarg in kwargs:
        raise MarlmodError(f"--kwargs sets the bonus kwarg {spec.bonus_kwarg!r}; use --bonus")
    make_on = partial(constructor, **kwargs, **{spec.bonus_kwarg: bonus})
    make_off = partial(constructor, **kwargs, **{spec.bonus_kwarg: 0.0})
    try:
        make_off().close()
        env = make_on()
    except TypeError as err:
        finding = Finding(
            "construct",
            f"the bonus kwarg {spec.bonus_kwarg!r} is rejected: {err}",
            "accept the declared bonus kwarg in the constructor",
        )
        return [*findings, finding]
    obs_space = env.observation_space
    findings += run_pettingzoo_tests(make_on, steps)
    try:
        on, again, off = (random_play(m, steps, seed) for m in (make_on, make_on, make_off))
    except Exception as err:  # a crash under random play is a finding, not a traceback
        finding = Finding(
            "play",
            f"random play raised {type(err).__name__}: {err}",
            "step() must accept any action of action_space(agent) for the agents in env.agents",
        )
        return [*findings, finding]
    findings += check_observations(on, obs_space) + check_labels(on, spec)
    findings += check_reward_sum(on, spec)
    findings += check_bonus_off(off, spec) + check_bonus_pays(on, spec)
    determinism = check_determinism(on, again)
    findings += determinism or check_bonus_isolated(on, off, spec)
    findings += check_occurrence(on, spec) + check_render(partial(constructor, **kwargs))
    return findings


def parse_kwargs(text: str) -> dict[str, Any]:
    """``--kwargs`` JSON as a dict, or one clear error."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise MarlmodError(f"--kwargs is not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise MarlmodError("--kwargs must be a JSON object, e.g. '{\"grid_size\": 5}'")
    return value
