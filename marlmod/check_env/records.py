"""What the checks read and report: the declared spec, recorded random play, and findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

PROTOCOL_DOC = "docs/environment_protocol.md"
PROTOCOL_KEYS = ("bonus_kwarg", "behaviours", "opportunities", "bonus_for", "costs", "batched")
REQUIRED_FLOATS = ("task_reward", "bonus_reward")


@dataclass(frozen=True)
class Finding:
    """One failed check: which, what went wrong, and what to change."""

    check: str
    problem: str
    fix: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"[{self.severity}] {self.check}: {self.problem}\n    fix: {self.fix}"


@dataclass(frozen=True)
class Spec:
    """The well-formed content of ``metadata["marlmod"]`` (see the protocol doc)."""

    bonus_kwarg: str
    behaviours: tuple[str, ...]
    opportunities: tuple[str, ...] = ()
    bonus_for: tuple[str, ...] = ()  # empty: the bonus may pay for any behaviour
    costs: tuple[str, ...] = ()  # info keys subtracted from the reward


@dataclass(frozen=True)
class Step:
    """One parallel step of random play: who acted and everything ``step`` returned."""

    acting: tuple[str, ...]
    observations: dict[str, Any]
    rewards: dict[str, Any]
    terminations: dict[str, Any]
    truncations: dict[str, Any]
    infos: dict[str, Any]


@dataclass
class Play:
    """A recording of random play: reset observations per episode and every step."""

    resets: list[dict[str, Any]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
