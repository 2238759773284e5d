"""Rolling out a trained policy: behaviour rates, task return, and (optionally) activations.

Evaluation and recording are one rollout so that every recorded activation row lines up with the
behaviour label of the same agent-step. Each env copy plays exactly one episode; rows of a copy
whose episode has ended are dropped, so every episode counts once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from stable_baselines3.common.policies import BasePolicy

from marlmod.environments import EnvFactory
from marlmod.record import record_activations
from marlmod.vec_env import SharedPolicyVecEnv

MAX_EPISODE_STEPS = 100_000


@dataclass(frozen=True)
class Rollout:
    """Per agent-step labels (``rows``) and per (episode, agent) task returns."""

    trait: np.ndarray  # bool [rows]
    opportunity: np.ndarray  # bool [rows]; all True when the env labels no opportunity
    task_returns: np.ndarray  # float [episodes × agents]
    activations: dict[str, np.ndarray]  # path -> float32 [rows, units]
    obs: np.ndarray  # float32 [rows, obs_dim]: what the policy saw
    actions: np.ndarray  # int [rows]: what it did
    roles: np.ndarray  # str [rows]: infos[agent]["role"] ("" when the env has no roles)
    return_roles: np.ndarray  # str [episodes × agents]: the role behind each task return

    def trait_rate(self, role: str | None = None) -> float:
        """Trait occurrences per agent-step (of agents in ``role`` only, if given)."""
        return float(self.trait[self.rows_of(role)].mean())

    def rows_of(self, role: str | None) -> np.ndarray:
        return np.ones(len(self.trait), bool) if role is None else self.roles == role

    @property
    def task_return(self) -> float:
        """Mean task reward per agent per episode (capability; bonus excluded)."""
        return float(self.task_returns.mean())

    def task_return_by_role(self) -> dict[str, float]:
        """Mean task return per role; empty for an env without roles."""
        return {
            str(r): float(self.task_returns[self.return_roles == r].mean())
            for r in np.unique(self.return_roles)
            if r
        }


def rollout(
    policy: BasePolicy,
    make_env: EnvFactory,
    episodes: int,
    seed: int,
    trait: str,
    deterministic: bool = False,
    record: Sequence[str] = (),
) -> Rollout:
    venv = SharedPolicyVecEnv([make_env] * episodes)
    venv.seed(seed)
    obs = venv.reset()
    torch.manual_seed(seed)
    live = np.ones(venv.num_envs, dtype=bool)
    returns = np.zeros(venv.num_envs)
    trait_rows, opportunity_rows, live_rows, obs_rows, action_rows, role_rows = (
        [] for _ in range(6)
    )
    with record_activations(policy, record) as log:
        for _ in range(MAX_EPISODE_STEPS):
            actions, _ = policy.predict(obs, deterministic=deterministic)
            obs_rows.append(obs)
            action_rows.append(np.asarray(actions).reshape(-1))
            obs, _, dones, infos = venv.step(actions)
            live_rows.append(live.copy())
            trait_rows.append([bool(i.get("behaviour", {}).get(trait, False)) for i in infos])
            opportunity_rows.append(
                [bool(i.get("opportunity", {}).get(trait, True)) for i in infos]
            )
            role_rows.append(np.array([str(i.get("role", "")) for i in infos]))
            returns += live * np.array([i.get("task_reward", 0.0) for i in infos])
            live &= ~dones
            if not live.any():
                break
        else:
            raise RuntimeError(f"episodes did not end within {MAX_EPISODE_STEPS} steps")
    venv.close()
    keep = np.concatenate(live_rows)
    acts = {path: log.stacked(path)[keep] for path in record}
    roles = np.concatenate(role_rows)
    return Rollout(
        np.concatenate(trait_rows)[keep],
        np.concatenate(opportunity_rows)[keep],
        returns,
        acts,
        np.concatenate(obs_rows)[keep],
        np.concatenate(action_rows)[keep],
        roles[keep],
        role_rows[0] if role_rows else np.array([], dtype=str),
    )
