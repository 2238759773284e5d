"""The compiled backend (``ppo.backend: compiled``): SB3's update to float precision, training
that stays next to the exact route, and everything it refuses."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import marlmod.compiled_update as compiled_update
import marlmod.functional_policy as functional_policy
from marlmod.config import Scenario, parse_scenario
from marlmod.environments import resolve_env
from marlmod.errors import MarlmodError
from marlmod.lean_ppo import _flat_rollout
from marlmod.ppo_loss import Minibatch, ppo_loss
from marlmod.routing import RoutedRolloutBuffer
from marlmod.train import build_model, learn, load_model, save_model

needs_compiler = pytest.mark.skipif(
    compiled_update.cpp_compiler() is None, reason="torch.compile needs a C++ compiler"
)


def rollout_model(scenario: Scenario, steps: int = 128):
    """A model that has trained ``steps`` agent-steps (so its buffer holds a real rollout)."""
    model = build_model(scenario, resolve_env(scenario.env).factory(1.0), seed=0)
    learn(model, steps)
    return model


def test_fused_step_equals_loss_backward_clip_and_adam(tiny_scenario: Scenario) -> None:
    """``ppo_step`` (eager here; compiling only reorders float arithmetic) updates weights and
    Adam's state as SB3's loss, ``backward``, ``clip_grad_norm_`` and ``Adam.step`` do."""
    model = rollout_model(tiny_scenario)
    reference = copy.deepcopy(model)
    data = _flat_rollout(model.rollout_buffer)
    params = functional_policy.parameters_in_order(model.policy)
    adam = compiled_update.AdamTensors.of(model.policy.optimizer, params)
    settings = fused_settings(model)
    ref_params = functional_policy.parameters_in_order(reference.policy)
    steps_before = float(adam.steps[0])
    for start in (0, 16, 32):
        batch = Minibatch(*(t[start : start + 16] for t in data))
        loss, stats = compiled_update.ppo_step(adam, batch, **settings)
        reference.policy.optimizer.zero_grad()
        # SB3's own forward (evaluate_actions' modules) and the loss LeanPPO trains with
        outputs = functional_policy.module_outputs(reference.policy, batch.observations)
        want, want_stats = ppo_loss(outputs, batch, 0.2, reference.ent_coef, reference.vf_coef)
        want.backward()
        torch.nn.utils.clip_grad_norm_(ref_params, reference.max_grad_norm)
        reference.policy.optimizer.step()
        torch.testing.assert_close(loss, want.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stats, want_stats, rtol=1e-5, atol=1e-6)
    for got, want in zip(params, ref_params, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        state, ref_state = model.policy.optimizer.state[got], reference.policy.optimizer.state[want]
        assert state.keys() == ref_state.keys()
        assert float(state["step"]) == float(ref_state["step"]) == steps_before + 3
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(state[key], ref_state[key], rtol=1e-4, atol=1e-9)


def fused_settings(model) -> dict:
    group = model.policy.optimizer.param_groups[0]
    return {
        "arch": functional_policy.architecture(model.policy),
        "lr": torch.tensor(group["lr"]),
        "clip_range": torch.tensor(0.2),
        "ent_coef": model.ent_coef,
        "vf_coef": model.vf_coef,
        "max_grad_norm": model.max_grad_norm,
        "betas": group["betas"],
        "eps": group["eps"],
    }


@needs_compiler
def test_compiled_training_stays_next_to_the_exact_route(tiny_dict: dict) -> None:
    tiny_dict["ppo"]["backend"] = "lean"
    exact = rollout_model(parse_scenario(tiny_dict), steps=256)
    tiny_dict["ppo"]["backend"] = "compiled"
    fast = rollout_model(parse_scenario(tiny_dict), steps=256)
    assert fast._compiled
    moved = 0.0
    weights = zip(exact.policy.state_dict().items(), fast.policy.state_dict().values(), strict=True)
    for (name, a), b in weights:
        torch.testing.assert_close(b, a, rtol=0, atol=1e-4, msg=name)
        moved = max(moved, float((b - a).abs().max()))
    assert moved > 0, "the compiled route is not bitwise SB3; equal weights mean it never ran"


def test_compiled_refuses_gradient_routing_and_names_lean(tiny_dict: dict) -> None:
    """The compiled step would bypass routing's forward hook: refused when the model is built,
    never trained on a quiet fallback to the eager loss."""
    tiny_dict["ppo"]["backend"] = "compiled"
    scenario = parse_scenario(tiny_dict)
    with pytest.raises(MarlmodError, match="gradient routing.*ppo.backend: lean"):
        build_model(
            scenario,
            resolve_env(scenario.env).factory(1.0),
            seed=0,
            rollout_buffer_class=RoutedRolloutBuffer,
        )


def test_compiled_refuses_a_forward_hook_added_after_build(tiny_scenario: Scenario) -> None:
    model = build_model(tiny_scenario, resolve_env(tiny_scenario.env).factory(1.0), seed=0)
    model._compiled = True  # what use_compiled_update sets, here without needing a compiler
    model.policy.mlp_extractor.policy_net[1].register_forward_hook(lambda *_: None)
    with pytest.raises(MarlmodError, match="forward hook.*ppo.backend: lean"):
        learn(model, 64)


def test_only_plain_mlp_policies_without_hooks_are_compilable(tiny_scenario: Scenario) -> None:
    model = build_model(tiny_scenario, resolve_env(tiny_scenario.env).factory(1.0), seed=0)
    assert functional_policy.functional(model.policy)
    handle = model.policy.mlp_extractor.policy_net[1].register_forward_hook(lambda *_: None)
    assert not functional_policy.functional(model.policy)
    handle.remove()
    model.policy.mlp_extractor.policy_net.append(torch.nn.Dropout())
    assert functional_policy.architecture(model.policy) is None


def test_explicit_compiled_without_a_compiler_is_a_clear_error(
    tiny_dict: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("marlmod.lean_ppo.cpp_compiler", lambda: None)
    tiny_dict["ppo"]["backend"] = "compiled"
    scenario = parse_scenario(tiny_dict)
    with pytest.raises(MarlmodError, match="ppo.backend compiled needs a C\\+\\+ compiler"):
        build_model(scenario, resolve_env(scenario.env).factory(1.0), seed=0)


@needs_compiler
def test_compiled_training_keeps_adams_state_in_the_checkpoint(
    tiny_dict: dict, tmp_path: Path
) -> None:
    """The fused step updates the optimiser's own state, so a checkpoint resumes Adam exactly."""
    tiny_dict["ppo"]["backend"] = "compiled"
    scenario = parse_scenario(tiny_dict)
    model = rollout_model(scenario, steps=256)
    steps = 256 // 64 * 2  # 4 rollouts of 64 agent-steps, 2 minibatches of 32 each
    states = [model.policy.optimizer.state[p] for p in model.policy.parameters()]
    assert all(float(state["step"]) == steps for state in states)
    save_model(model, tmp_path / "model.zip")
    loaded = load_model(tmp_path / "model.zip", scenario, resolve_env(scenario.env).factory(1.0), 0)
    assert loaded._compiled
    for param, state in zip(loaded.policy.parameters(), states, strict=True):
        for key, value in loaded.policy.optimizer.state[param].items():
            torch.testing.assert_close(value, state[key], rtol=0, atol=0)


def test_compile_refuses_what_the_fused_step_does_not_implement(tiny_scenario: Scenario) -> None:
    model = build_model(tiny_scenario, resolve_env(tiny_scenario.env).factory(1.0), seed=0)
    model.policy.optimizer.param_groups[0]["weight_decay"] = 0.01
    with pytest.raises(MarlmodError, match="weight_decay=0"):
        model.use_compiled_update()
    model = build_model(tiny_scenario, resolve_env(tiny_scenario.env).factory(1.0), seed=0)
    model.target_kl = 0.01
    with pytest.raises(MarlmodError, match="target_kl=None"):
        model.use_compiled_update()
    model = build_model(tiny_scenario, resolve_env(tiny_scenario.env).factory(1.0), seed=0)
    model.normalize_advantage = False
    with pytest.raises(MarlmodError, match="normalize_advantage=True"):
        model.use_compiled_update()
