"""The opt-in compiled update (``ppo.compile``): SB3's loss and gradients to float precision,
training that stays next to the exact route, and everything that must not take it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import marlmod.compiled_update as compiled_update
from marlmod.config import Scenario, parse_scenario
from marlmod.environments import resolve_env
from marlmod.errors import MarlmodError
from marlmod.lean_ppo import _flat_rollout
from marlmod.routing import RoutedRolloutBuffer, RouteLabels
from marlmod.train import build_model, learn

REPO = Path(__file__).resolve().parents[1]


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
    expected = [p.grad.clone() for p in compiled_update.parameters_in_order(policy)]

    params = compiled_update.parameters_in_order(policy)
    assert len(params) == len(list(policy.parameters()))  # every parameter, once
    policy.zero_grad()
    loss, stats = compiled_update.ppo_loss(
        params,
        *(batch[k] for k in ("observations", "actions", "old_log_prob", "advantages", "returns")),
        compiled_update.architecture(policy),
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


@pytest.mark.skipif(
    compiled_update.cpp_compiler() is None, reason="torch.compile needs a C++ compiler"
)
def test_compiled_training_stays_next_to_the_exact_route(tiny_dict: dict) -> None:
    exact = rollout_model(parse_scenario(tiny_dict), steps=256)
    tiny_dict["ppo"]["compile"] = True
    fast = rollout_model(parse_scenario(tiny_dict), steps=256)
    assert fast._compile and all(g["fused"] for g in fast.policy.optimizer.param_groups)
    moved = 0.0
    weights = zip(exact.policy.state_dict().items(), fast.policy.state_dict().values(), strict=True)
    for (name, a), b in weights:
        torch.testing.assert_close(b, a, rtol=0, atol=1e-4, msg=name)
        moved = max(moved, float((b - a).abs().max()))
    assert moved > 0, "the compiled route is not bitwise SB3; equal weights mean it never ran"


@pytest.mark.skipif(
    compiled_update.cpp_compiler() is None, reason="torch.compile needs a C++ compiler"
)
def test_routed_pretraining_keeps_the_eager_loss_under_compile(
    tiny_dict: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The functional loss would bypass routing's forward hook: routed training must not use it."""
    tiny_dict["ppo"]["compile"] = True
    scenario = parse_scenario(tiny_dict)

    def refuse() -> None:
        raise AssertionError("compiled loss used while a hook must see the forward pass")

    monkeypatch.setattr("marlmod.lean_ppo.compiled_ppo_loss", refuse)
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
    assert compiled_update.compilable(model.policy)
    handle = model.policy.mlp_extractor.policy_net[1].register_forward_hook(lambda *_: None)
    assert not compiled_update.compilable(model.policy)
    handle.remove()
    model.policy.mlp_extractor.policy_net.append(torch.nn.Dropout())
    assert compiled_update.architecture(model.policy) is None


def test_compile_without_a_compiler_is_a_clear_error(
    tiny_dict: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("marlmod.lean_ppo.cpp_compiler", lambda: None)
    tiny_dict["ppo"]["compile"] = True
    scenario = parse_scenario(tiny_dict)
    with pytest.raises(MarlmodError, match="ppo.compile needs a C\\+\\+ compiler"):
        build_model(scenario, resolve_env(scenario.env).factory(1.0), seed=0)
