"""The exception types the CLI turns into a single clear line instead of a traceback.

``MarlmodError`` stops the command (exit 2). Its subclass ``TaskFailed`` stops only the task that
raised it: a run records the failure (``marlmod.failures``), finishes every other task, writes
its report with the failed cells marked, and then exits 2 naming what failed. Every subclass
takes one message argument, so it pickles across worker processes and Ray unchanged.
"""


class MarlmodError(Exception):
    """A problem with the user's input (config, files, names) rather than a bug in marlmod."""


class RunLocked(MarlmodError):
    """Another process is writing the run directory (``marlmod.lock``)."""


class DiskFull(MarlmodError):
    """A write ran out of space; the message names the file and the space left. It stops the
    whole run (every other task would fail the same way); a rerun after freeing space resumes."""


class TaskFailed(MarlmodError):
    """One task of a run could not finish; the rest of the run goes on (see module docstring)."""


class TrainingDiverged(TaskFailed):
    """Loss, gradients or weights became NaN or infinite (``marlmod.divergence``)."""


class TraitNotObserved(TaskFailed):
    """The recorded steps hold no trait step (or only trait steps), so nothing can be contrasted
    — or too few for one strategy's estimate. A property of one seed's training (its pretraining
    collapsed or never found the trait, or learned it only faintly), not of the config: with no
    trait step that seed fails, with too few for a strategy that strategy's cells fail, and the
    rest of the run goes on."""


class WorkerDied(TaskFailed):
    """A worker process running a task died more often than the run retries it."""


class EnvWorkerDied(TaskFailed):
    """An environment running in a subprocess of its own died mid-episode.

    The contract for vectorised envs that step their copies in subprocesses: when a subprocess
    exits (or its pipe breaks), raise this — ideally built with ``env_worker_died`` — from
    ``step_wait``/``reset`` instead of hanging or raising a bare ``EOFError``/``BrokenPipeError``.
    The task then fails on its own and is retried by the next run; files already written are
    whole (``marlmod.atomic``), so nothing finished is lost.
    """


def env_worker_died(env_id: str, seed: int | None, detail: str) -> EnvWorkerDied:
    """The error a subprocess env raises when its worker dies, naming env, seed and cause
    (e.g. ``"exit code -9"``, ``"pipe closed"``)."""
    where = f"env {env_id}" + ("" if seed is None else f" (seed {seed})")
    return EnvWorkerDied(f"{where}: its worker process died ({detail})")
