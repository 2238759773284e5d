"""Running a whole scenario: every seed's shared stages, then its cells as tasks, then the report.

The run directory records the config, its hash, package versions and the git commit. Rerunning
into a directory made under a *different* config is refused rather than mixing results; rerunning
under the same config resumes (finished stages are reused, see ``pipeline``).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm import tqdm

from marlmod.atomic import read_json, write_json
from marlmod.config import Scenario, parse_scenario
from marlmod.environments import check_variants, resolve_env
from marlmod.errors import MarlmodError
from marlmod.migrate import check_layout
from marlmod.pipeline import run_seed, run_shared, run_task
from marlmod.progress import TaskCosts, episode_size, progress_bar
from marlmod.report import write_report
from marlmod.tasks import seed_phases

MIN_FREE_BYTES = 256 * 2**20  # a 5-seed scenario writes ~60 MiB; refuse before, not midway
PACKAGES = ("marlmod", "torch", "stable-baselines3", "pettingzoo", "gymnasium", "numpy")


BACKENDS = ("local", "ray")


def run_scenario(
    scenario: Scenario,
    out_root: Path,
    workers: int | None = None,
    backend: str = "local",
    ray_address: str | None = None,
) -> str:
    """Run (or resume) every seed of ``scenario`` under ``out_root/<name>``; return the summary.

    Work is split into tasks: each seed's shared stages (pretraining, control, recordings,
    prunes), then each of its cells and extras (``marlmod.tasks``). ``local`` runs them in
    worker processes on this machine (one worker: each seed in turn, in this process); ``ray``
    submits them as Ray tasks (to ``ray_address``, or a Ray instance started here), which needs
    ``out_root`` on a filesystem every Ray node shares. Both run the same task functions, so they
    give identical numbers for the same seeds.
    """
    if backend not in BACKENDS:
        raise MarlmodError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    check_variants(resolve_env(scenario.env), scenario.evaluation.held_out)  # fail before work
    if scenario.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise MarlmodError("tensorboard: true needs TensorBoard: pip install 'marlmod[tracking]'")
    run_dir = out_root.resolve() / scenario.name
    prepare_run_dir(scenario, run_dir)
    n_workers = workers or scenario.workers
    costs = TaskCosts(scenario, episode_size(scenario))  # the bar counts agent-steps
    with progress_bar(scenario, costs) as progress:
        if backend == "ray":
            _run_on_ray(scenario, run_dir, n_workers, ray_address, progress)
        elif n_workers == 1:
            for seed in scenario.seeds:
                run_seed(scenario, seed, run_dir)
                progress.update(costs.per_seed())
        else:
            with ProcessPoolExecutor(n_workers) as pool:
                try:
                    run_fanned_out(scenario, run_dir, LocalPool(pool), progress)
                except BaseException:
                    # Fail now: let running tasks finish (their files are atomic), drop queued ones.
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    return write_report(run_dir, scenario.name)


class LocalPool:
    """``concurrent.futures`` behind the two calls ``run_fanned_out`` needs."""

    def __init__(self, pool: ProcessPoolExecutor) -> None:
        self.pool = pool

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self.pool.submit(fn, *args)

    def wait_one(self, pending: set[Future]) -> tuple[set[Future], set[Future]]:
        done, rest = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            future.result()  # re-raise a task's error here
        return done, rest


class RayPool:
    """Ray tasks behind the same two calls (one CPU per task)."""

    def __init__(self, ray: Any) -> None:
        self.ray = ray
        self.remote: dict[Callable[..., Any], Any] = {}

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        if fn not in self.remote:
            self.remote[fn] = self.ray.remote(num_cpus=1)(fn)
        return self.remote[fn].remote(*args)

    def wait_one(self, pending: set[Any]) -> tuple[set[Any], set[Any]]:
        done, rest = self.ray.wait(list(pending), num_returns=1)
        self.ray.get(done)  # re-raise a task's error here
        return set(done), set(rest)


def run_fanned_out(
    scenario: Scenario, run_dir: Path, pool: LocalPool | RayPool, progress: tqdm
) -> None:
    """Every seed's shared stages first, then each phase of its tasks (``marlmod.tasks``) as
    separate tasks as soon as the phase before is done: the workers stay busy to the end
    instead of idling while the last seed runs alone, and a cluster can run as many tasks as
    there are cells."""
    phases = seed_phases(scenario)
    costs = TaskCosts(scenario, episode_size(scenario))
    seed_of = {pool.submit(run_shared, scenario, seed, run_dir): seed for seed in scenario.seeds}
    task_of: dict = {}  # the task behind each handle (absent: the seed's shared stages)
    phase_of = dict.fromkeys(seed_of.values(), -1)  # the phase each seed is in (-1: shared)
    left = dict.fromkeys(seed_of.values(), 1)  # its tasks of that phase still running
    pending = set(seed_of)
    while pending:
        done, pending = pool.wait_one(pending)
        for handle in done:
            progress.update(costs.of(task_of.pop(handle, None)))
            seed = seed_of.pop(handle)
            left[seed] -= 1
            while left[seed] == 0 and phase_of[seed] + 1 < len(phases):  # next phase
                phase_of[seed] += 1
                tasks = phases[phase_of[seed]]
                for task in tasks:
                    submitted = pool.submit(run_task, scenario, seed, run_dir, task)
                    seed_of[submitted] = seed
                    task_of[submitted] = task
                    pending.add(submitted)
                left[seed] = len(tasks)


def _run_on_ray(
    scenario: Scenario, run_dir: Path, n_workers: int, address: str | None, progress: tqdm
) -> None:
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
    try:
        run_fanned_out(scenario, run_dir, RayPool(ray), progress)
    finally:
        if started_here:
            ray.shutdown()


def prepare_run_dir(scenario: Scenario, run_dir: Path) -> None:
    """Create the run directory (failing early if unwritable) and pin it to this config."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MarlmodError(f"cannot create results directory {run_dir}: {err}") from err
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
