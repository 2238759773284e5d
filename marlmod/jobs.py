"""A unit of scheduled work — a seed's shared stages, or one of its tasks — and how a worker
runs it.

Jobs are what the pools (``marlmod.pools``) run and retry. ``run_job`` turns a ``TaskFailed``
(training diverged, an env subprocess died) into the job's error instead of an exception, so one
bad cell never stops the others; any other error still stops the run.
"""

from __future__ import annotations

import re
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from marlmod.errors import TaskFailed
from marlmod.tasks import CellTask, SeedTask

if TYPE_CHECKING:
    from marlmod.config import Scenario

SHARED = "shared stages (pretraining, control, recording, prunes)"


@dataclass(frozen=True)
class Job:
    seed: int
    task: SeedTask | None = None  # None: the seed's shared stages

    @property
    def label(self) -> str:
        return SHARED if self.task is None else repr(self.task)

    @property
    def key(self) -> str:
        """A file name for the job's failure record (``marlmod.failures``)."""
        if self.task is None:
            return "shared"
        fields = [type(self.task).__name__, *map(str, flat(astuple(self.task)))]
        return re.sub(r"[^A-Za-z0-9_.~+-]+", "_", "-".join(fields))

    @property
    def cell(self) -> str | None:
        return self.task.cell if isinstance(self.task, CellTask) else None


def flat(values: tuple) -> list:
    return [v for value in values for v in (flat(value) if isinstance(value, tuple) else [value])]


def failure_message(scenario: Scenario, job: Job, error: str) -> str:
    """The one line a failed job is reported with: scenario, seed, task, then the error."""
    return f"{scenario.name} seed {job.seed}, {job.label}: {error}"


def run_job(scenario: Scenario, job: Job, run_dir: Path) -> str | None:
    """Picklable entry point: run ``job``; return None, or its error if it failed on its own."""
    from marlmod.pipeline import run_shared, run_task

    try:
        if job.task is None:
            run_shared(scenario, job.seed, run_dir)
        else:
            run_task(scenario, job.seed, run_dir, job.task)
    except TaskFailed as err:
        return str(err)
    return None
