"""Running a whole scenario: every seed's shared stages, then its cells as tasks, then the report.

The run directory records the config, its hash, package versions and the git commit. Rerunning
into a directory made under a *different* config is refused rather than mixing results; rerunning
under the same config resumes (finished stages are reused, see ``pipeline``).

A run holds the directory's lock (``marlmod.lock``) from start to report, so no second writer
can mix in. A task that fails on its own (training diverged, a worker died too often:
``marlmod.errors.TaskFailed``) is recorded (``marlmod.failures``) while every other task goes on;
the seed's later phases wait for a rerun, the report marks what failed, and the run then exits
with an error naming the failures. Ctrl-C stops the workers at once; finished stages are kept.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm import tqdm

from marlmod.atomic import read_json, remove_orphans, write_json
from marlmod.config import Scenario, parse_scenario
from marlmod.environments import check_variants, resolve_env
from marlmod.errors import MarlmodError
from marlmod.failures import FAILED_DIR, clear_failure, record_failure
from marlmod.jobs import Job, failure_message
from marlmod.lock import run_lock
from marlmod.migrate import check_layout
from marlmod.pools import LocalPool, RayPool, SerialPool
from marlmod.progress import TaskCosts, episode_size, progress_bar
from marlmod.report import write_report
from marlmod.tasks import seed_phases

MIN_FREE_BYTES = 256 * 2**20  # a 5-seed scenario writes ~60 MiB; refuse before, not midway
PACKAGES = ("marlmod", "torch", "stable-baselines3", "pettingzoo", "gymnasium", "numpy")


BACKENDS = ("local", "ray")
Pool = SerialPool | LocalPool | RayPool


def run_scenario(
    scenario: Scenario,
    out_root: Path,
    workers: int | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    ship_files: bool | None = None,
) -> str:
    """Run (or resume) every seed of ``scenario`` under ``out_root/<name>``; return the summary.

    Work is split into jobs: each seed's shared stages (pretraining, control, recordings,
    prunes), then each of its cells and extras (``marlmod.tasks``). ``local`` runs them in
    worker processes on this machine (one worker: each seed in turn, in this process); ``ray``
    submits them as Ray tasks (to ``ray_address``, or a Ray instance started here). Ray tasks
    write the run directory directly, which needs it on a filesystem every node shares, unless
    ``ship_files`` (default: when ``ray_address`` is given) has them send their files back for
    this process to write (``marlmod.shipping``). All give identical numbers for the same seeds.
    """
    if backend not in BACKENDS:
        raise MarlmodError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    check_variants(resolve_env(scenario.env), scenario.evaluation.held_out)  # fail before work
    if scenario.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise MarlmodError("tensorboard: true needs TensorBoard: pip install 'marlmod[tracking]'")
    run_dir = out_root.resolve() / scenario.name
    create_run_dir(run_dir)
    with run_lock(run_dir, "marlmod run"):
        prepare_run_dir(scenario, run_dir)
        remove_orphans(run_dir)  # temporaries of a killed run: this process is the one writer
        n_workers = workers or scenario.workers
        if backend == "ray":
            failures = _run_on_ray(scenario, run_dir, n_workers, ray_address, ship_files)
        elif n_workers == 1:  # each seed in turn, its jobs in order, in this process
            failures = run_jobs(scenario, run_dir, SerialPool(scenario, run_dir), seed_by_seed=True)
        else:
            failures = run_jobs(scenario, run_dir, LocalPool(scenario, run_dir, n_workers))
        return finish(scenario, run_dir, failures)


def run_jobs(
    scenario: Scenario, run_dir: Path, pool: Pool, seed_by_seed: bool = False
) -> list[str]:
    """``run_fanned_out`` (for all seeds at once, or ``seed_by_seed``) with a progress bar,
    closing ``pool`` after (at once on Ctrl-C, then clearing what stopped workers wrote)."""
    seeds = list(scenario.seeds)
    groups = [[seed] for seed in seeds] if seed_by_seed else [seeds]
    costs = TaskCosts(scenario, episode_size(scenario))  # the bar counts agent-steps
    with progress_bar(scenario, costs) as progress:
        try:
            failures = [
                failure
                for group in groups
                for failure in run_fanned_out(scenario, run_dir, pool, progress, costs, group)
            ]
        except KeyboardInterrupt:
            pool.close(interrupted=True)
            remove_orphans(run_dir)
            raise
        except BaseException:
            pool.close()  # let running jobs finish (their files are atomic), drop queued ones
            raise
    pool.close()
    return failures


def run_fanned_out(
    scenario: Scenario,
    run_dir: Path,
    pool: Pool,
    progress: tqdm,
    costs: TaskCosts,
    seeds: list[int],
) -> list[str]:
    """Every seed's shared stages first, then each phase of its tasks (``marlmod.tasks``) as
    separate jobs as soon as the phase before is done: the workers stay busy to the end
    instead of idling while the last seed runs alone, and a cluster can run as many tasks as
    there are cells. A failed job is recorded and its seed's later phases are left for a rerun
    (they read what it would have written); returns the failures' error lines."""
    phases = seed_phases(scenario)
    phase_of = dict.fromkeys(seeds, -1)  # the phase each seed is in (-1: shared)
    left = dict.fromkeys(seeds, 1)  # its jobs of that phase still running
    failed: set[int] = set()
    failures: list[str] = []
    for seed in seeds:
        pool.submit(Job(seed))
    while pool.busy:
        for job, error in pool.wait_one():
            progress.update(costs.of(job.task))
            if error is None:
                clear_failure(run_dir, job.seed, job.key)
            else:
                record_failure(run_dir, job.seed, job.key, job.label, job.cell, error)
                failures.append(failure_message(scenario, job, error))
                failed.add(job.seed)
                progress.write(f"marlmod: failed: {failures[-1]}")
            seed = job.seed
            left[seed] -= 1
            while left[seed] == 0 and seed not in failed and phase_of[seed] + 1 < len(phases):
                phase_of[seed] += 1
                for task in phases[phase_of[seed]]:
                    pool.submit(Job(seed, task))
                left[seed] = len(phases[phase_of[seed]])
    return failures


