"""Running a job away from the run directory: for Ray clusters without a shared filesystem.

The driver sends a job its seed directory's files as bytes (every file a seed's stages read lives
there); the job runs in a scratch directory on its node and returns the files it created,
changed or deleted, in the order it wrote them (``marlmod.atomic.journal``). The driver writes
them atomically in that same order, so only the driver ever writes the run directory, and a
driver stopped midway leaves what a stopped worker would have: whole files, each stage's
output before the marker that says it is finished.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from marlmod.atomic import journal, write_bytes
from marlmod.jobs import Job, run_job

if TYPE_CHECKING:
    from marlmod.config import Scenario

Files = dict[str, bytes]  # path relative to the run directory -> contents
Changes = list[tuple[str, bytes | None]]  # in the order to apply; None: delete the file


def pack(run_dir: Path, seed: int) -> Files:
    """Every file of ``seed``'s directory (temporaries of atomic writes excluded)."""
    seed_dir = run_dir / f"seed_{seed}"
    return {
        str(path.relative_to(run_dir)): path.read_bytes()
        for path in sorted(seed_dir.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


def unpack(root: Path, files: Files) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def changes(root: Path, before: Files, written: list[Path]) -> Changes:
    """What ``root`` gained, changed or lost since ``before``: files written atomically first,
    in the order they were written, then any others (e.g. TensorBoard logs), then deletions."""
    after = {
        str(path.relative_to(root)): path
        for path in root.rglob("*")
        if path.is_file() and not path.name.startswith(".")
    }
    order = list(dict.fromkeys(str(p.relative_to(root)) for p in reversed(written)))[::-1]
    order += sorted(set(after) - set(order))
    out: Changes = []
    for rel in order:
        if rel in after:
            data = after[rel].read_bytes()
            if before.get(rel) != data:
                out.append((rel, data))
    out += [(rel, None) for rel in sorted(set(before) - set(after))]
    return out


def run_shipped(scenario: Scenario, job: Job, files: Files) -> tuple[str | None, Changes]:
    """Picklable entry point: run ``job`` on a node-local copy of its seed's files; return its
    error line (or None) and its changes, also those made before it failed."""
    with tempfile.TemporaryDirectory(prefix="marlmod-job-") as scratch:
        root = Path(scratch) / scenario.name
        unpack(root, files)
        with journal() as written:
            error = run_job(scenario, job, root)
        return error, changes(root, files, written)


def apply(run_dir: Path, shipped: Changes) -> None:
    """Write a job's changes into the run directory, atomically and in order."""
    for rel, data in shipped:
        if data is None:
            (run_dir / rel).unlink(missing_ok=True)
        else:
            write_bytes(run_dir / rel, data)
