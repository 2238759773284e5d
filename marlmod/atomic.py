"""Atomic writes: a result file either exists whole or not at all, so an interrupted run loses
nothing already computed and never leaves a half-written file that a resume would trust.

A write that runs out of disk space raises ``DiskFull`` naming the file and the space left (its
temporary file removed). Temporaries are dot-files beside their target; ``remove_orphans`` clears
those a killed process left behind (only safe for the run directory's one writer, ``marlmod.lock``).
``journal`` lists the files written, in order, so a task run away from the run directory can
ship them back to be written in the same order (``marlmod.shipping``).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from marlmod.errors import DiskFull, MarlmodError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# mkstemp's names: ".<target name>.<8 random characters>.tmp<target suffix>"
TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.\w+)?$")
_journal: ContextVar[list[Path] | None] = ContextVar("marlmod_atomic_journal", default=None)


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it into place only if the block succeeds."""
    try:
        with _replacing(target) as tmp:
            yield tmp
    except Exception as err:
        full = _disk_full(target, err)
        if full is None:
            raise
        raise full from err
    written = _journal.get()
    if written is not None:
        written.append(target)


@contextmanager
def _replacing(target: Path) -> Iterator[Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}"
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def _disk_full(target: Path, err: BaseException) -> DiskFull | None:
    """``DiskFull`` naming ``target`` when ``err`` (or what caused it) is an out-of-space error:
    libraries that write through their own streams wrap it (zipfile, torch)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in NO_SPACE:
            try:
                free = f"{shutil.disk_usage(target.parent).free / 2**20:.1f} MiB free"
            except OSError:
                free = "free space unknown"
            return DiskFull(
                f"no space left writing {target} ({free} on its filesystem); nothing partial "
                "was kept: free some space and rerun to resume"
            )
        seen = seen.__cause__ or seen.__context__
    return None


@contextmanager
def journal() -> Iterator[list[Path]]:
    """The targets of every atomic write made inside the block, in the order they completed."""
    written: list[Path] = []
    token = _journal.set(written)
    try:
        yield written
    finally:
        _journal.reset(token)


def remove_orphans(root: Path) -> list[Path]:
    """Delete the temporaries of atomic writes a killed process left under ``root``; only the
    directory's one writer may call this (another writer's temporaries are still in use)."""
    orphans = [p for p in root.rglob(".*") if p.is_file() and TEMPORARY.match(p.name)]
    for path in orphans:
        path.unlink(missing_ok=True)
    return orphans


def write_json(target: Path, data: Any) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_with(target: Path, writer: Callable[[Path], None]) -> None:
    """Atomically write a file produced by a library function that takes a path."""
    with atomic_path(target) as tmp:
        writer(tmp)


def read_json(path: Path) -> Any:
    """Read a JSON result file, naming the file if it is corrupt (never silently skipped)."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise MarlmodError(f"corrupt results file {path}: {err}; delete it to recompute") from err


def cached_json(path: Path, compute: Callable[[], Any]) -> Any:
    """A stage's stored JSON result, computed and written atomically first if it is absent.

    Every stage of a run is cached this way, so an interrupted run resumes where it stopped and
    a finished one reruns without computing anything. What is returned is always what was read
    back from disk, so a fresh result and a resumed one are the same values.
    """
    if not path.is_file():
        write_json(path, compute())
    return read_json(path)
