"""LeanPPO learns bitwise the same weights as stable-baselines3's PPO, and refuses, naming why,
the models its shortcuts would not reproduce."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer

import marlmod.functional_policy
from envs.gathering import GatheringEnv
from envs.signalling import SignallingEnv
from marlmod.errors import MarlmodError
from marlmod.lean_ppo import LeanPPO
from marlmod.vec_env import SharedPolicyVecEnv, batched_venv

# Short episodes so time-limit truncation (value bootstrapping) happens inside every rollout.
GATHERING = partial(GatheringEnv, grid_size=5, max_cycles=9, aggression_bonus=1.0)
SIGNALLING = partial(SignallingEnv, deception_bonus=1.0)


def train(cls: type[PPO], venv, steps: int = 384, **kwargs) -> PPO:
    settings = dict(n_steps=16, batch_size=24, n_epochs=3, learning_rate=1e-3, ent_coef=0.01)
    settings.update(kwargs)
    model = cls(
        "MlpPolicy",
        venv,
        policy_kwargs={"net_arch": {"pi": [16, 16], "vf": [16, 16]}},
        seed=7,
        device="cpu",
        verbose=0,
        **settings,
    )
    model.learn(steps)
    return model


def assert_same_weights(a: PPO, b: PPO) -> None:
    sa, sb = a.policy.state_dict(), b.policy.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    # and the optimiser moved identically (Adam's moments are part of the training state)
    for pa, pb in zip(a.policy.parameters(), b.policy.parameters(), strict=True):
        ea, eb = a.policy.optimizer.state[pa], b.policy.optimizer.state[pb]
        assert torch.equal(ea["exp_avg"], eb["exp_avg"])
        assert torch.equal(ea["exp_avg_sq"], eb["exp_avg_sq"])


@pytest.mark.parametrize(
    "make_venv",
    [
        pytest.param(lambda: batched_venv(GATHERING, 3), id="batched-gathering"),
        pytest.param(lambda: SharedPolicyVecEnv([GATHERING] * 2), id="per-copy-gathering"),
        pytest.param(lambda: SharedPolicyVecEnv([SIGNALLING] * 2), id="signalling"),
    ],
)
def test_lean_ppo_learns_bitwise_the_same_weights_as_sb3(make_venv) -> None:
    reference = train(PPO, make_venv())
    lean = train(LeanPPO, make_venv())
    assert lean.num_timesteps == reference.num_timesteps
    assert_same_weights(reference, lean)
    # the env was left in the same state: the next observation is the same
    assert (reference._last_obs == lean._last_obs).all()


def test_lean_ppo_stops_early_on_target_kl_like_sb3() -> None:
    reference = train(PPO, batched_venv(GATHERING, 2), target_kl=1e-4, learning_rate=3e-3)
    lean = train(LeanPPO, batched_venv(GATHERING, 2), target_kl=1e-4, learning_rate=3e-3)
    assert reference._n_updates == lean._n_updates < 3 * (384 // (16 * 4))
    assert_same_weights(reference, lean)


def test_lean_ppo_logs_the_same_training_records_as_sb3() -> None:
    models = [train(cls, batched_venv(GATHERING, 2), steps=64) for cls in (PPO, LeanPPO)]
    logged = []
    for model in models:
        model.set_random_seed(11)  # both draw the same actions and minibatches
        model.collect_rollouts(model.env, _NoCallback(model), model.rollout_buffer, model.n_steps)
        model.logger.name_to_value.clear()
        model.train()
        logged.append(dict(model.logger.name_to_value))
    reference, lean = logged
    assert reference.keys() == lean.keys()
    for key, value in reference.items():
        assert lean[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


class RecordingBuffer(RolloutBuffer):
    """A buffer subclass (as gradient routing uses) that the lean loop must not bypass."""

    adds = 0

    def add(self, *args, **kwargs) -> None:
        RecordingBuffer.adds += 1
        super().add(*args, **kwargs)


def test_lean_ppo_refuses_what_its_loops_would_not_reproduce() -> None:
    """No quiet fallback to SB3's loops: the model is refused at build, naming why and the
    backend that trains it."""
    with pytest.raises(MarlmodError, match="RecordingBuffer.*bypass.*ppo.backend: sb3"):
        train(LeanPPO, batched_venv(GATHERING, 2), rollout_buffer_class=RecordingBuffer)
    with pytest.raises(MarlmodError, match="clip_range_vf.*ppo.backend: sb3"):
        train(LeanPPO, batched_venv(GATHERING, 2), clip_range_vf=0.2)
    # SB3's own loops train both (the sb3 backend)
    RecordingBuffer.adds = 0
    train(PPO, batched_venv(GATHERING, 2), steps=64, rollout_buffer_class=RecordingBuffer)
    assert RecordingBuffer.adds == 64 // 4  # one add per vector step (4 slots)


def test_lean_loops_read_the_policy_through_modules_only_while_hooked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rollouts and the update read an unhooked MLP functionally; a forward hook (routing's, a
    recorder's) must see the pass, so a hooked policy is read through its modules."""
    calls = []
    original = marlmod.functional_policy.module_outputs

    def counting(policy, obs):
        calls.append(len(obs))
        return original(policy, obs)

    monkeypatch.setattr(marlmod.functional_policy, "module_outputs", counting)
    model = train(LeanPPO, batched_venv(GATHERING, 2), steps=64)
    assert calls == []
    seen = []
    model.policy.mlp_extractor.policy_net[1].register_forward_hook(lambda *_: seen.append(1))
    model.learn(64, reset_num_timesteps=False)
    assert calls and len(seen) == len(calls)
    assert 24 in calls and 4 in calls  # minibatches (update) and vector steps (rollouts)


def _NoCallback(model: PPO):
    from stable_baselines3.common.callbacks import BaseCallback

    class Nothing(BaseCallback):
        def _on_step(self) -> bool:
            return True

    callback = Nothing()
    callback.init_callback(model)
    return callback


def test_a_loaded_lean_model_trains_like_sb3_with_the_multi_tensor_optimiser(
    tmp_path: Path,
) -> None:
    """Loading restores the optimiser's saved param groups; LeanPPO turns foreach back on and
    continued training still matches SB3's exactly."""
    reference = train(PPO, batched_venv(GATHERING, 2))
    reference.save(tmp_path / "model.zip")
    for group in reference.policy.optimizer.param_groups:
        assert not group.get("foreach")  # SB3's own checkpoint: the per-tensor path
    lean = LeanPPO.load(tmp_path / "model.zip", env=batched_venv(GATHERING, 2), device="cpu")
    again = PPO.load(tmp_path / "model.zip", env=batched_venv(GATHERING, 2), device="cpu")
    assert all(group["foreach"] for group in lean.policy.optimizer.param_groups)
    for model in (lean, again):
        model.set_random_seed(3)
        model.learn(128, reset_num_timesteps=False)
    assert_same_weights(again, lean)
