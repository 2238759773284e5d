"""A seed's work after its shared stages, as typed tasks that run in any order and in parallel.

``SeedRun.shared`` stores what several tasks read (both pretrained models, the recorded evidence,
every cell's prune); each task then reads those and writes only files of its own, so a local
worker pool or a Ray cluster can run a seed's tasks side by side without two of them racing to
write the same cache. Tasks are small frozen dataclasses: picklable, comparable, and each says in
``run`` which stage it computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from marlmod import seed_extras
from marlmod.cells import scenario_cells

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


SeedTask = CellTask | SweepTask | ScratchTask | LayerContrastsTask | ClusterabilityTask


def seed_tasks(scenario: Scenario) -> list[SeedTask]:
    """Every task of one seed, in the order a single process runs them."""
    prune = scenario.prune
    tasks: list[SeedTask] = [CellTask(cell.name) for cell in scenario_cells(prune)]
    if prune.sweep:
        tasks += [SweepTask(strategy) for strategy in prune.strategies]
    tasks += [ScratchTask(), LayerContrastsTask()]
    if scenario.clusterability_shuffles:
        tasks.append(ClusterabilityTask())
    return tasks
