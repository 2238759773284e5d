"""One writer per run directory: a second ``marlmod run`` fails at once naming the holder; a lock
left by ``kill -9`` is taken over; one held on another host is refused with how to remove it;
read-only commands need no lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from processes import alive, children

from marlmod import lock
from marlmod.cli import main
from marlmod.compare import compare_runs
from marlmod.errors import RunLocked
from marlmod.lock import HOLDER_FILE, process_identity, run_lock

HOLD = """
import sys, time
from pathlib import Path
from marlmod.lock import run_lock
with run_lock(Path(sys.argv[1]), "marlmod run"):
    print("held", flush=True)
    time.sleep(120)
"""


def hold_in_subprocess(run_dir: Path) -> subprocess.Popen:
    run_dir.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_second_run_fails_at_once_naming_the_holder_then_takes_over_after_kill_9(
    tmp_path: Path, tiny_dict: dict, capsys: pytest.CaptureFixture
) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_dict))
    run_dir = tmp_path / "out" / "tiny"
    holder = hold_in_subprocess(run_dir)
    try:
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "marlmod.cli",
                "run",
                str(config),
                "--out",
                str(tmp_path / "out"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2
        [line] = second.stderr.strip().splitlines()
        assert line.startswith(f"marlmod: error: {run_dir} is in use by marlmod run on host ")
        assert f"host {socket.gethostname()} (pid {holder.pid}, started " in line
        assert not list(run_dir.glob("seed_*")) and not (run_dir / "run.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert json.loads((run_dir / HOLDER_FILE).read_text())["pid"] == holder.pid  # left behind
    with run_lock(run_dir, "marlmod run") as record:
        assert json.loads((run_dir / HOLDER_FILE).read_text()) == record
    assert (
        f"took over the lock of marlmod run on host {socket.gethostname()} (pid {holder.pid}"
        in (capsys.readouterr().err)
    )
    assert not (run_dir / HOLDER_FILE).exists()  # released


def test_a_run_whose_driver_was_killed_leaves_no_worker_holding_the_lock(
    tmp_path: Path, tiny_dict: dict
) -> None:
    """``kill -9`` of ``marlmod run`` alone: its workers (which inherited the OS lock) exit, and
    the next run takes the lock over and finishes."""
    tiny_dict.update(seeds=[0, 1], workers=2)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_dict))
    command = [sys.executable, "-m", "marlmod.cli", "run", str(config), "--out", str(tmp_path)]
    driver = subprocess.Popen(command, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(workers := children(driver.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert len(workers) == 2
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    orphans = [pid for pid in workers if alive(pid)]
    for pid in orphans:  # leave no process behind when this fails
        os.kill(pid, signal.SIGKILL)
    assert not orphans, "orphaned workers still hold the lock"
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert (
        f"took over the lock of marlmod run on host {socket.gethostname()} (pid {driver.pid}"
        in (rerun.stderr)
    )


def write_holder(run_dir: Path, **fields: object) -> None:
    record = {"command": "marlmod run", "started": "2025-01-01 00:00:00 +0000", **fields}
    (run_dir / HOLDER_FILE).write_text(json.dumps(record))


def test_lock_of_another_host_is_refused_saying_which_file_to_delete(tmp_path: Path) -> None:
    write_holder(tmp_path, host="node-7", pid=1234)
    with pytest.raises(RunLocked) as refused, run_lock(tmp_path, "marlmod run"):
        pass
    assert str(refused.value) == (
        f"{tmp_path} is locked by marlmod run on host node-7 (pid 1234, started 2025-01-01 "
        "00:00:00 +0000), another host, which marlmod cannot check from here; if nothing runs "
        f"there any more, delete {tmp_path / HOLDER_FILE}"
    )


def test_a_live_holder_is_refused_even_where_os_locks_do_not_reach(tmp_path: Path) -> None:
    """A filesystem whose OS locks do not reach across machines still has the holder record."""
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        pid = sleeper.pid
        host = socket.gethostname()
        write_holder(tmp_path, host=host, pid=pid, process=process_identity(pid))
        with pytest.raises(RunLocked, match=f"in use by marlmod run on host {host} .pid {pid},"):
            with run_lock(tmp_path, "marlmod run"):
                pass
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_reused_pid_is_not_the_holder(tmp_path: Path) -> None:
    """The recorded pid now runs another process (it started at another time): stale."""
    write_holder(tmp_path, host=socket.gethostname(), pid=os.getpid(), process="another boot:1")
    with run_lock(tmp_path, "marlmod run") as record:
        assert record["process"] == process_identity(os.getpid())


def test_two_processes_taking_over_one_stale_lock_cannot_both_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The take-over happens under the OS lock: a second writer arriving while the first
    replaces a stale record is refused, not handed the lock too."""
    write_holder(tmp_path, host=socket.gethostname(), pid=2**22 + 7, process="gone")
    real_is_stale = lock.is_stale
    second: list[BaseException] = []

    def is_stale_while_another_arrives(holder: dict) -> bool:
        monkeypatch.setattr(lock, "is_stale", real_is_stale)
        try:
            with run_lock(tmp_path, "marlmod run"):
                pass
        except RunLocked as err:
            second.append(err)
        return real_is_stale(holder)

    monkeypatch.setattr(lock, "is_stale", is_stale_while_another_arrives)
    with run_lock(tmp_path, "marlmod run") as record:
        assert json.loads((tmp_path / HOLDER_FILE).read_text()) == record
    assert len(second) == 1, "the second writer got the lock too"


def test_report_is_refused_while_a_run_writes_but_compare_needs_no_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "tiny"
    (run_dir / "seed_0").mkdir(parents=True)
    (run_dir / "seed_0" / "cell.json").write_text("{}")
    with run_lock(run_dir, "marlmod run"):
        monkeypatch.setattr(sys, "argv", ["marlmod", "report", str(run_dir)])
        with pytest.raises(SystemExit) as exit_:
            main()
        assert exit_.value.code == 2
        assert f"{run_dir} is in use by marlmod run on host" in capsys.readouterr().err
        assert compare_runs(run_dir, run_dir).identical  # read-only: runs while locked
