"""Environments under stress: 10k random-action steps per kwargs variant, checking the protocol's
invariants every step (finite rewards that add up from their labelled parts, well-typed labels,
observations inside their space) with check-env's own pure checks."""

from __future__ import annotations

from functools import partial

import pytest

from envs.gathering import GatheringEnv
from envs.signalling import SignallingEnv
from marlmod.check_env import (
    check_bonus_pays,
    check_labels,
    check_observations,
    check_reward_sum,
    random_play,
    read_spec,
)

STEPS = 10_000
GATHERING_VARIANTS = [
    {"n_agents": 2, "aggression_bonus": 1.0},
    {"n_agents": 4, "grid_size": 5, "aggression_bonus": 3.0, "zap_range": 1, "freeze_steps": 1},
    {
        "n_agents": 3,
        "grid_size": 9,
        "apple_density": 1.0,
        "respawn_prob": 1.0,
        "aggression_bonus": 0.0,
        "zap_cost": 0.0,
        "view_radius": 1,
        "max_cycles": 7,
    },
    {
        "n_agents": 2,
        "grid_size": 2,
        "apple_density": 0.0,
        "aggression_bonus": 0.5,
        "freeze_steps": 50,
        "max_cycles": 300,
    },
]


SIGNALLING_VARIANTS = [
    {"deception_bonus": 0.5},
    {"n_sites": 2, "n_listeners": 3, "deception_bonus": 2.0, "low_prob": 1.0, "max_cycles": 3},
    {
        "n_sites": 7,
        "n_listeners": 1,
        "deception_bonus": 0.0,
        "low_value": 0.0,
        "high_value": 5.0,
        "low_prob": 0.0,
        "max_cycles": 200,
    },
]
VARIANTS = [(GatheringEnv, k) for k in GATHERING_VARIANTS] + [
    (SignallingEnv, k) for k in SIGNALLING_VARIANTS
]


@pytest.mark.parametrize(
    ("env_class", "kwargs"),
    VARIANTS,
    ids=lambda v: v.__name__ if isinstance(v, type) else "-".join(map(str, v.values())),
)
def test_env_invariants_over_10k_random_steps(env_class: type, kwargs: dict) -> None:
    make_env = partial(env_class, **kwargs)
    env = make_env()
    spec, problems = read_spec(env.metadata)
    assert spec is not None and not problems
    play = random_play(make_env, STEPS, seed=len(kwargs))
    findings = (
        check_labels(play, spec)
        + check_reward_sum(play, spec)
        + check_observations(play, env.observation_space)
    )
    if kwargs.get(spec.bonus_kwarg, 0.0) > 0:
        findings += check_bonus_pays(play, spec)
    assert findings == [], "\n".join(map(str, findings))
