"""Where jobs run: in this process, in local worker processes, or as Ray tasks.

Every pool has the same four calls — ``submit`` a job, ``busy``, ``wait_one`` (the jobs that
finished, each with its error or None), ``close`` — so the scheduler
(``marlmod.experiment.run_fanned_out``) is the same for all of them. The pools own what can go
wrong with workers:

- a worker process that dies mid-job (killed by the OS, out of memory) is replaced and its job
  run again, up to ``RETRIES`` more times, then recorded as failed; jobs are idempotent (finished
  stages are reused, files are atomic), so a retried job gives the files an undisturbed one does;
- ``close(interrupted=True)`` (Ctrl-C) stops workers at once instead of letting them finish;
- a local worker whose driver died (``kill -9``) exits instead of waiting for work for ever,
  which would also keep holding the run directory's lock it inherited (``marlmod.lock``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marlmod.errors import MarlmodError, WorkerDied
from marlmod.jobs import Job, run_job
from marlmod.shipping import apply, pack, run_shipped

if TYPE_CHECKING:
    from marlmod.config import Scenario

RETRIES = 2  # a job whose worker dies is run at most 1 + RETRIES times
SIGNAL_POLL_S = 0.5  # how often a waiting driver wakes to notice Ctrl-C (see LocalPool.wait_one)
Finished = list[tuple[Job, str | None]]


def note(line: str) -> None:
    print(f"marlmod: {line}", file=sys.stderr, flush=True)


def exit_with_parent(parent: int) -> None:
    """Worker initialiser: a watchdog thread that ends this process once ``parent`` is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="marlmod-parent-watch").start()


class SerialPool:
    """Jobs one after another in this process, in the order submitted."""

    def __init__(self, scenario: Scenario, run_dir: Path) -> None:
        self.scenario, self.run_dir = scenario, run_dir
        self.queue: deque[Job] = deque()

    def submit(self, job: Job) -> None:
        self.queue.append(job)

    @property
    def busy(self) -> bool:
        return bool(self.queue)

    def wait_one(self) -> Finished:
        job = self.queue.popleft()
        return [(job, run_job(self.scenario, job, self.run_dir))]

    def close(self, interrupted: bool = False) -> None:
        self.queue.clear()


class LocalPool:
    """Worker processes on this machine. Only as many jobs as workers are handed to the
    executor at a time, so when a worker dies, the jobs charged with it are the ones running."""

    def __init__(self, scenario: Scenario, run_dir: Path, workers: int) -> None:
        self.scenario, self.run_dir, self.workers = scenario, run_dir, workers
        self.executor = self.new_executor()
        self.queue: deque[Job] = deque()
        self.running: dict[Future, Job] = {}
        self.deaths: Counter[Job] = Counter()

    def new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.workers, initializer=exit_with_parent, initargs=(os.getpid(),)
        )

    def submit(self, job: Job) -> None:
        self.queue.append(job)

    @property
    def busy(self) -> bool:
        return bool(self.queue or self.running)

    def wait_one(self) -> Finished:
        while self.queue and len(self.running) < self.workers:
            job = self.queue.popleft()
            self.running[self.executor.submit(run_job, self.scenario, job, self.run_dir)] = job
        done: set = set()
        while not done:
            # Timed waits, not one blocking one: the kernel may deliver Ctrl-C's SIGINT to the
            # executor's helper thread, and then only a main thread that wakes up on its own runs
            # the handler (seen under load: the signal was lost until a job finished).
            done, _ = wait(self.running, timeout=SIGNAL_POLL_S, return_when=FIRST_COMPLETED)
        if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
            return self.replace_workers()
        return [(self.running.pop(f), f.result()) for f in done]

    def replace_workers(self) -> Finished:
        """A worker died: every job that was running is run again on fresh workers (or, after
        ``RETRIES``, reported failed); jobs that finished before it died keep their result."""
        self.executor.shutdown(wait=True)  # the broken pool: every running future is now done
        finished: Finished = []
        retried = []
        for future, job in self.running.items():
            if not isinstance(future.exception(), BrokenProcessPool):
                finished.append((job, future.result()))
                continue
            self.deaths[job] += 1
            if self.deaths[job] > RETRIES:
                error = WorkerDied(f"its worker process died {self.deaths[job]} times")
                finished.append((job, str(error)))
            else:
                retried.append(job)
        self.running.clear()
        self.queue.extendleft(reversed(retried))
        self.executor = self.new_executor()
        note(f"a worker process died; running its {len(retried)} job(s) again on a new one")
        return finished

    def close(self, interrupted: bool = False) -> None:
        """Wait for running jobs (their files are atomic) and drop queued ones; when
        ``interrupted``, stop the workers at once."""
        self.queue.clear()
        if interrupted:
            # ProcessPoolExecutor has no public way to stop running calls before Python 3.14
            # (terminate_workers); its worker processes are in ``_processes``.
            for process in list((self.executor._processes or {}).values()):
                process.terminate()
        self.executor.shutdown(wait=True, cancel_futures=True)


class RayPool:
    """Ray tasks (one CPU each), retried by Ray when their worker dies. With ``ship``, jobs run
    in scratch directories on their nodes and send their files back (``marlmod.shipping``), so
    the run directory need not be on a filesystem the nodes share."""

    def __init__(self, ray: Any, scenario: Scenario, run_dir: Path, ship: bool) -> None:
        self.ray, self.scenario, self.run_dir, self.ship = ray, scenario, run_dir, ship
        options = {"num_cpus": 1, "max_retries": RETRIES, "retry_exceptions": False}
        self.remote = ray.remote(**options)(run_shipped if ship else run_job)
        self.running: dict[Any, Job] = {}

    def submit(self, job: Job) -> None:
        where = pack(self.run_dir, job.seed) if self.ship else self.run_dir
        self.running[self.remote.remote(self.scenario, job, where)] = job

    @property
    def busy(self) -> bool:
        return bool(self.running)

    def wait_one(self) -> Finished:
        exceptions = self.ray.exceptions
        died = (exceptions.WorkerCrashedError, exceptions.NodeDiedError)
        died += (exceptions.OutOfMemoryError,)
        (ref,), _ = self.ray.wait(list(self.running), num_returns=1)
        job = self.running.pop(ref)
        try:
            result = self.ray.get(ref)
        except died as err:
            error = WorkerDied(f"its worker died {1 + RETRIES} times ({type(err).__name__})")
            return [(job, str(error))]
        except exceptions.RayTaskError as err:
            if isinstance(err.cause, MarlmodError):  # one line, not Ray's remote traceback
                raise err.cause from None
            raise
        if not self.ship:
            return [(job, result)]
        error, shipped = result
        apply(self.run_dir, shipped)
        return [(job, error)]

    def close(self, interrupted: bool = False) -> None:
        """Cancel what is still running (on interrupt, killing the workers) or let it finish."""
        for ref in self.running:
            self.ray.cancel(ref, force=interrupted)
        self.running.clear()
