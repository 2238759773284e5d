"""Training cost: wall-clock seconds of a training stage, kept beside its model.

Why a file of its own: wall time is a measurement of the machine, not a result. It differs on
every rerun, so it stays out of the stage's ``metrics.json`` (which ``marlmod compare`` requires
to be equal between reruns) and is written as ``timing.csv``, a suffix ``compare`` does not read.
Summaries of training cost (``experiments/scale.py``) read it back; runs made before it existed
simply have none.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from marlmod.atomic import write_text

TIMING_FILE = "timing.csv"
COLUMNS = ("seconds", "agent_steps", "torch_threads")


@contextmanager
def timed(directory: Path, agent_steps: int) -> Iterator[None]:
    """Time the block; when it succeeds, write ``directory/timing.csv`` (one row)."""
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    writer.writerow((f"{seconds:.3f}", agent_steps, torch.get_num_threads()))
    write_text(directory / TIMING_FILE, text.getvalue())


def read_timing(directory: Path) -> dict[str, float] | None:
    """The stage's timing row as numbers, or None for a stage timed before timing existed."""
    path = directory / TIMING_FILE
    if not path.is_file():
        return None
    rows = list(csv.DictReader(path.read_text().splitlines()))
    return {key: float(rows[0][key]) for key in COLUMNS} if rows else None
