"""Spaces: one shared observation and action space, and observations inside it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from marlmod.check_env.records import Finding, Play


def check_spaces(env: ParallelEnv) -> list[Finding]:
    """Parameter sharing: one Box observation space and one Discrete action space for all."""
    agents = list(env.possible_agents)
    obs0, act0 = env.observation_space(agents[0]), env.action_space(agents[0])
    findings = []
    for agent in agents[1:]:
        if env.observation_space(agent) != obs0 or env.action_space(agent) != act0:
            findings.append(
                Finding(
                    "spaces",
                    f"agent {agent!r} has other spaces than {agents[0]!r}",
                    "one policy acts for every agent: pad observations to one shape (add a "
                    "role flag) and use one action space",
                )
            )
    if not isinstance(obs0, spaces.Box):
        findings.append(Finding("spaces", f"observation space is {obs0}", "use a flat Box"))
    if not isinstance(act0, spaces.Discrete):
        findings.append(
            Finding(
                "spaces",
                f"action space is {act0}",
                "marlmod's shared-policy VecEnv takes Discrete actions; discretise them",
            )
        )
    return findings


def check_observations(play: Play, obs_space: Callable[[str], spaces.Space]) -> list[Finding]:
    """Every observation (after reset and after each step) lies in its declared space."""
    batches = [(f"reset {e}", o) for e, o in enumerate(play.resets)]
    batches += [(f"step {s}", step.observations) for s, step in enumerate(play.steps)]
    for where, observations in batches:
        for agent, obs in observations.items():
            space = obs_space(agent)
            if not space.contains(obs):
                return [
                    Finding(
                        "observations",
                        f"{where}: observation of {agent!r} is outside {space} "
                        f"({_describe_outside(space, obs)})",
                        "return observations of the declared shape and dtype within the "
                        "declared bounds, or widen observation_space",
                    )
                ]
    return []


def _describe_outside(space: spaces.Space, obs: Any) -> str:
    arr = np.asarray(obs)
    if not isinstance(space, spaces.Box):
        return f"value {obs!r}"
    if arr.shape != space.shape:
        return f"shape {arr.shape}"
    if arr.dtype != space.dtype:
        return f"dtype {arr.dtype}"
    return f"values in [{arr.min():.3g}, {arr.max():.3g}]"
