"""The opt-in compiled update (``ppo.compile``): SB3's loss and gradients to float precision,
training that stays next to the exact route, and everything that must not take it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

import marlmod.compiled_update as compiled_update
import marlmod.functional_policy as functional_policy
from marlmod.config import Scenario, parse_scenario
from marlmod.environments import resolve_env
from marlmod.errors import MarlmodError
from marlmod.lean_ppo import _flat_rollout
from marlmod.routing import RoutedRolloutBuffer, RouteLabels
from marlmod.train import build_model, learn, load_model, save_model

REPO = Path(__file__).resolve().parents[1]
needs_compiler = pytest.mark.skipif(
    compiled_update.cpp_compiler() is None, reason="torch.compile needs a C++ compiler"
)


def rollout_model(scenario: Scenario, steps: int = 128):
    """A model that has trained ``steps`` agent-steps (so its buffer holds a real rollout)."""
    model = build_model(scenario, resolve_env(scenario.env).factory(1.0), seed=0)
    learn(model, steps)
    return model


def test_functional_loss_and_gradients_equal_sb3s(tiny_scenario: Scenario) -> None:
    """``ppo_loss`` (eager here) computes what LeanPPO's SB3 loss computes, gradients included."""
    model = rollout_model(tiny_scenario)
    policy = model.policy
    data = _flat_rollout(model.rollout_buffer)
    batch = {k: v[:48] for k, v in data.items()}
    losses: dict[str, list[torch.Tensor]] = {"entropy": [], "pg": [], "value": [], "clip": []}

    policy.zero_grad()
    reference, reference_kl = model._minibatch_loss(batch, 0.2, losses)
    reference.backward()
    expected = [p.grad.clone() for p in functional_policy.parameters_in_order(policy)]

    params = functional_policy.parameters_in_order(policy)
    assert len(params) == len(list(policy.parameters()))  # every parameter, once
    policy.zero_grad()
    loss, stats = compiled_update.ppo_loss(
        params,
        compiled_update.Minibatch(**batch),
        functional_policy.architecture(policy),
        0.2,
        model.ent_coef,
        model.vf_coef,
    )
    loss.backward()
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)
    logged = [losses[k][0] for k in ("pg", "clip", "value", "entropy")]
    torch.testing.assert_close(stats[:4], torch.stack(logged), rtol=1e-5, atol=1e-6)
    assert float(stats[4]) == pytest.approx(float(reference_kl), abs=1e-6)
    for got, want in zip((p.grad for p in params), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


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
        batch = {k: v[start : start + 16] for k, v in data.items()}
        loss, stats = compiled_update.ppo_step(adam, compiled_update.Minibatch(**batch), **settings)
        losses: dict[str, list[torch.Tensor]] = {"entropy": [], "pg": [], "value": [], "clip": []}
        reference.policy.optimizer.zero_grad()
        want, _ = reference._minibatch_loss(batch, 0.2, losses)
        want.backward()
        torch.nn.utils.clip_grad_norm_(ref_params, reference.max_grad_norm)
        reference.policy.optimizer.step()
        torch.testing.assert_close(loss, want.detach(), rtol=1e-5, atol=1e-6)
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
    exact = rollout_model(parse_scenario(tiny_dict), steps=256)
    tiny_dict["ppo"]["compile"] = True
    fast = rollout_model(parse_scenario(tiny_dict), steps=256)
    assert fast._compile
    moved = 0.0
    weights = zip(exact.policy.state_dict().items(), fast.policy.state_dict().values(), strict=True)
    for (name, a), b in weights:
        torch.testing.assert_close(b, a, rtol=0, atol=1e-4, msg=name)
        moved = max(moved, float((b - a).abs().max()))
    assert moved > 0, "the compiled route is not bitwise SB3; equal weights mean it never ran"


@needs_compiler
def test_routed_pretraining_keeps_the_eager_loss_under_compile(
    tiny_dict: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The functional loss would bypass routing's forward hook: routed training must not use it."""
    tiny_dict["ppo"]["compile"] = True
    scenario = parse_scenario(tiny_dict)

    def refuse() -> None:
        raise AssertionError("compiled loss used while a hook must see the forward pass")

    monkeypatch.setattr("marlmod.lean_ppo.compiled_ppo_step", refuse)
    model = build_model(
        scenario,
        resolve_env(scenario.env).factory(1.0),
        seed=0,
        rollout_buffer_class=RoutedRolloutBuffer,
    )
    callback = RouteLabels("attack", "mlp_extractor.policy_net.3", 0.25, seed=0)
    learn(model, 128, callback)
    assert callback.counts.sum() > 0


def test_compile_off_keeps_every_committed_runs_digest() -> None:
    """``ppo.compile`` came after these runs: at its default their directories still resume."""
    for name in ("aggression", "aggression_five", "aggression_routing_adv", "deception_routing"):
        run = REPO / "results" / name / "run.json"
        recorded = json.loads(run.read_text())
        assert parse_scenario(recorded["config"]).digest == recorded["config_hash"], run
    plain = parse_scenario(recorded["config"])
    faster = parse_scenario(
        {**recorded["config"], "ppo": {**recorded["config"]["ppo"], "compile": True}}
    )
    assert faster.digest != plain.digest


def test_only_plain_mlp_policies_without_hooks_are_compilable(tiny_scenario: Scenario) -> None:
    model = build_model(tiny_scenario, resolve_env(tiny_scenario.env).factory(1.0), seed=0)
    assert functional_policy.functional(model.policy)
    handle = model.policy.mlp_extractor.policy_net[1].register_forward_hook(lambda *_: None)
    assert not functional_policy.functional(model.policy)
    handle.remove()
    model.policy.mlp_extractor.policy_net.append(torch.nn.Dropout())
    assert functional_policy.architecture(model.policy) is None


def test_compile_without_a_compiler_is_a_clear_error(
    tiny_dict: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("marlmod.lean_ppo.cpp_compiler", lambda: None)
    tiny_dict["ppo"]["compile"] = True
    scenario = parse_scenario(tiny_dict)
    with pytest.raises(MarlmodError, match="ppo.compile needs a C\\+\\+ compiler"):
        build_model(scenario, resolve_env(scenario.env).factory(1.0), seed=0)


@needs_compiler
def test_compiled_training_keeps_adams_state_in_the_checkpoint(
    tiny_dict: dict, tmp_path: Path
) -> None:
    """The fused step updates the optimiser's own state, so a checkpoint resumes Adam exactly."""
    tiny_dict["ppo"]["compile"] = True
    scenario = parse_scenario(tiny_dict)
    model = rollout_model(scenario, steps=256)
    steps = 256 // 64 * 2  # 4 rollouts of 64 agent-steps, 2 minibatches of 32 each
    states = [model.policy.optimizer.state[p] for p in model.policy.parameters()]
    assert all(float(state["step"]) == steps for state in states)
    save_model(model, tmp_path / "model.zip")
    loaded = load_model(tmp_path / "model.zip", scenario, resolve_env(scenario.env).factory(1.0), 0)
    assert loaded._compile
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
