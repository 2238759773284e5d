"""Recording hooks: right rows, unknown paths rejected up front, and no hook ever left behind."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from marlmod.errors import MarlmodError
from marlmod.record import record_activations


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_records_each_forward_pass_in_order() -> None:
    model = net()
    x1, x2 = torch.randn(5, 3), torch.randn(2, 3)
    with record_activations(model, ["1"]) as log:
        model(x1)
        model(x2)
    expected = torch.cat([torch.relu(model[0](x1)), torch.relu(model[0](x2))]).detach().numpy()
    assert log.stacked("1") == pytest.approx(expected)
    assert hook_count(model) == 0


def test_hooks_removed_after_an_exception() -> None:
    model = net()
    with pytest.raises(ZeroDivisionError), record_activations(model, ["0", "1"]):
        model(torch.randn(1, 3))
        assert hook_count(model) == 2
        raise ZeroDivisionError
    assert hook_count(model) == 0


def test_unknown_path_raises_before_any_hook_is_added() -> None:
    model = net()
    with pytest.raises(MarlmodError, match="unknown module path 'policy.9'.*valid: 0, 1, 2"):
        with record_activations(model, ["1", "policy.9"]):
            pass
    assert hook_count(model) == 0
