"""Running the env: random play to record, PettingZoo's own tests, and rendering."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.test import parallel_api_test, parallel_seed_test

from marlmod.check_env.records import Finding, Play, Step


def random_play(make_env: Callable[[], ParallelEnv], steps: int, seed: int) -> Play:
    """``steps`` parallel steps of uniformly random actions; episode e resets with seed+e."""
    env, rng, play = make_env(), np.random.default_rng(seed), Play()
    obs, _ = env.reset(seed=seed)
    play.resets.append(obs)
    while len(play.steps) < steps:
        if not env.agents:
            obs, _ = env.reset(seed=seed + len(play.resets))
            play.resets.append(obs)
            continue
        acting = tuple(env.agents)
        actions = {a: _sample(env.action_space(a), rng) for a in acting}
        play.steps.append(Step(acting, *env.step(actions)))
    env.close()
    return play


def _sample(space: spaces.Space, rng: np.random.Generator) -> Any:
    if isinstance(space, spaces.Discrete):
        return int(space.start + rng.integers(space.n))
    space.seed(int(rng.integers(2**31)))
    return space.sample()


def run_pettingzoo_tests(make_env: Callable[[], ParallelEnv], cycles: int) -> list[Finding]:
    """PettingZoo's parallel API and seed tests; their warnings become warning findings."""
    findings = []
    tests = {
        "pettingzoo-api": lambda: parallel_api_test(make_env(), num_cycles=cycles),
        "pettingzoo-seed": lambda: parallel_seed_test(make_env, num_cycles=cycles),
    }
    for name, test in tests.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    test()
            except Exception as err:  # any failure is a finding to report, not a crash
                findings.append(
                    Finding(
                        name,
                        f"failed: {err or type(err).__name__}",
                        "fix the env so PettingZoo's own test passes (marlmod needs a valid "
                        "ParallelEnv)",
                    )
                )
        messages = sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)})
        findings += [
            Finding(name, m, "see PettingZoo's ParallelEnv API", "warning") for m in messages
        ]
    return findings


def check_render(make_env: Callable[..., ParallelEnv]) -> list[Finding]:
    """``render_mode="rgb_array"`` gives an image (marlmod's videos); only a warning if not."""
    try:
        env = make_env(render_mode="rgb_array")
        env.reset(seed=0)
        frame = env.render()
        env.close()
    except Exception as err:  # a broken renderer must not hide the other findings
        frame = err
    if isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[-1] == 3:
        return []
    return [
        Finding(
            "render",
            f"render_mode='rgb_array' gave {type(frame).__name__}: {str(frame)[:80]}",
            "accept render_mode=None or 'rgb_array' and return an HxWx3 uint8 array",
            "warning",
        )
    ]
