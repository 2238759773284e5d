"""Dead workers: a worker process killed mid-job is replaced and the job run again (bounded), with
the files of an undisturbed run; an env subprocess that dies fails only its task, by name."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from fault_envs import killing_config

from marlmod.compare import compare_runs
from marlmod.config import parse_scenario
from marlmod.errors import MarlmodError, env_worker_died
from marlmod.experiment import run_scenario
from marlmod.failures import load_failures
from marlmod.jobs import Job
from marlmod.lock import HOLDER_FILE
from marlmod.pools import RETRIES, LocalPool

TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def _fault_envs_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))


def test_worker_killed_mid_training_is_replaced_and_gives_an_undisturbed_runs_files(
    tmp_path: Path, tiny_dict: dict
) -> None:
    marker = tmp_path / "killed_once"
    tiny_dict["seeds"] = [0, 1]
    scenario = parse_scenario(killing_config(tiny_dict, marker))
    marker.touch()  # the reference run is never killed
    run_scenario(scenario, tmp_path / "undisturbed", workers=2)
    marker.unlink()
    run_scenario(scenario, tmp_path / "killed", workers=2)
    assert marker.exists(), "no worker was killed"
    comparison = compare_runs(tmp_path / "undisturbed" / "tiny", tmp_path / "killed" / "tiny")
    assert comparison.identical and not comparison.only_a and not comparison.only_b
    assert not load_failures(tmp_path / "killed" / "tiny")


def kill_seed_0(scenario: object, job: Job, run_dir: Path) -> str | None:
    """A job function whose seed-0 job always kills its worker; seed 1 finishes."""
    if job.seed == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return None


def test_a_job_whose_worker_always_dies_fails_after_its_retries_and_others_finish(
    tmp_path: Path, tiny_scenario: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("marlmod.pools.run_job", kill_seed_0)
    pool = LocalPool(tiny_scenario, tmp_path, workers=2)
    pool.submit(Job(0))
    pool.submit(Job(1))
    finished = []
    for _ in range(10):  # bounded: unbounded retries would loop for ever
        finished += pool.wait_one() if pool.busy else []
    assert not pool.busy, "the job that always kills its worker is still being retried"
    pool.close()
    assert dict(finished) == {
        Job(0): f"its worker process died {RETRIES + 1} times",
        Job(1): None,
    }


def test_env_worker_death_fails_its_task_by_env_and_seed_and_keeps_the_rest(
    tmp_path: Path, tiny_dict: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error a subprocess env raises (``marlmod.errors.env_worker_died``) fails only its task;
    everything written before stays, and the rerun finishes it."""
    scenario = parse_scenario(tiny_dict)

    def dies(self: object, seed: object) -> None:
        raise env_worker_died("marlmod/gathering-v0", 3, "exit code -9")

    with monkeypatch.context() as patched, pytest.raises(MarlmodError) as failed:
        patched.setattr("marlmod.tasks.ScratchTask.run", dies)
        run_scenario(scenario, tmp_path / "run", workers=1)
    message = str(failed.value)
    assert "1 task(s) failed" in message and "rerun to retry" in message
    assert "env marlmod/gathering-v0 (seed 3): its worker process died (exit code -9)" in message
    assert "\n" not in message
    run_dir = tmp_path / "run" / "tiny"
    assert [f["task"] for f in load_failures(run_dir)] == ["ScratchTask()"]
    finished = {p: p.stat().st_mtime_ns for p in run_dir.glob("seed_0/*/cell.json")}
    assert len(finished) == 3  # every cell finished beside the failed task
    assert not (run_dir / HOLDER_FILE).exists()  # the lock was released

    run_scenario(scenario, tmp_path / "run", workers=1)
    assert not load_failures(run_dir)
    assert finished == {p: p.stat().st_mtime_ns for p in finished}  # nothing recomputed
    assert (run_dir / "seed_0" / "scratch" / "curve.json").is_file()
