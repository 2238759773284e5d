"""Recording hidden activations with forward hooks, addressed by module path.

Hooks are global state on a module: a hook left behind by an exception silently records (or
alters) every later forward pass. ``record_activations`` therefore installs hooks only inside a
context manager and removes them in ``finally``; unknown paths raise before any hook is added.

A recorded row has one number per *unit*: a dense layer's ``[rows, units]`` as it is, a
convolutional layer's ``[rows, channels, H, W]`` as each channel's spatial mean (``per_unit``),
so every locating strategy reads ``[rows, units]`` whatever the layer (why the mean: the
registry's ``per_channel``, ``marlmod.strategies.registry``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from marlmod.errors import MarlmodError


class ActivationLog:
    """Activations per module path, one array per forward call, concatenated on demand."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)
        self._chunks: dict[str, list[np.ndarray]] = {p: [] for p in self.paths}

    def append(self, path: str, output: torch.Tensor) -> None:
        unit = per_unit(output.detach())
        self._chunks[path].append(unit.cpu().numpy().astype(np.float32, copy=True))

    def stacked(self, path: str) -> np.ndarray:
        chunks = self._chunks[path]
        if not chunks:
            raise ValueError(f"no forward pass reached {path!r} while recording")
        return np.concatenate([c.reshape(len(c), -1) for c in chunks])


def per_unit(output: torch.Tensor) -> torch.Tensor:
    """One number per unit and row: a conv layer's ``[rows, channels, H, W]`` becomes each
    channel's mean over its positions; any other output is kept as it is."""
    return output.mean(dim=(2, 3)) if output.dim() == 4 else output


def policy_input(policy: nn.Module, obs: np.ndarray) -> torch.Tensor:
    """``obs`` as the policy takes it: SB3's ``obs_to_tensor`` (a uint8 channel-last image is
    transposed as SB3 transposes the env); plain ``torch.as_tensor`` for a module that is not an
    SB3 policy."""
    if hasattr(policy, "obs_to_tensor"):
        return policy.obs_to_tensor(obs)[0]
    return torch.as_tensor(obs)


def resolve_module(root: nn.Module, path: str) -> nn.Module:
    modules = dict(root.named_modules())
    if path not in modules:
        valid = ", ".join(name for name in modules if name)
        raise MarlmodError(f"unknown module path {path!r}; valid: {valid}")
    return modules[path]


@contextmanager
def record_activations(root: nn.Module, paths: Sequence[str]) -> Iterator[ActivationLog]:
    """Record the outputs of ``paths`` (module paths under ``root``) for every forward pass."""
    targets = {path: resolve_module(root, path) for path in paths}
    log = ActivationLog(paths)
    handles = []
    try:
        for path, module in targets.items():
            handles.append(
                module.register_forward_hook(
                    lambda _mod, _inp, out, path=path: log.append(path, out)
                )
            )
        yield log
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def activations_on(
    policy: nn.Module, path: str, obs: np.ndarray, batch: int = 65_536
) -> np.ndarray:
    """Activations at ``path`` when ``policy`` acts on ``obs`` (e.g. another policy's states)."""
    with record_activations(policy, [path]) as log:
        for start in range(0, len(obs), batch):
            policy.get_distribution(policy_input(policy, obs[start : start + batch]))
    return log.stacked(path)


@torch.no_grad()
def inputs_on(policy: nn.Module, path: str, obs: np.ndarray, batch: int = 65_536) -> np.ndarray:
    """What the module at ``path`` receives when ``policy`` acts on ``obs`` (a Linear's input
    features, which per-weight importance reads). The hook is removed in ``finally``."""
    module = resolve_module(policy, path)
    chunks: list[np.ndarray] = []

    def keep(_mod: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        chunks.append(args[0].detach().cpu().numpy().astype(np.float32, copy=True))

    handle = module.register_forward_pre_hook(keep)
    try:
        for start in range(0, len(obs), batch):
            policy.get_distribution(policy_input(policy, obs[start : start + batch]))
    finally:
        handle.remove()
    if not chunks:
        raise ValueError(f"no forward pass reached {path!r}")
    return np.concatenate([c.reshape(len(c), -1) for c in chunks])
