"""Evaluation and recording rollouts on the fast route equal the reference route exactly.

The reference is how every committed result was measured: one ``ParallelEnv`` per episode
(``SharedPolicyVecEnv``) and ``policy.predict`` every step. The fast route steps the env's
batched twin and, for a policy without hooks, acts through ``marlmod.functional_policy``; it
must give the same actions (the same draws from torch's global generator), the same episodes and
so the same labels, returns, observations and activations.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.distributions import CategoricalDistribution

from envs.gathering import GatheringEnv
from envs.signalling import SignallingEnv
from marlmod import rollout as rollout_module
from marlmod.config import Scenario
from marlmod.functional_policy import most_likely_actions, normalised, probabilities, sample_actions
from marlmod.metrics import measure
from marlmod.rollout import Rollout, actions_of, episode_envs, predicts_functionally, rollout
from marlmod.train import build_model
from marlmod.vec_env import BatchedTwin, SharedPolicyVecEnv

GATHERING = partial(GatheringEnv, grid_size=5, max_cycles=20, aggression_bonus=1.0)
# Signalling labels roles (speaker, listeners) and opportunities (a low-value round)
SIGNALLING = partial(SignallingEnv, max_cycles=12, n_listeners=2, deception_bonus=0.5)
ENVS = [
    pytest.param(GATHERING, "attack", id="gathering"),
    pytest.param(SIGNALLING, "lie", id="signalling"),
]
RECORDED = ["mlp_extractor.policy_net.1", "mlp_extractor.policy_net.3"]


def policy_for(scenario: Scenario, make_env: partial, seed: int = 3) -> PPO:
    """A tiny policy trained a little, so its action probabilities are uneven."""
    model = build_model(scenario, make_env, seed)
    model.learn(128)
    return model


def reference_rollout(monkeypatch: pytest.MonkeyPatch, *args, **kwargs) -> Rollout:
    """``rollout`` on the reference route: per-copy envs, ``policy.predict`` every step."""
    with monkeypatch.context() as patch:
        patch.setattr(
            rollout_module,
            "episode_envs",
            lambda make_env, copies: SharedPolicyVecEnv([make_env] * copies),
        )
        patch.setattr(
            rollout_module,
            "actions_of",
            lambda policy, deterministic: (
                lambda obs: policy.predict(obs, deterministic=deterministic)[0]
            ),
        )
        return rollout(*args, **kwargs)


def assert_same_rollout(ref: Rollout, fast: Rollout) -> None:
    for name in ("trait", "opportunity", "task_returns", "obs", "actions", "roles"):
        a, b = getattr(ref, name), getattr(fast, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(ref.return_roles, fast.return_roles)
    assert ref.activations.keys() == fast.activations.keys()
    for path in ref.activations:
        np.testing.assert_array_equal(ref.activations[path], fast.activations[path])


@pytest.mark.parametrize(("make_env", "trait"), ENVS)
@pytest.mark.parametrize("deterministic", [False, True], ids=["sampled", "deterministic"])
def test_evaluation_equals_the_reference_route(
    monkeypatch: pytest.MonkeyPatch,
    tiny_scenario: Scenario,
    make_env: partial,
    trait: str,
    deterministic: bool,
) -> None:
    policy = policy_for(tiny_scenario, make_env).policy
    assert isinstance(episode_envs(make_env, 2), BatchedTwin)
    assert predicts_functionally(policy)
    ref = reference_rollout(monkeypatch, policy, make_env, 6, 11, trait, deterministic)
    with monkeypatch.context() as patch:  # the fast route never calls predict
        patch.setattr(policy, "predict", pytest.fail)
        fast = rollout(policy, make_env, 6, 11, trait, deterministic)
    assert_same_rollout(ref, fast)
    if not deterministic:  # sampled actions exercised the labels and several actions
        assert fast.trait.any() and not fast.trait.all()
        assert len(np.unique(fast.actions)) > 1


@pytest.mark.parametrize(("make_env", "trait"), ENVS)
def test_recording_equals_the_reference_route(
    monkeypatch: pytest.MonkeyPatch, tiny_scenario: Scenario, make_env: partial, trait: str
) -> None:
    """A recording acts through the hooked modules (``predict``) on the batched twin."""
    policy = policy_for(tiny_scenario, make_env).policy
    ref = reference_rollout(monkeypatch, policy, make_env, 4, 5, trait, record=RECORDED)
    fast = rollout(policy, make_env, 4, 5, trait, record=RECORDED)
    assert_same_rollout(ref, fast)
    assert all(len(a) == len(fast.trait) for a in fast.activations.values())


def test_the_fast_route_reads_the_live_weights(
    monkeypatch: pytest.MonkeyPatch, tiny_scenario: Scenario
) -> None:
    """The functional route reads the live parameters: after more training (or a prune applied
    in place) it acts as the updated policy does, like ``predict``."""
    model = policy_for(tiny_scenario, GATHERING)
    rollout(model.policy, GATHERING, 2, 0, "attack")
    model.learn(64)
    with torch.no_grad():
        model.policy.mlp_extractor.policy_net[2].weight[:3] = 0
    ref = reference_rollout(monkeypatch, model.policy, GATHERING, 4, 1, "attack")
    assert_same_rollout(ref, rollout(model.policy, GATHERING, 4, 1, "attack"))


def test_measure_is_unchanged_by_the_route(
    monkeypatch: pytest.MonkeyPatch, tiny_scenario: Scenario
) -> None:
    policy = policy_for(tiny_scenario, SIGNALLING).policy
    fast = measure(policy, SIGNALLING, 5, 7, "lie", trait_role="sender")
    with monkeypatch.context() as patch:
        patch.setattr(rollout_module, "actions_of", lambda p, d: lambda o: p.predict(o, d)[0])
        patch.setattr(rollout_module, "episode_envs", lambda f, n: SharedPolicyVecEnv([f] * n))
        assert measure(policy, SIGNALLING, 5, 7, "lie", trait_role="sender") == fast


def test_hooks_and_other_policies_act_through_predict(tiny_scenario: Scenario) -> None:
    policy = policy_for(tiny_scenario, GATHERING).policy
    handle = policy.mlp_extractor.policy_net[1].register_forward_hook(lambda *_: None)
    try:
        assert not predicts_functionally(policy)
        calls = []
        predict = policy.predict
        policy.predict = lambda *a, **k: calls.append(1) or predict(*a, **k)  # type: ignore[method-assign]
        actions_of(policy, False)(np.zeros((2, *policy.observation_space.shape), np.float32))
        assert calls == [1]
    finally:
        handle.remove()
        del policy.predict
    assert predicts_functionally(policy)


def test_an_env_without_a_twin_uses_per_copy_envs() -> None:
    class Variant(GatheringEnv):  # a subclass may change the rules the twin reproduces
        pass

    assert isinstance(episode_envs(partial(Variant, grid_size=5), 3), SharedPolicyVecEnv)


def test_actions_are_drawn_as_sb3s_distribution_draws_them() -> None:
    """Bitwise the probabilities SB3's ``Categorical`` samples from (a last-bit difference moves
    a draw only rarely, which rollouts of test size would not show), the same draws, the same
    mode."""
    logits = torch.randn(500, 8, generator=torch.Generator().manual_seed(0)) * 4
    dist = CategoricalDistribution(8).proba_distribution(logits)
    assert torch.equal(probabilities(normalised(logits)), dist.distribution.probs)
    torch.manual_seed(1)
    expected = dist.sample()
    torch.manual_seed(1)
    assert torch.equal(sample_actions(normalised(logits))[0], expected)
    assert torch.equal(most_likely_actions(normalised(logits)), dist.mode())
