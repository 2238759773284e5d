"""A seed's work after its shared stages, as typed tasks in two phases.

``SeedRun.shared`` stores what several tasks read (both pretrained models, the recorded evidence,
every cell's prune). The first phase's tasks — the cells, the capability bar, the per-seed
analyses — read those and write only files of their own; the second phase's tasks read the
first phase's retrained models (relearning attacks, latent probes, weight-space paths). Within a
phase tasks run in any order and in parallel, so a local worker pool or a Ray cluster can run
them side by side without two of them racing to write the same cache. Tasks are small frozen
dataclasses: picklable, comparable, and each says in ``run`` which stage it computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from marlmod import seed_extras
from marlmod.relearn import Attack, attacks, relearn

if TYPE_CHECKING:
    from marlmod.config import Scenario
    from marlmod.pipeline import SeedRun


@dataclass(frozen=True)
class CellTask:
    """Prune, retrain and score one cell (then re-locate it, if the scenario asks)."""

    cell: str

    def run(self, seed: SeedRun) -> None:
        seed.cell(self.cell)
        if self.cell in seed.scenario.prune.relocate:  # reads the cell's retrained model
            seed_extras.relocation(seed, self.cell)


@dataclass(frozen=True)
class SweepTask:
    """Trait and capability right after pruning one strategy at every ``prune.sweep`` fraction."""

    strategy: str

    def run(self, seed: SeedRun) -> None:
        seed_extras.sweep(seed, self.strategy)


@dataclass(frozen=True)
class ScratchTask:
    """A fresh network trained cooperatively on the retraining budget: the capability bar."""

    def run(self, seed: SeedRun) -> None:
        seed.scratch_curve()


@dataclass(frozen=True)
class LayerContrastsTask:
    """The signed contrast of every unit of every policy layer (the heatmap)."""

    def run(self, seed: SeedRun) -> None:
        seed_extras.layer_contrasts(seed)


@dataclass(frozen=True)
class ClusterabilityTask:
    """Filan et al.'s n-cut of the pretrained and control nets against shuffled copies."""

    def run(self, seed: SeedRun) -> None:
        seed_extras.clusterability(seed)


@dataclass(frozen=True)
class RelearnTask:
    """One relearning attack (``marlmod.relearn``): reads a retrained or reference model."""

    attack: Attack

    def run(self, seed: SeedRun) -> None:
        relearn(seed, self.attack)


@dataclass(frozen=True)
class LatentProbeTask:
    """Latent-trait probes on every retrained cell and on the two reference models."""

    def run(self, seed: SeedRun) -> None:
        seed_extras.latent_probes(seed)


@dataclass(frozen=True)
class WeightSpaceTask:
    """Distance from the pretrained weights and the straight path to them, for one cell."""

    cell: str

    def run(self, seed: SeedRun) -> None:
        seed_extras.weight_space(seed, self.cell)


SeedTask = (
    CellTask
    | SweepTask
    | ScratchTask
    | LayerContrastsTask
    | ClusterabilityTask
    | RelearnTask
    | LatentProbeTask
    | WeightSpaceTask
)


def seed_phases(scenario: Scenario) -> list[list[SeedTask]]:
    """A seed's tasks after its shared stages: each phase starts when the one before is done."""
    prune = scenario.prune
    first: list[SeedTask] = [CellTask(cell.name) for cell in scenario.cells]
    if prune.sweep:
        first += [SweepTask(strategy) for strategy in prune.strategies]
    first += [ScratchTask(), LayerContrastsTask()]
    if scenario.clusterability_shuffles:
        first.append(ClusterabilityTask())
    second: list[SeedTask] = []
    if scenario.relearn is not None:
        second += [RelearnTask(attack) for attack in attacks(scenario)]
        second.append(LatentProbeTask())
        # a distilled cell's fresh network shares no weights with the pretrained one
        second += [WeightSpaceTask(c.name) for c in scenario.cells if not c.distilled]
    return [first, second] if second else [first]


def seed_tasks(scenario: Scenario) -> list[SeedTask]:
    """Every task of one seed, in the order a single process runs them."""
    return [task for phase in seed_phases(scenario) for task in phase]
