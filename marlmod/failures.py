"""Failed tasks of a run, recorded so the report shows them and the next run retries them.

A task that fails on its own (``marlmod.errors.TaskFailed``: training diverged, a worker or an
env subprocess died) leaves ``<run>/failed/seed_<s>/<task>.json``: the seed, the task, the cell it
computes (if it is a cell) and the error. The record is not a finished-stage marker: the stages
the task did not finish have no output, so the next run computes them again, and the record is
removed when the task succeeds. Records live outside the seed directories, which hold results
only (``marlmod compare`` compares those).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from marlmod.atomic import read_json, write_json
from marlmod.cells import ACTION_HEAD_MARK

FAILED_DIR = "failed"


def failure_path(run_dir: Path, seed: int, key: str) -> Path:
    return run_dir / FAILED_DIR / f"seed_{seed}" / f"{key}.json"


def record_failure(
    run_dir: Path, seed: int, key: str, task: str, cell: str | None, error: str
) -> None:
    write_json(
        failure_path(run_dir, seed, key),
        {"seed": seed, "task": task, "cell": cell, "error": error},
    )


def clear_failure(run_dir: Path, seed: int, key: str) -> None:
    failure_path(run_dir, seed, key).unlink(missing_ok=True)


def load_failures(run_dir: Path) -> list[dict]:
    """Every failure recorded under ``run_dir``, by seed and task."""
    paths = sorted((run_dir / FAILED_DIR).glob("seed_*/*.json"))
    return sorted((read_json(p) for p in paths), key=lambda f: (f["seed"], f["task"]))


# ---------------------------------------------------------------- in the report
def with_failures(cells: pd.DataFrame, failures: list[dict]) -> pd.DataFrame:
    """``cells`` plus a row for every failed cell (metrics empty), the error in ``failed``."""
    failed = [
        {"seed": f["seed"], "strategy": f["cell"], "failed": f["error"]}
        for f in failures
        if f["cell"]
    ]
    table = cells.assign(failed="")
    if not failed:
        return table
    table = pd.concat([table, pd.DataFrame(failed)], ignore_index=True)
    return table.sort_values(["strategy", "seed"], kind="stable").reset_index(drop=True)


def count_failed_seeds(
    summary: pd.DataFrame, cells: pd.DataFrame, failures: list[dict]
) -> pd.DataFrame:
    """The strategies table with a ``failed seeds`` column (and a row for a strategy that failed
    on every seed), so a failed cell is never silently missing from the headline table."""
    per_cell = pd.Series([f["cell"] for f in failures if f["cell"]], dtype=object).value_counts()
    if per_cell.empty:
        return summary
    names = [str(s).removesuffix(f" {ACTION_HEAD_MARK}") for s in summary.strategy]
    summary = summary.assign(**{"failed seeds": [int(per_cell.get(n, 0)) for n in names]})
    extra = [
        {"strategy": c, "seeds": 0, "failed seeds": int(n)}
        for c, n in per_cell.items()
        if c not in set(cells.strategy)
    ]
    if not extra:
        return summary
    return pd.concat([summary, pd.DataFrame(extra)], ignore_index=True).fillna("")


def failures_table(failures: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"seed": f["seed"], "task": f["task"], "error": f["error"]} for f in failures]
    )
