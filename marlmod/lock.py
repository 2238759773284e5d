"""One writer per run directory: ``marlmod run``, ``migrate`` and ``report`` hold a lock on it.

Two runs writing the same directory would both do all the work and both report success; on a
filesystem shared by several machines two people can collide without knowing. The lock has two
parts, so that it holds on local disks and shared filesystems alike:

- ``.marlmod.lock``, locked with ``filelock`` (an OS lock the kernel releases when its process
  dies, even by ``kill -9``), so a killed run never blocks the next one on the same machine;
- ``.marlmod.holder.json``, who holds it (command, host, pid, start time), created with an atomic
  link so only one writer can create it even where OS locks do not reach across machines.

A second writer fails at once with one line naming the holder. A holder record whose process is
gone (same host, pid not running or running a different process) is stale: it is taken over,
saying so. A record from another host cannot be checked from here, so marlmod refuses and says
which file to delete once nothing runs there any more.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from filelock import FileLock, Timeout

from marlmod.errors import RunLocked

LOCK_FILE = ".marlmod.lock"
HOLDER_FILE = ".marlmod.holder.json"


def process_identity(pid: int) -> str | None:
    """What tells this pid's process apart from a later one reusing the pid: its start time
    since boot and the boot it belongs to (Linux); None when the process does not exist."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"  # no /proc: the pid is alive, which is all that can be told
    started = stat.rsplit(")", 1)[1].split()[19]  # field 22, after the command name
    return f"{boot}:{started}"


def holder_record(command: str) -> dict:
    pid = os.getpid()
    return {
        "command": command,
        "host": socket.gethostname(),
        "pid": pid,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "process": process_identity(pid),
    }


def describe(holder: dict) -> str:
    return (
        f"{holder.get('command', 'marlmod')} on host {holder.get('host', '?')} "
        f"(pid {holder.get('pid', '?')}, started {holder.get('started', '?')})"
    )


def read_holder(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / HOLDER_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError):
        return {}  # being written, or damaged: held by someone unknown


def is_stale(holder: dict) -> bool:
    """The recorded holder ran on this host and its process is gone."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    now = process_identity(holder["pid"])
    return now is None or now not in ("unknown", holder.get("process"))


def create_holder(run_dir: Path, record: dict) -> bool:
    """Create the holder record only if none exists (a hard link fails on an existing name,
    atomically, also on network filesystems)."""
    path = run_dir / HOLDER_FILE
    tmp = run_dir / f".{HOLDER_FILE}.{record['pid']}.{time.monotonic_ns()}"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def refusal(run_dir: Path, holder: dict | None) -> RunLocked:
    if holder is None:
        return RunLocked(f"{run_dir} is in use by another marlmod process, just starting")
    if not holder:
        return RunLocked(
            f"{run_dir} is in use by another marlmod process (its record is unreadable); if none "
            f"runs, delete {run_dir / HOLDER_FILE}"
        )
    if holder.get("host") != socket.gethostname():
        return RunLocked(
            f"{run_dir} is locked by {describe(holder)}, another host, which marlmod cannot "
            f"check from here; if nothing runs there any more, delete {run_dir / HOLDER_FILE}"
        )
    return RunLocked(f"{run_dir} is in use by {describe(holder)}; wait for it or stop it")


@contextmanager
def run_lock(run_dir: Path, command: str) -> Iterator[dict]:
    """Hold ``run_dir`` for ``command`` (e.g. "marlmod run") for the block; raise ``RunLocked``
    at once, naming the holder, when another process holds it. Yields the holder record."""
    os_lock = FileLock(run_dir / LOCK_FILE)
    try:
        os_lock.acquire(timeout=0)
    except Timeout:
        raise refusal(run_dir, read_holder(run_dir)) from None
    try:
        record = holder_record(command)
        if not create_holder(run_dir, record):
            previous = read_holder(run_dir)
            if previous is None or not is_stale(previous):
                raise refusal(run_dir, previous)
            # Only processes on this host take over, and they all hold the OS lock first.
            (run_dir / HOLDER_FILE).unlink(missing_ok=True)
            if not create_holder(run_dir, record):
                raise refusal(run_dir, read_holder(run_dir))
            print(
                f"marlmod: took over the lock of {describe(previous)}, which is no longer running",
                file=sys.stderr,
            )
        try:
            yield record
        finally:
            if read_holder(run_dir) == record:
                with suppress(OSError):
                    (run_dir / HOLDER_FILE).unlink()
    finally:
        os_lock.release()
