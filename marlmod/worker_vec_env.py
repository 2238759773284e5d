"""Env copies stepped in several processes, so a game whose step is single-threaded C++ (Lab2D)
uses every core: the copy-major VecEnv of ``marlmod.vec_env`` with its copies spread over
processes.

The copies are cut into ``n_workers`` contiguous blocks. The first is stepped in the training
process itself, while forked worker processes step the others (the learner would otherwise wait
idle, and one process fewer has to be woken each step). Every block is a ``SharedPolicyVecEnv``
running that class's own reset and step, so slot layout, seeding (copy ``k`` gets ``seed + k``),
black death, terminal observations and automatic resets are exactly ``SharedPolicyVecEnv``'s over
the same factories: the same trajectories, labels included, whatever the number of workers
(tests/test_worker_vec_env.py). A block resets an ended copy right after the step (it would be
reset next anyway, on its own random stream) and returns both observations, which saves a round
trip per ended copy.

Workers are forked (the env registry and imported modules come along, and nothing is imported
again), started only when the envs are first used (loading a checkpoint only for its policy
starts none), and stopped by ``close`` or when the VecEnv is garbage-collected. A worker that
dies or raises stops training with an ``EnvWorkerError`` naming the env, its copies and their
seeds, instead of leaving the learner waiting.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
import weakref
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
from pettingzoo import ParallelEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices

from marlmod.errors import MarlmodError
from marlmod.vec_env import CopiesStep, CopyMajorVecEnv, SharedPolicyVecEnv

POLL_S = 1.0  # how often a waiting learner checks that its workers are alive


class EnvWorkerError(RuntimeError):
    """An env worker process died or raised; the message names the env, copies and seeds."""


class WorkerVecEnv(CopyMajorVecEnv):
    """``len(env_fns)`` copies as VecEnv slots, stepped in ``n_workers`` processes: this one and
    ``n_workers - 1`` forked workers."""

    def __init__(self, env_fns: Sequence[Callable[[], ParallelEnv]], n_workers: int) -> None:
        if not env_fns:
            raise ValueError("WorkerVecEnv needs at least one env factory")
        if n_workers < 1:
            raise ValueError(f"n_workers must be >= 1, got {n_workers}")
        if "fork" not in mp.get_all_start_methods():
            raise MarlmodError("env worker processes need the 'fork' start method (Linux, macOS)")
        self._env_fns = list(env_fns)
        self._probe = self._env_fns[0]()  # spaces and attributes before the workers start
        agents = list(self._probe.possible_agents)
        obs_space = self._probe.observation_space(agents[0])
        act_space = self._probe.action_space(agents[0])
        self.env_name = self._probe.metadata.get("name", type(self._probe).__name__)
        bounds = np.linspace(0, len(env_fns), min(n_workers, len(env_fns)) + 1).astype(int)
        self._blocks = [range(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self._workers: list[_Local | _Worker] = []  # block 0 local, then one worker per block
        self._last_seeds: list[int | None] = [None] * len(env_fns)
        self._restarted: dict[int, np.ndarray] = {}
        super().__init__(len(env_fns), len(agents), obs_space, act_space)
        self._obs = np.zeros((self.num_envs, *obs_space.shape), dtype=obs_space.dtype)

    @property
    def n_workers(self) -> int:
        return len(self._blocks)

    # ------------------------------------------------------------------ workers
    def _started(self) -> list[_Local | _Worker]:
        if not self._workers:
            context = mp.get_context("fork")
            fns = [[self._env_fns[k] for k in block] for block in self._blocks]
            remote = [_Worker.start(context, f, self._describe(w)) for w, f in enumerate(fns) if w]
            self._workers = [_Local(fns[0]), *remote]
            self._finalizer = weakref.finalize(self, _stop_all, list(self._workers))
            for w, worker in enumerate(remote, start=1):
                worker.receive(lambda w=w: self._describe(w))  # built its envs
        return self._workers

    def _describe(self, w: int) -> str:
        block = self._blocks[w]
        seeds = [self._last_seeds[k] for k in block]
        seeded = "unseeded" if all(s is None for s in seeds) else f"seeds {seeds}"
        where = "block 0, in the training process" if w == 0 else f"worker {w}"
        return f"env {self.env_name!r} {where} (copies {block.start}-{block.stop - 1}, {seeded})"

    def _locate(self, k: int) -> tuple[int, int]:
        """(worker, copy index within the worker's block) of copy ``k``."""
        for w, block in enumerate(self._blocks):
            if k in block:
                return w, k - block.start
        raise IndexError(k)

    def _ask(self, w: int, command: str, payload: Any = None) -> Any:
        worker = self._started()[w]
        worker.send(command, payload, lambda: self._describe(w))
        return worker.receive(lambda: self._describe(w))

    # ------------------------------------------------------------------ CopyMajorVecEnv hooks
    def _reset_copy(self, k: int, seed: int | None) -> None:
        rows = slice(k * self.n_agents, (k + 1) * self.n_agents)
        if seed is None and k in self._restarted:  # the worker already reset it after the step
            self._obs[rows] = self._restarted.pop(k)
            return
        if seed is not None:
            self._last_seeds[k] = seed
        w, local = self._locate(k)
        self._obs[rows] = self._ask(w, "reset", (local, seed))

    def _step_copies(self, actions: np.ndarray) -> CopiesStep:
        workers = self._started()
        for w, (worker, block) in enumerate(zip(workers, self._blocks, strict=True)):
            worker.send("step", actions[block.start : block.stop], lambda w=w: self._describe(w))
        # block 0 steps here (in receive) while the workers step theirs
        parts = [worker.receive(lambda w=w: self._describe(w)) for w, worker in enumerate(workers)]
        for block, (_, obs, restarted) in zip(self._blocks, parts, strict=True):
            rows = slice(block.start * self.n_agents, block.stop * self.n_agents)
            self._obs[rows] = obs
            for local, new_obs in restarted.items():
                self._restarted[block.start + local] = new_obs
        steps = [part[0] for part in parts]
        return CopiesStep(
            np.concatenate([s.rewards for s in steps]),
            np.concatenate([s.ended for s in steps]),
            np.concatenate([s.truncated for s in steps]),
            [info for s in steps for info in s.infos],
        )

    def _observe(self) -> np.ndarray:
        return self._obs.copy()

    def _copy_env(self, k: int) -> ParallelEnv:
        """Before the workers start, the probe (built by the same factory) answers for a copy."""
        return self._probe

    def _render_copy(self, k: int) -> np.ndarray | None:
        w, local = self._locate(k)
        return self._ask(w, "render", local)

    # ------------------------------------------------------------------ the per-slot API, by IPC
    def _per_worker(self, indices: VecEnvIndices) -> dict[int, list[int]]:
        """The addressed slots' copies, grouped by worker, in slot order (local indices)."""
        grouped: dict[int, list[int]] = {}
        for k in self._copies_of(indices):
            w, local = self._locate(k)
            grouped.setdefault(w, []).append(local)
        return grouped

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        if not self._workers:
            return super().get_attr(attr_name, indices)
        grouped = self._per_worker(indices)
        return [v for w, ks in grouped.items() for v in self._ask(w, "get_attr", (ks, attr_name))]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for w, ks in self._per_worker(indices).items():
            self._ask(w, "set_attr", (ks, attr_name, value))

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        call = (method_name, method_args, method_kwargs)
        return [
            v
            for w, ks in self._per_worker(indices).items()
            for v in self._ask(w, "env_method", (ks, *call))
        ]

    def close(self) -> None:
        if self._workers:
            self._finalizer()  # stops them once, now rather than at garbage collection
        self._workers = []
        self._probe.close()


# ---------------------------------------------------------------------- the blocks
class _Local:
    """Block 0, stepped in the training process: a command runs when its answer is asked for, so
    sending to every block and then receiving lets it run while the workers run theirs."""

    def __init__(self, env_fns: list) -> None:
        self.venv = SharedPolicyVecEnv(env_fns)
        self._command: tuple[str, Any] | None = None

    def send(self, command: str, payload: Any, describe: Callable[[], str]) -> None:
        self._command = (command, payload)

    def receive(self, describe: Callable[[], str]) -> Any:
        command, payload = self._command
        self._command = None
        return _handle(self.venv, command, payload)

    def request_stop(self) -> None:
        self.venv.close()

    def join(self) -> None:
        pass


class _Worker:
    """The learner's end of one worker process."""

    def __init__(self, process: mp.process.BaseProcess, conn: Connection) -> None:
        self.process, self.conn = process, conn

    @classmethod
    def start(cls, context: Any, env_fns: list, name: str) -> _Worker:
        ours, theirs = context.Pipe()
        process = context.Process(target=_serve, args=(theirs, env_fns), name=name, daemon=True)
        process.start()
        theirs.close()  # so the worker's death reads as end-of-file here
        return cls(process, ours)

    def send(self, command: str, payload: Any, describe: Callable[[], str]) -> None:
        try:
            self.conn.send((command, payload))
        except (BrokenPipeError, ConnectionResetError, OSError) as err:
            raise EnvWorkerError(f"{describe()} died ({self._exit()})") from err

    def receive(self, describe: Callable[[], str]) -> Any:
        try:
            while not self.conn.poll(POLL_S):
                if not self.process.is_alive():
                    raise EOFError
            status, result = self.conn.recv()
        except (EOFError, ConnectionResetError, OSError) as err:
            raise EnvWorkerError(f"{describe()} died ({self._exit()})") from err
        if status == "error":
            raise EnvWorkerError(f"{describe()} raised:\n{result}")
        return result

    def _exit(self) -> str:
        self.process.join(timeout=1.0)
        code = self.process.exitcode
        return "still running" if code is None else f"exit code {code}"

    def request_stop(self) -> None:
        try:
            self.conn.send(("close", None))
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass

    def join(self) -> None:
        self.process.join(timeout=5.0)
        if self.process.is_alive():
            self.process.terminate()
        self.conn.close()


def _stop_all(blocks: list[_Local | _Worker]) -> None:
    for block in blocks:
        block.request_stop()
    for block in blocks:
        block.join()


def _serve(conn: Connection, env_fns: list) -> None:
    """A worker's loop: its block of copies as a ``SharedPolicyVecEnv``, driven by commands."""
    try:
        venv = SharedPolicyVecEnv(env_fns)
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ok", None))
    while True:
        try:
            command, payload = conn.recv()
        except (EOFError, KeyboardInterrupt):
            break
        if command == "close":
            venv.close()
            break
        try:
            conn.send(("ok", _handle(venv, command, payload)))
        except BaseException:
            conn.send(("error", traceback.format_exc()))


def _handle(venv: SharedPolicyVecEnv, command: str, payload: Any) -> Any:
    n = venv.n_agents
    if command == "step":
        step = venv._step_copies(payload)
        obs = venv._observe()
        restarted = {}
        for k in np.flatnonzero(step.ended):
            venv._reset_copy(int(k), None)
            restarted[int(k)] = venv._observe()[k * n : (k + 1) * n]
        return step, obs, restarted
    if command == "reset":
        k, seed = payload
        venv._reset_copy(k, seed)
        return venv._observe()[k * n : (k + 1) * n]
    if command == "render":
        return venv.envs[payload].render()
    if command == "get_attr":
        ks, name = payload
        return [getattr(venv.envs[k], name) for k in ks]
    if command == "set_attr":
        ks, name, value = payload
        for k in ks:
            setattr(venv.envs[k], name, value)
        return None
    if command == "env_method":
        ks, name, args, kwargs = payload
        return [getattr(venv.envs[k], name)(*args, **kwargs) for k in ks]
    raise ValueError(f"unknown worker command {command!r}")
