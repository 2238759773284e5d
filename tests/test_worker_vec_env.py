"""Env copies in worker processes: the same trajectories as in-process copies, the per-slot API
routed to the right copy, and a dead or raising worker named instead of a hung learner."""

from __future__ import annotations

import gc
import os
import signal
import time
from functools import partial
from typing import Any

import numpy as np
import pytest

from envs.gathering import ZAP, GatheringEnv
from marlmod.config import parse_scenario
from marlmod.train import make_venv
from marlmod.vec_env import SharedPolicyVecEnv
from marlmod.worker_vec_env import EnvWorkerError, WorkerVecEnv

SMALL = partial(GatheringEnv, grid_size=5, max_cycles=7, aggression_bonus=1.0)


def play(venv, steps: int = 30, reseed_at: int = 17, reset_at: int = 24) -> list:
    """Everything the VecEnv hands SB3, over episode ends, a reseeding and a plain reset (as
    ``learn`` does on each call) in the middle."""
    venv.seed(40)
    frames: list[Any] = [venv.reset()]
    rng = np.random.default_rng(1)
    for t in range(steps):
        if t == reseed_at:
            venv.seed(90)
            frames.append(venv.reset())
        if t == reset_at:
            frames.append(venv.reset())
        obs, rewards, dones, infos = venv.step(rng.integers(0, 6, size=venv.num_envs))
        labels = [(i["behaviour"], i["opportunity"], i["task_reward"]) for i in infos]
        terminal = [i.get("terminal_observation") for i in infos]
        frames.append((obs, rewards, dones, labels, terminal))
    venv.close()
    return frames


def assert_same(a: Any, b: Any) -> None:
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("n_workers", [1, 2, 3])
def test_workers_reproduce_in_process_copies_exactly(n_workers: int) -> None:
    reference = play(SharedPolicyVecEnv([SMALL] * 5))
    assert_same(play(WorkerVecEnv([SMALL] * 5, n_workers)), reference)


def test_per_slot_api_reaches_the_copy_that_owns_the_slot() -> None:
    venv = WorkerVecEnv([SMALL] * 3, n_workers=2)  # copies 0 | 1, 2; two agents per copy
    venv.reset()
    venv.set_attr("zap_cost", 0.7, indices=[3])  # slot 3 is copy 1, in the second worker
    assert venv.get_attr("zap_cost") == [0.3, 0.3, 0.7, 0.7, 0.3, 0.3]
    assert venv.env_method("__getattribute__", "zap_cost", indices=[5, 2, 0]) == [0.3, 0.7, 0.3]
    assert len(venv.get_images()) == 3
    venv.close()


def worker_processes(venv: WorkerVecEnv) -> list:
    """The forked processes (block 0 is stepped in this process)."""
    return [w.process for w in venv._workers[1:]]


def test_workers_start_on_first_use_and_stop_on_close_or_collection() -> None:
    venv = WorkerVecEnv([SMALL] * 3, n_workers=3)
    assert venv._workers == [] and venv.get_attr("max_cycles") == [7] * 6  # the probe answers
    venv.reset()
    processes = worker_processes(venv)
    assert len(processes) == 2 and all(p.is_alive() for p in processes)
    venv.close()
    assert not any(p.is_alive() for p in processes)
    venv = WorkerVecEnv([SMALL] * 2, n_workers=2)
    venv.reset()
    processes = worker_processes(venv)
    del venv
    gc.collect()
    assert not any(p.is_alive() for p in processes)


def test_a_killed_worker_raises_naming_env_copies_and_seeds() -> None:
    venv = WorkerVecEnv([SMALL] * 4, n_workers=2)
    venv.seed(100)
    venv.reset()
    os.kill(venv._workers[1].process.pid, signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(EnvWorkerError) as err:
        venv.step(np.full(venv.num_envs, ZAP))
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "'gathering_v0' worker 1 (copies 2-3, seeds [102, 103]) died" in message
    assert "exit code -9" in message
    venv.close()


class ExplodingGathering(GatheringEnv):
    """Gathering that fails on the fourth step of an episode seeded 6."""

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.seeded = seed
        return super().reset(seed=seed, options=options)

    def step(self, actions: dict[str, Any]):
        if self.cycle == 3 and self.seeded == 6:
            raise ValueError("the env broke")
        return super().step(actions)


def test_an_env_error_in_a_worker_raises_with_its_traceback() -> None:
    venv = WorkerVecEnv([ExplodingGathering] * 2, n_workers=2)  # copy 1 (seed 6) in worker 1
    venv.seed(5)
    venv.reset()
    with pytest.raises(EnvWorkerError, match=r"(?s)worker 1 .*seeds \[6\].*the env broke"):
        for _ in range(4):
            venv.step(np.zeros(venv.num_envs, dtype=int))
    venv.close()


def test_env_workers_setting_trains_on_worker_processes(tiny_dict: dict) -> None:
    tiny_dict["ppo"] = {**tiny_dict.get("ppo", {}), "vectorised": False, "env_workers": 2}
    scenario = parse_scenario(tiny_dict)
    venv = make_venv(scenario, SMALL)
    assert isinstance(venv, WorkerVecEnv) and venv.n_workers == 2
    venv.close()
    one = parse_scenario({**tiny_dict, "ppo": {**tiny_dict["ppo"], "env_workers": 1}})
    assert one.digest == scenario.digest  # how the copies are stepped is not the experiment
