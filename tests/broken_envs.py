"""Gathering with one planted protocol mistake each, for the ``check-env`` tests.

Each variant is the smallest change that breaks one promise of docs/environment_protocol.md, so a
test can show ``check-env`` names exactly that mistake. ``DeclaredGathering`` is the clean one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.gathering import GatheringEnv

SMALL = {"grid_size": 5, "max_cycles": 20}


class DeclaredGathering(GatheringEnv):
    """Gathering that also declares its cost and what the bonus pays for: no findings at all."""

    metadata = {
        **GatheringEnv.metadata,
        "marlmod": {
            **GatheringEnv.metadata["marlmod"],
            "bonus_for": ("hit",),
            "costs": ("zap_cost",),
        },
    }


class MissingLabels(DeclaredGathering):
    """Forgets the behaviour labels."""

    def step(self, actions: dict[str, Any]):
        out = super().step(actions)
        for info in out[-1].values():
            del info["behaviour"]
        return out


class BonusNeverOff(DeclaredGathering):
    """Treats a bonus of 0 as "use the default", so the cooperative variant still pays."""

    def __init__(self, aggression_bonus: float = 0.0, **kwargs: Any) -> None:
        super().__init__(aggression_bonus=aggression_bonus or 1.0, **kwargs)


class Unseeded(DeclaredGathering):
    """Places agents with fresh OS entropy instead of ``self.np_random``."""

    def reset(self, seed: int | None = None, options: dict | None = None):
        observations, infos = super().reset(seed, options)
        cells = np.random.default_rng().choice(self.grid_size**2, self.n_agents, replace=False)
        self.positions = np.stack(np.divmod(cells, self.grid_size), axis=1).astype(np.int64)
        return self._observations(), infos


class ObsOutOfSpace(DeclaredGathering):
    """Marks apples with 2.0 although the declared Box is [0, 1]."""

    def _observations(self) -> dict[str, np.ndarray]:
        return {agent: obs * 2.0 for agent, obs in super()._observations().items()}


class NoProtocol(DeclaredGathering):
    """A plain PettingZoo env that never declared what marlmod needs."""

    metadata = {k: v for k, v in GatheringEnv.metadata.items() if k != "marlmod"}


class UndeclaredCost(DeclaredGathering):
    """Charges ``zap_cost`` but does not declare it as a cost."""

    metadata = {
        **GatheringEnv.metadata,
        "marlmod": {k: v for k, v in GatheringEnv.metadata["marlmod"].items() if k != "costs"},
    }


def declared(**kwargs: Any) -> DeclaredGathering:
    return DeclaredGathering(**kwargs)