def finish(scenario: Scenario, run_dir: Path, failures: list[str]) -> str:
    """Write the report; then, if any job failed, stop with one line saying what and where."""
    if failures and not any(run_dir.glob("seed_*/*/cell.json")):
        reported = "no cell finished, so no report was written"
    else:
        summary = write_report(run_dir, scenario.name)
        reported = f"the report ({run_dir / 'summary.md'}) marks them"
    if not failures:
        return summary
    raise MarlmodError(
        f"{len(failures)} task(s) failed, the rest finished; {reported}; details under "
        f"{run_dir / FAILED_DIR}; rerun to retry them. First: {failures[0]}"
    )


def _run_on_ray(
    scenario: Scenario,
    run_dir: Path,
    n_workers: int,
    address: str | None,
    ship_files: bool | None,
) -> list[str]:
    try:
        import ray
    except ImportError as err:
        raise MarlmodError("backend 'ray' needs Ray: pip install 'marlmod[ray]'") from err
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=address,
            num_cpus=None if address else n_workers,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    ship = address is not None if ship_files is None else ship_files
    try:
        return run_jobs(scenario, run_dir, RayPool(ray, scenario, run_dir, ship))
    finally:
        if started_here:
            ray.shutdown()


def create_run_dir(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MarlmodError(f"cannot create results directory {run_dir}: {err}") from err


def prepare_run_dir(scenario: Scenario, run_dir: Path) -> None:
    """Create the run directory (failing early if unwritable) and pin it to this config."""
    create_run_dir(run_dir)
    try:
        probe = run_dir / ".write_probe"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise MarlmodError(f"results directory {run_dir} is not writable: {err}") from err
    free = shutil.disk_usage(run_dir).free
    if free < MIN_FREE_BYTES:
        raise MarlmodError(
            f"only {free / 2**20:.0f} MiB free under {run_dir}; marlmod needs "
            f"{MIN_FREE_BYTES / 2**20:.0f} MiB to start (models, activations)"
        )
    info_path = run_dir / "run.json"
    if info_path.is_file():
        previous = stored_digest(read_json(info_path), info_path)
        if previous != scenario.digest:
            raise MarlmodError(
                f"{run_dir} holds results of a different config (hash {previous}, this one "
                f"{scenario.digest}); choose another --out or delete that directory"
            )
        check_layout(run_dir)
        note_resume(info_path)
        return
    write_json(
        info_path,
        {
            "config_hash": scenario.digest,
            "config": scenario.model_dump(mode="json"),
            "versions": package_versions(),
            "git_commit": git_commit(),
        },
    )


def note_resume(info_path: Path) -> None:
    """Record in ``run.json`` the commit of a rerun that resumes the run with other code, so a
    run finished by a later version says so (``resumed_with``: commit and date, oldest first).
    Results stay valid across such resumes only because the digest matched; the note is for
    provenance, not for reuse."""
    info = read_json(info_path)
    commit = git_commit()
    known = [info.get("git_commit"), *(r["git_commit"] for r in info.get("resumed_with", []))]
    if commit == "unknown" or commit == known[-1]:
        return
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    info["resumed_with"] = [*info.get("resumed_with", []), {"git_commit": commit, "date": stamp}]
    write_json(info_path, info)


def stored_digest(info: dict, path: Path) -> str:
    """Digest of the config a run directory was made with, re-read under today's schema so that
    fields added since (with defaults) or execution-only fields do not orphan old results."""
    try:
        return stored_scenario(info, path).digest
    except (KeyError, TypeError, MarlmodError):
        return str(info.get("config_hash", "unknown"))


def stored_scenario(info: dict, path: Path) -> Scenario:
    """The scenario a run directory's ``run.json`` (``info``, read from ``path``) was made with,
    under today's schema and on the backend that trained it."""
    return parse_scenario(naming_the_backend(info["config"]), source=str(path))


def naming_the_backend(config: Any) -> Any:
    """A stored config with ``ppo.backend`` set. Run directories made before that key stored
    ``ppo.compile`` (or, before it, nothing): ``compile: true`` trained on the compiled step,
    anything else on SB3's or LeanPPO's loops, bitwise alike (``lean``). Named explicitly so that
    an old config never re-parses with today's ``DEFAULT_BACKEND``, nor fails on the old key."""
    if not isinstance(config, dict):
        return config
    ppo = config.get("ppo", {})
    if not isinstance(ppo, dict) or "backend" in ppo:
        return config
    backend = "compiled" if ppo.get("compile") is True else "lean"
    rest = {key: value for key, value in ppo.items() if key != "compile"}
    return {**config, "ppo": {**rest, "backend": backend}}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"
