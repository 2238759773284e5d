"""Modularity-inducing training: a wiring-length cost applied as a proximal step."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from marlmod.config import Scenario, parse_scenario
from marlmod.environments import resolve_env
from marlmod.modularity import (
    WiringCost,
    linears_of,
    soft_threshold,
    wiring_cost,
    wiring_lengths,
)
from marlmod.pipeline import SeedRun
from marlmod.train import build_model, learn


def test_wiring_lengths_are_distances_on_a_line() -> None:
    lengths = wiring_lengths(3, 5)
    assert lengths.shape == (3, 5)
    assert lengths[0, 0] == 0 and lengths[2, 4] == 0 and lengths[0, 4] == 1
    assert torch.allclose(lengths[1], torch.tensor([0.5, 0.25, 0.0, 0.25, 0.5]))
    assert torch.allclose(wiring_lengths(1, 4), torch.tensor([[0.0, 1 / 3, 2 / 3, 1.0]]))


def test_soft_threshold_shrinks_longer_connections_more() -> None:
    weight = torch.full((3, 3), 0.5)
    weight[0, 2] = -0.5
    soft_threshold(weight, 0.4 * wiring_lengths(3, 3))
    assert weight[0, 0] == 0.5  # zero length: untouched
    assert torch.isclose(weight[0, 1], torch.tensor(0.3))  # length 0.5
    assert torch.isclose(weight[0, 2], torch.tensor(-0.1))  # length 1, sign kept
    small = torch.tensor([[0.1, -0.1]])
    soft_threshold(small, torch.tensor([[0.5, 0.5]]))
    assert (small == 0).all()  # shrinks to exactly zero, never past it


def test_proximal_step_lowers_the_wiring_cost() -> None:
    layer = nn.Linear(6, 4)
    before = wiring_cost([layer])
    soft_threshold(layer.weight, 0.05 * wiring_lengths(4, 6))
    assert 0 < wiring_cost([layer]) < before


def fresh_model(scenario: Scenario):
    return build_model(scenario, resolve_env(scenario.env).factory(1.0), seed=0)


def test_zero_strength_changes_nothing(tiny_scenario: Scenario) -> None:
    plain = learn(fresh_model(tiny_scenario), 128)  # build right before learn: SB3 seeds the
    costed = learn(fresh_model(tiny_scenario), 128, WiringCost(0.0))  # global RNG on build
    costed_state = costed.policy.state_dict()
    for name, a in plain.policy.state_dict().items():
        assert torch.equal(a, costed_state[name]), name


def test_cost_shrinks_long_connections_during_ppo(tiny_scenario: Scenario) -> None:
    plain = learn(fresh_model(tiny_scenario), 256)
    callback = WiringCost(50.0)
    costed = learn(fresh_model(tiny_scenario), 256, callback)
    assert callback._handle is None  # hook removed when training ends
    long_plain = long_costed = 0.0
    for a, b in zip(linears_of(plain.policy), linears_of(costed.policy), strict=True):
        far = wiring_lengths(*a.weight.shape) > 0.5
        long_plain += float(a.weight.detach().abs()[far].sum())
        long_costed += float(b.weight.detach().abs()[far].sum())
    assert long_costed < 0.5 * long_plain


def test_hook_removed_at_training_end(tiny_scenario: Scenario) -> None:
    model = fresh_model(tiny_scenario)
    callback = WiringCost(1.0)
    callback.init_callback(model)
    callback.on_training_start({}, {})
    callback.on_training_end()
    model.policy.optimizer.zero_grad()
    before = [m.weight.detach().clone() for m in linears_of(model.policy)]
    model.policy.optimizer.step()  # no gradients, no hook: nothing moves
    assert all(
        torch.equal(a, m.weight) for a, m in zip(before, linears_of(model.policy), strict=True)
    )
    assert isinstance(linears_of(model.policy)[0], nn.Linear)


def test_modular_end_to_end(tmp_path: Path, tiny_dict: dict) -> None:
    tiny_dict["pretrain"] = {"method": "modular", "modularity": 1.0}
    tiny_dict["prune"]["strategies"] = ["cluster", "contrast", "random"]
    result = SeedRun(parse_scenario(tiny_dict), 0, tmp_path).run()
    assert {c["strategy"] for c in result["cells"]} == {"none", "cluster", "contrast", "random"}
    clusters = json.loads((tmp_path / "seed_0" / "clusterability.json").read_text())
    assert set(clusters) == {"pretrain", "control"}
