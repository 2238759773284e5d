"""Atomic writes: a result file either exists whole or not at all, so an interrupted run loses
nothing already computed and never leaves a half-written file that a resume would trust."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it into place only if the block succeeds."""
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


def write_json(target: Path, data: Any) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_with(target: Path, writer: Callable[[Path], None]) -> None:
    """Atomically write a file produced by a library function that takes a path."""
    with atomic_path(target) as tmp:
        writer(tmp)


def read_json(path: Path) -> Any:
    """Read a JSON result file, naming the file if it is corrupt (never silently skipped)."""
    from marlmod.errors import MarlmodError

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
