"""Resolving a scenario's environment: a PettingZoo registry id or a ``module:factory`` path.

An environment tells marlmod what it needs through ``metadata["marlmod"]`` — the name of its
bonus kwarg, the behaviours it labels and, optionally, its batched twin — so environments stay free
of marlmod imports. This module reads that entry and imports neither torch nor stable-baselines3
(``marlmod validate`` stays light); a twin's module, which does, is imported only when training.
An import path runs that module's code: only use configs you trust.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import pettingzoo
from pettingzoo import ParallelEnv

from marlmod.errors import MarlmodError

if TYPE_CHECKING:  # typing only: reading envs must not load what marlmod.config imports (torch)
    from marlmod.config import EnvConfig

EnvFactory = Callable[[], ParallelEnv]


@dataclass(frozen=True)
class EnvProtocol:
    """What marlmod reads from an environment's ``metadata["marlmod"]``."""

    bonus_kwarg: str
    behaviours: tuple[str, ...]
    opportunities: tuple[str, ...] = ()
    batched: str | None = None  # "package.module:Class" of the env's batched twin, if any


def registered_ids() -> list[str]:
    import envs  # noqa: F401  (registers marlmod's environments)

    return sorted(pettingzoo.parallel_registry)


def resolve_constructor(env_id: str) -> Callable[..., ParallelEnv]:
    """The callable behind ``env_id``; unknown ids fail listing the registered ones."""
    if ":" in env_id:
        try:
            return _import_path(env_id)
        except (ImportError, AttributeError, ValueError) as err:
            raise MarlmodError(f"cannot import environment {env_id!r}: {err}") from err
    ids = registered_ids()
    if env_id not in ids:
        raise MarlmodError(
            f"unknown environment {env_id!r}; registered: {', '.join(ids)} "
            "(or give an import path 'package.module:factory')"
        )
    return partial(pettingzoo.make, "parallel", env_id)


def _import_path(path: str) -> Any:
    """The object at ``package.module:name``."""
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _marlmod_metadata(env: ParallelEnv) -> dict | None:
    meta = getattr(env, "metadata", {}).get("marlmod")
    return meta if isinstance(meta, dict) else None


def read_protocol(env: ParallelEnv, source: str) -> EnvProtocol:
    meta = _marlmod_metadata(env)
    if meta is None or "bonus_kwarg" not in meta or "behaviours" not in meta:
        raise MarlmodError(
            f"environment {source!r} does not declare metadata['marlmod'] with "
            "'bonus_kwarg' and 'behaviours'; see docs/adding_an_environment.md"
        )
    return EnvProtocol(
        str(meta["bonus_kwarg"]),
        tuple(meta["behaviours"]),
        tuple(meta.get("opportunities", ())),
        _twin_path(meta, source),
    )


def _twin_path(meta: dict, source: str) -> str | None:
    path = meta.get("batched")
    if path is not None and (not isinstance(path, str) or ":" not in path):
        raise MarlmodError(
            f"environment {source!r} declares metadata['marlmod']['batched'] = {path!r}, "
            "not an import path 'package.module:Class'"
        )
    return path


def batched_twin(env: ParallelEnv) -> type | None:
    """The batched twin class ``env`` declares in ``metadata["marlmod"]["batched"]``, imported
    now; ``None`` when it declares none or ``type(env)`` is not exactly the twin's ``env_class``
    (a subclass or a wrapper may change the rules the twin reproduces)."""
    source = f"{type(env).__module__}.{type(env).__qualname__}"
    meta = _marlmod_metadata(env)
    path = None if meta is None else _twin_path(meta, source)
    if path is None:
        return None
    declared = f"environment {source!r} declares batched twin {path!r}"
    try:
        twin = _import_path(path)
    except (ImportError, AttributeError, ValueError) as err:
        raise MarlmodError(f"{declared}, which cannot be imported: {err}") from err
    env_class = getattr(twin, "env_class", None)
    if not isinstance(env_class, type) or not callable(getattr(twin, "from_env", None)):
        raise MarlmodError(
            f"{declared}, which is not a twin class (one with env_class and from_env, "
            "e.g. a marlmod.vec_env.BatchedTwin subclass)"
        )
    return twin if type(env) is env_class else None


@dataclass(frozen=True)
class ResolvedEnv:
    """An environment config checked against the environment itself."""

    config: EnvConfig
    protocol: EnvProtocol
    constructor: Callable[..., ParallelEnv]

    def factory(
        self, bonus: float, render_mode: str | None = None, overrides: dict[str, Any] | None = None
    ) -> EnvFactory:
        """Envs of this config paying ``bonus``; ``overrides`` replace some of its kwargs (a
        held-out situation)."""
        kwargs: dict[str, Any] = {
            **self.config.kwargs,
            **(overrides or {}),
            self.protocol.bonus_kwarg: bonus,
        }
        if render_mode is not None:
            kwargs["render_mode"] = render_mode
        return partial(self.constructor, **kwargs)


def resolve_env(config: EnvConfig) -> ResolvedEnv:
    """Build the environment once to check kwargs, protocol and trait name up front."""
    constructor = resolve_constructor(config.id)
    try:
        probe = constructor(**config.kwargs)
    except (TypeError, ValueError) as err:
        raise MarlmodError(f"env.kwargs rejected by {config.id!r}: {err}") from err
    except ImportError as err:  # an env needing an optional extra (e.g. marlmod[lab2d])
        raise MarlmodError(f"environment {config.id!r} cannot be built: {err}") from err
    protocol = read_protocol(probe, config.id)
    probe.close()
    if protocol.bonus_kwarg in config.kwargs:
        raise MarlmodError(
            f"env.kwargs sets {protocol.bonus_kwarg!r}; set env.bonus instead "
            "(marlmod turns it off for the cooperative variant)"
        )
    if config.trait not in protocol.behaviours:
        raise MarlmodError(
            f"env.trait {config.trait!r} is not a behaviour of {config.id!r}; "
            f"valid: {', '.join(protocol.behaviours)}"
        )
    return ResolvedEnv(config, protocol, constructor)


def check_variants(env: ResolvedEnv, variants: dict[str, dict[str, Any]]) -> None:
    """Build each held-out variant once, so a bad kwarg fails before any work starts."""
    for name, overrides in variants.items():
        if env.protocol.bonus_kwarg in overrides:
            raise MarlmodError(
                f"evaluation.held_out.{name} sets {env.protocol.bonus_kwarg!r}; held-out "
                "situations are evaluated cooperatively (bonus 0)"
            )
        try:
            variant = env.factory(0.0, overrides=overrides)()
        except (TypeError, ValueError) as err:
            raise MarlmodError(
                f"evaluation.held_out.{name} rejected by {env.config.id!r}: {err}"
            ) from err
        base = env.factory(0.0)()
        agent, other = base.possible_agents[0], variant.possible_agents[0]
        same = variant.observation_space(other) == base.observation_space(agent) and (
            variant.action_space(other) == base.action_space(agent)
        )
        variant.close()
        base.close()
        if not same:
            raise MarlmodError(
                f"evaluation.held_out.{name} changes the observation or action space, so the "
                "trained policy cannot act there; vary something that keeps them"
            )
