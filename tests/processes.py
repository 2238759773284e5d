"""Reading the process table from /proc (no ps needed), for tests of worker processes."""

from __future__ import annotations

from pathlib import Path


def children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (read from /proc: no ps needed)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
