"""Training throughput per policy size and for the CNN policy: marlmod's route against the plain
SuperSuit + SB3 route with the same network, side by side (issue 16).

Run (from the repository root, venv active)::

    python benchmarks/scale_throughput.py                     # every setting, 20k agent-steps each
    python benchmarks/scale_throughput.py --settings width_512,cnn --budget 50000
    python benchmarks/scale_throughput.py --quick             # CI smoke run, a few seconds

Settings are the scale study's policies on Gathering (``configs/scale/``): ``width_W`` (two hidden
layers of W units), ``depth_D`` (D layers of 64) and ``cnn`` (``configs/scale/cnn.yaml``: two 16-
channel 3×3 conv layers over Gathering's ``observation: planes``, then 64 units). Each setting is
trained by two routes, each in a fresh subprocess (so one route's imports or caches never help
another):

``marlmod``
    what ``marlmod run`` trains the setting with: ``marlmod.train.build_model`` on the scenario
    (its ``ppo.backend`` — ``lean`` for the MLPs, ``sb3`` for the CNN, which ``lean`` does not
    serve — on Gathering's NumPy-batched twin, one torch thread).
``plain``
    the ParallelEnv through SuperSuit (``benchmarks/supersuit_route.py``) into SB3's own PPO with
    the same ``policy_kwargs`` (``marlmod.train.policy_kwargs``: the same network, conv stack
    included) and PyTorch's default thread count: the route as a user would first write it.

Both use the scenario's PPO settings (8 copies × n_steps 128, batch 256, 4 epochs) and the same
budget and seed. Columns: ``train/s`` = agent-steps per second of ``PPO.learn``; ``/cpu-s`` = the
same per second of the process's CPU time (less disturbed by other load on a shared machine);
``x plain`` = marlmod's train rate over the plain route's in the same setting.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = (
    "width_32",
    "width_64",
    "width_128",
    "width_256",
    "width_512",
    "depth_3",
    "depth_4",
    "cnn",
)
ROUTES = ("marlmod", "plain")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated settings")
    parser.add_argument("--budget", type=int, default=20_000, help="PPO agent-steps per route")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny budgets for CI")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def scenario_of(setting: str, quick: bool):
    """The scale study's scenario for ``setting`` (its config file), tiny layout for ``--quick``."""
    from marlmod.config import load_scenario

    assignments = ["ppo.n_copies=2", "ppo.n_steps=32", "ppo.batch_size=64"] if quick else []
    return load_scenario(ROOT / "configs" / "scale" / f"{setting}.yaml", assignments)


def run_route(setting: str, route: str, budget: int, seed: int, quick: bool) -> dict:
    """Train one route of one setting in this process; returns one JSON-able row."""
    import torch
    from stable_baselines3 import PPO
    from supersuit_route import supersuit_venv  # benchmarks/, beside this script

    from marlmod.environments import resolve_env
    from marlmod.train import build_model, policy_kwargs, ppo_arguments

    scenario = scenario_of(setting, quick)
    make_env = resolve_env(scenario.env).factory(scenario.env.bonus)
    if route == "marlmod":
        torch.set_num_threads(1)
        model = build_model(scenario, make_env, seed)
    else:
        ppo = scenario.ppo
        model = PPO(
            "MlpPolicy",
            supersuit_venv(make_env, ppo.n_copies),
            **ppo_arguments(ppo),
            policy_kwargs=policy_kwargs(scenario.network),
            seed=seed,
            device="cpu",
            verbose=0,
        )
    tic, cpu = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=budget, progress_bar=False)
    wall, cpu = time.perf_counter() - tic, time.process_time() - cpu
    return {
        "setting": setting,
        "route": route,
        "backend": scenario.ppo.backend if route == "marlmod" else "sb3+SuperSuit",
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.policy.parameters()),
        "train_rate": model.num_timesteps / wall,
        "train_cpu_rate": model.num_timesteps / cpu,
    }


def measure(args: argparse.Namespace, setting: str, route: str) -> dict:
    """One route of one setting in a fresh process."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    argv = [sys.executable, __file__, "--child", f"{setting}:{route}"]
    argv += ["--budget", str(args.budget), "--seed", str(args.seed)]
    argv += ["--quick"] if args.quick else []
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child {setting}:{route} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def table(rows: list[dict]) -> str:
    plain = {r["setting"]: r["train_rate"] for r in rows if r["route"] == "plain"}
    header = f"{'setting':<10} {'route':<8} {'backend':<16} {'params':>8} {'thr':>3} "
    header += f"{'train/s':>9} {'/cpu-s':>9} {'x plain':>8}"
    lines = [header]
    for r in rows:
        ratio = r["train_rate"] / plain[r["setting"]] if r["setting"] in plain else float("nan")
        lines.append(
            f"{r['setting']:<10} {r['route']:<8} {r['backend']:<16} {r['params']:>8} "
            f"{r['threads']:>3} {r['train_rate']:>9.0f} {r['train_cpu_rate']:>9.0f} {ratio:>8.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.budget = min(args.budget, 256)
    if args.child:
        setting, route = args.child.split(":")
        print(json.dumps(run_route(setting, route, args.budget, args.seed, args.quick)))
        return 0
    settings = [s for s in args.settings.split(",") if s]
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown setting {unknown[0]!r}; valid: {', '.join(SETTINGS)}")
    rows = [measure(args, setting, route) for setting in settings for route in ROUTES]
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
