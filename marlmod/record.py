"""Recording hidden activations with forward hooks, addressed by module path.

Hooks are global state on a module: a hook left behind by an exception silently records (or
alters) every later forward pass. ``record_activations`` therefore installs hooks only inside a
context manager and removes them in ``finally``; unknown paths raise before any hook is added.
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
        self._chunks[path].append(output.detach().cpu().numpy().astype(np.float32, copy=True))

    def stacked(self, path: str) -> np.ndarray:
        chunks = self._chunks[path]
        if not chunks:
            raise ValueError(f"no forward pass reached {path!r} while recording")
        return np.concatenate([c.reshape(len(c), -1) for c in chunks])


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
            policy.get_distribution(torch.as_tensor(obs[start : start + batch]))
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
            policy.get_distribution(torch.as_tensor(obs[start : start + batch]))
    finally:
        handle.remove()
    if not chunks:
        raise ValueError(f"no forward pass reached {path!r}")
    return np.concatenate([c.reshape(len(c), -1) for c in chunks])
