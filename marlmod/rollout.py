"""Rolling out a trained policy: behaviour rates, task return, and (optionally) activations.

Evaluation and recording are one rollout so that every recorded activation row lines up with the
behaviour label of the same agent-step. Each env copy plays exactly one episode; rows of a copy
whose episode has ended are dropped, so every episode counts once.

Speed without changing a number: evaluation runs after every training chunk of every cell, so
its episodes are stepped on the env's batched twin where it declares one (``episode_envs``:
equal to the per-copy ``ParallelEnv`` copies step for step, ``tests/test_fast_env.py``), and a
policy without hooks acts through ``marlmod.functional_policy`` (``actions_of``: the operations
of ``policy.predict`` and the same draws from torch's global generator, without its module calls
and NumPy round trips). A recording's hooks must see the pass through the modules, so a hooked
policy acts through ``policy.predict`` itself. Both routes give identical rollouts
(``tests/test_rollout.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.vec_env import VecEnv

from marlmod.environments import EnvFactory
from marlmod.functional_policy import (
    action_log_probs,
    architecture,
    functional,
    most_likely_actions,
    parameters_in_order,
    sample_actions,
)
from marlmod.record import record_activations
from marlmod.vec_env import SharedPolicyVecEnv, batched_venv

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
    """Play ``episodes`` episodes, one per env copy (copy ``k`` seeded ``seed + k``), drawing
    actions from torch's global generator seeded ``seed``; record ``record``'s module outputs."""
    venv = episode_envs(make_env, episodes)
    venv.seed(seed)
    obs = venv.reset()
    torch.manual_seed(seed)
    live = np.ones(venv.num_envs, dtype=bool)
    returns = np.zeros(venv.num_envs)
    trait_rows, opportunity_rows, live_rows, obs_rows, action_rows, role_rows = (
        [] for _ in range(6)
    )
    with record_activations(policy, record) as log:
        act = actions_of(policy, deterministic)  # chosen with the recording's hooks on
        for _ in range(MAX_EPISODE_STEPS):
            actions = act(obs)
            obs_rows.append(obs)
            action_rows.append(actions)
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


def episode_envs(make_env: EnvFactory, copies: int) -> VecEnv:
    """``copies`` copies of ``make_env``'s env: its batched twin when it declares one for its
    exact class (the same episodes, ``tests/test_fast_env.py``), else one env object per copy."""
    twin = batched_venv(make_env, copies)
    return twin if twin is not None else SharedPolicyVecEnv([make_env] * copies)


def actions_of(policy: BasePolicy, deterministic: bool) -> Callable[[np.ndarray], np.ndarray]:
    """The actions ``policy.predict(obs, deterministic)`` returns, flat, as a function of the
    observations: computed by ``marlmod.functional_policy`` where that is exact (a plain MLP
    ``ActorCriticPolicy`` on a Box with discrete actions and no forward hook), the same operations
    and the same draws from torch's global generator; through ``predict`` otherwise. Choose again
    after hooks come or go."""
    if not predicts_functionally(policy):

        def predict(obs: np.ndarray) -> np.ndarray:
            return np.asarray(policy.predict(obs, deterministic=deterministic)[0]).reshape(-1)

        return predict
    assert isinstance(policy, ActorCriticPolicy)
    arch = architecture(policy)
    assert arch is not None
    params = parameters_in_order(policy)
    policy.set_training_mode(False)  # as predict leaves it

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            log_probs = action_log_probs(params, torch.as_tensor(obs), arch)
            if deterministic:
                return most_likely_actions(log_probs).numpy()
            return sample_actions(log_probs)[0].numpy()

    return act


def predicts_functionally(policy: BasePolicy) -> bool:
    """Whether ``actions_of`` can act for ``policy`` without calling ``predict``: what
    ``predict`` adds for anything else (other distributions, image scaling, action clipping,
    hooks, a subclass's overrides) is then absent."""
    return (
        type(policy) is ActorCriticPolicy
        and isinstance(policy.action_space, spaces.Discrete)
        and isinstance(policy.observation_space, spaces.Box)
        and not (is_image_space(policy.observation_space) and policy.normalize_images)
        and policy.share_features_extractor
        and functional(policy)
    )
