"""What every evaluation measures: the trait rate and the task return, at a point in training.

One type serves a model's single evaluation (``pretrain/metrics.json``) and every point of a
training curve (``<cell>/cell.json``'s ``curve``, ``scratch/curve.json``): a curve point is the
same measurement with the agent-steps it was taken at. Held-out situations (env variants used in
no training phase, ``evaluation.held_out``) are measured at the same points and nested by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stable_baselines3.common.policies import BasePolicy

from marlmod.environments import EnvFactory
from marlmod.rollout import rollout


@dataclass(frozen=True)
class Metrics:
    """Trait occurrences per agent-step and task return per agent per episode (bonus excluded)."""

    trait_rate: float
    task_return: float
    role_returns: dict[str, float] = field(default_factory=dict)  # task return per role
    steps: int | None = None  # agent-steps of training behind this point (curves only)
    held_out: dict[str, Metrics] = field(default_factory=dict)  # per held-out env variant

    def to_json(self) -> dict[str, Any]:
        """The stored form; keys a measurement does not have are left out, so files written
        before curves and held-out situations shared this type read and compare unchanged."""
        data: dict[str, Any] = {
            "trait_rate": self.trait_rate,
            "task_return": self.task_return,
            "role_returns": self.role_returns,
        }
        if self.steps is not None:
            data["steps"] = self.steps
        if self.held_out:
            data["held_out"] = {name: m.to_json() for name, m in self.held_out.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Metrics:
        return cls(
            float(data["trait_rate"]),
            float(data["task_return"]),
            {str(k): float(v) for k, v in data.get("role_returns", {}).items()},
            None if data.get("steps") is None else int(data["steps"]),
            {str(k): cls.from_json(v) for k, v in data.get("held_out", {}).items()},
        )

    def at(self, steps: int) -> Metrics:
        """The same measurement as a curve point after ``steps`` agent-steps."""
        return Metrics(self.trait_rate, self.task_return, self.role_returns, steps, self.held_out)


Curve = list[Metrics]


def curve_to_json(curve: Curve) -> list[dict[str, Any]]:
    return [point.to_json() for point in curve]


def curve_from_json(data: list[dict[str, Any]]) -> Curve:
    return [Metrics.from_json(point) for point in data]


def measure(
    policy: BasePolicy,
    make_env: EnvFactory,
    episodes: int,
    seed: int,
    trait: str,
    trait_role: str | None = None,
    deterministic: bool = False,
) -> Metrics:
    """Play ``episodes`` episodes (one per env copy, seeded from ``seed``) and measure them."""
    result = rollout(policy, make_env, episodes, seed, trait, deterministic)
    return Metrics(result.trait_rate(trait_role), result.task_return, result.task_return_by_role())
