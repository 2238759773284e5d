"""Training throughput: the plain SuperSuit route against marlmod's routes, side by side.

Run (from the repository root, venv active)::

    python benchmarks/throughput.py                 # Gathering, 100k agent-steps per route
    python benchmarks/throughput.py --repeat 3      # medians of 3 interleaved rounds
    python benchmarks/throughput.py --quick         # CI smoke run, a few seconds
    python benchmarks/throughput.py --env marlmod/signalling-v0 --budget 50000

Routes, each in a fresh subprocess so timings and memory are per route and one route's imports or
caches never help another:

``plain``
    the dict-based ParallelEnv → SuperSuit ``pettingzoo_env_to_vec_env_v1`` +
    ``concat_vec_envs_v1(..., base_class="stable_baselines3")`` → SB3 PPO, through
    ``benchmarks/supersuit_route.py`` (which adds the ``seed()`` SB3 needs; see that module), with
    PyTorch's default thread count — the route as a user would first write it. The baseline.
``plain-1t``
    the same with ``torch.set_num_threads(1)``: on small nets extra threads cost more than they
    give, so this isolates what marlmod's thread default alone is worth. Every route below is
    single-threaded too.
``shared``
    marlmod's ``SharedPolicyVecEnv`` over the ParallelEnv (``ppo.vectorised: false``), SB3 PPO.

The training backends (``ppo.backend``, ``marlmod.train.BACKENDS``), each on the env's
NumPy-batched twin it declares (``ppo.vectorised: true``; skipped for an env without
one), built as ``marlmod.train`` builds them:

``sb3``
    stable_baselines3's own PPO loops.
``lean``
    ``marlmod.lean_ppo.LeanPPO``: SB3's PPO with the rollout and update loops written out,
    bitwise the same training (``tests/test_lean_ppo.py``).
``compiled``
    ``lean`` with ``marlmod.compiled_update``: each minibatch step — loss gradient, gradient
    clipping and Adam — compiled by ``torch.compile`` into one graph; faster, no longer bitwise
    SB3 (its learning quality: ``benchmarks/learning_quality.py`` with a ``+compiled`` setting).
    Compiling happens before the timed ``learn`` (on copies of the weights, so the trajectory is
    untouched) and is reported as ``compile s``; skipped without a C++ compiler.
``default``
    exactly what a new scenario trains with: ``PPOConfig()``'s backend (``DEFAULT_BACKEND``, or
    its no-compiler fallback), env route, copies, n_steps and batch size; ``--copies``,
    ``--n-steps`` and ``--batch-size`` do not apply to it (``default@COPIESxN_STEPS`` does). A
    line under the table says what it resolved to. ``--routes plain,default`` measures it.
``compiled@64x32``
    ``compiled`` with 64 env copies × n_steps 32 instead of 16 × 128: the same 4,096-sample
    rollouts, minibatches and epochs, but a quarter as many env steps and policy calls per
    rollout, each on four times the rows. Any route takes ``@COPIESxN_STEPS``. Its learning
    quality against the plain route's 16 × 128 was measured (docs/benchmarks.md).
``compiled@64x32*2``
    two processes of ``compiled@64x32`` at once, as ``marlmod run`` with ``workers: 2`` trains
    two cells at once on a 2-core machine; rates are summed over the processes (per CPU-second:
    total steps over total CPU time), memory too. Any route takes ``*K``.
``sb3-b1k`` (only when named in ``--routes``)
    the ``sb3`` route with batch_size 1024 and learning_rate 1.2e-3 (4× both): fewer, larger
    minibatches. Shown for what the speed would be, *not* a default:
    ``benchmarks/learning_quality.py`` on configs/aggression.yaml (500k steps, 3 seeds) gave the
    same attack rate but a lower task return (32.1 vs 38.1).

Every route but ``sb3-b1k`` and ``default`` gets the same PPO hyperparameters
(``PPOConfig``/``NetworkConfig`` defaults: 64×64 ReLU MLP, n_steps 128, batch 256, 4 epochs;
``--network`` sets another network for every route, e.g. a width or a CNN — a backend that
cannot train it is skipped with the reason),
``--copies`` env copies (16 by default) and the same agent-step budget and seed, unless its name
sets another layout. Columns: ``env/s`` = agent-steps per second stepping the VecEnv with random
actions (no policy); ``train/s`` = agent-steps per second of ``PPO.learn`` (rollouts and updates);
``/cpu-s`` = the same per second of the process's CPU time (``time.process_time``), which other
people's load on a shared machine disturbs far less than wall time; ``x plain`` = train rate over
the plain route's in the same round (with ``--repeat``, the median of the rounds' ratios; its range
follows the row), ``x 1t`` over ``plain-1t``'s, ``x 1t cpu`` the same in CPU time (a 2-thread route
spends two CPU-seconds per second); the other columns are per-field medians over rounds; ``learn
s`` = its wall time; ``proc s`` = the child's whole wall time (imports, env-only run, PPO
construction, learning); ``peak MiB`` = the child's peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, so it includes torch's ~300 MiB of imports) and
``+MiB`` = that peak minus the RSS right after the imports; ``weights`` = a checksum of the trained
policy: equal checksums mean the routes learnt exactly the same policy (``plain`` may differ in the
last digits: two threads add up matrix products in another order). The table ends with the locating
benchmark (``benchmarks/locate_scale.py``) unless ``--no-locate``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ROUTES = (
    "plain",
    "plain-1t",
    "shared",
    "sb3",
    "lean",
    "compiled",
    "default",
    "compiled@64x32",
    "compiled@64x32*2",
)
# Route kind -> (how its envs are stepped, its training backend). ``default`` is resolved in the
# child from ``PPOConfig()``, as a new scenario resolves it.
KINDS: dict[str, tuple[str, str]] = {
    "plain": ("supersuit", "sb3"),
    "plain-1t": ("supersuit", "sb3"),
    "shared": ("shared", "sb3"),
    "sb3": ("batched", "sb3"),
    "lean": ("batched", "lean"),
    "compiled": ("batched", "compiled"),
    "sb3-b1k": ("batched", "sb3"),
    "default": ("scenario", "scenario"),
}
RENAMED = {"fast": "sb3", "fast-b1k": "sb3-b1k"}
# Not a default (it learns less capability; see the module docstring): 4× minibatch and lr.
SB3_B1K = {"batch_size": 1024, "learning_rate": 1.2e-3}
GATHERING = "marlmod/gathering-v0"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default=GATHERING, help="registered env id or module:factory")
    parser.add_argument("--env-kwargs", default="{}", help="env kwargs as JSON")
    parser.add_argument(
        "--network",
        default="{}",
        help="the policy network for every route, NetworkConfig fields as JSON: e.g. "
        "'{\"hidden\": [256, 256]}' (a width), or a CNN with --env-kwargs "
        '\'{"observation": "planes"}\'',
    )
    parser.add_argument("--routes", default=",".join(ROUTES), help="comma-separated routes")
    parser.add_argument("--copies", type=int, default=16, help="env copies per route")
    parser.add_argument("--budget", type=int, default=100_000, help="PPO agent-steps per route")
    parser.add_argument("--env-steps", type=int, default=100_000, help="env-only agent-steps")
    parser.add_argument("--n-steps", type=int, default=None, help="override PPO n_steps")
    parser.add_argument("--batch-size", type=int, default=None, help="override PPO batch_size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="rounds over the routes (medians)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets for CI")
    parser.add_argument("--no-locate", action="store_true", help="skip the locating benchmark")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.copies, args.budget, args.env_steps = 2, 256, 2_000
        args.n_steps, args.batch_size = args.n_steps or 32, args.batch_size or 64
    return args


# ---------------------------------------------------------------------------- child: one route
def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@functools.cache
def torch_default_threads() -> int:
    """PyTorch's own thread count, read before any route changes it (``--quick`` runs every
    route in one process)."""
    import torch

    return torch.get_num_threads()


def processes(route: str) -> tuple[str, int]:
    """A route without its ``*K`` suffix, and K: how many copies of it run at once."""
    base, _, count = route.partition("*")
    if count and not (count.isdigit() and int(count) >= 1):
        raise SystemExit(f"route {route!r}: expected ROUTE*K with K a whole number, e.g. lean*2")
    return base, int(count or 1)


def layout(args: argparse.Namespace, route: str) -> tuple[str, int | None, int | None]:
    """A route's kind, env copies and n_steps: ``kind@COPIESxN_STEPS`` overrides the defaults
    (e.g. ``compiled@64x32``: four times the copies, a quarter of the steps, the same rollout
    size and minibatches); None where the route takes its own (``default``: ``PPOConfig``'s)."""
    kind, _, shape = processes(route)[0].partition("@")
    if not shape:
        if kind == "default":
            return kind, None, None
        return kind, args.copies, args.n_steps
    try:
        copies, n_steps = (int(x) for x in shape.split("x"))
    except ValueError:
        raise SystemExit(
            f"route {route!r}: expected kind@COPIESxN_STEPS, e.g. compiled@64x32"
        ) from None
    return kind, copies, n_steps


def build(
    backend_class: type,
    venv: Any,
    ppo: Any,
    net: Any,
    n_steps: int | None,
    batch_size: int,
    tuned: dict,
    args: argparse.Namespace,
) -> Any:
    """The route's PPO model, built as ``marlmod.train`` builds one (a shared-policy MLP or CNN)."""
    from marlmod.train import policy_kwargs, ppo_arguments

    return backend_class(
        "MlpPolicy",
        venv,
        **{
            **ppo_arguments(ppo),
            "n_steps": n_steps or ppo.n_steps,
            "batch_size": tuned.get("batch_size", batch_size),
            "learning_rate": tuned.get("learning_rate", ppo.learning_rate),
        },
        policy_kwargs=policy_kwargs(net),
        seed=args.seed,
        device="cpu",
        verbose=0,
    )


def run_route(args: argparse.Namespace, route: str) -> dict:
    """Measure one route in this process; returns one JSON-able row."""
    import numpy as np
    import torch
    from supersuit_route import supersuit_venv  # benchmarks/, beside this script

    from marlmod.config import NetworkConfig, PPOConfig
    from marlmod.environments import resolve_constructor
    from marlmod.errors import MarlmodError
    from marlmod.train import BACKENDS, on_backend
    from marlmod.vec_env import SharedPolicyVecEnv, batched_venv

    kind, copies, n_steps = layout(args, route)
    torch.set_num_threads(torch_default_threads() if kind == "plain" else 1)
    started_rss = rss_mib()
    constructor = resolve_constructor(args.env)
    kwargs = json.loads(args.env_kwargs)
    ppo = PPOConfig()  # resolves the default backend
    try:
        net = NetworkConfig(**json.loads(args.network))
    except (ValueError, TypeError) as err:  # pydantic's ValidationError is a ValueError
        return {"route": route, "skipped": f"--network rejected: {err}".splitlines()[0]}
    envs, backend = KINDS[kind]
    batch_size = args.batch_size or ppo.batch_size
    tuned = SB3_B1K if kind == "sb3-b1k" else {}
    if kind == "default":  # what a new scenario trains with
        envs, backend = "scenario", ppo.backend
        copies, n_steps, batch_size = copies or ppo.n_copies, n_steps or ppo.n_steps, ppo.batch_size

    def make_env():
        return constructor(**kwargs)

    def make_venv():
        if envs == "supersuit":
            return supersuit_venv(make_env, copies)
        if envs == "shared" or (envs == "scenario" and not ppo.vectorised):
            return SharedPolicyVecEnv([make_env] * copies)
        venv = batched_venv(make_env, copies)
        if venv is None and envs == "scenario":  # as marlmod.train.make_venv falls back
            return SharedPolicyVecEnv([make_env] * copies)
        return venv

    venv = make_venv()
    if venv is None:
        return {"route": route, "skipped": "no batched twin for this env"}
    venv.seed(args.seed)
    venv.reset()
    rng = np.random.default_rng(args.seed)
    n_actions = venv.action_space.n
    steps = max(1, args.env_steps // venv.num_envs)
    actions = rng.integers(0, n_actions, size=(steps, venv.num_envs))
    tic, cpu = time.perf_counter(), time.process_time()
    for row in actions:
        venv.step(row)
    env_wall, env_cpu = time.perf_counter() - tic, time.process_time() - cpu
    venv.close()

    try:  # a backend that cannot train this network (e.g. lean and a CNN) refuses here
        model = build(BACKENDS[backend], make_venv(), ppo, net, n_steps, batch_size, tuned, args)
    except MarlmodError as err:
        return {"route": route, "skipped": str(err).splitlines()[0]}
    tic = time.perf_counter()
    try:
        on_backend(model, backend)
    except MarlmodError as err:  # e.g. compiled without a C++ compiler
        return {"route": route, "skipped": str(err)}
    if backend == "compiled":  # compile now, on copies of the weights: the trajectory is kept
        model.warm_up_compiled_update()
    compile_s = time.perf_counter() - tic
    tic, cpu = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=args.budget, progress_bar=False)
    learn_s, learn_cpu = time.perf_counter() - tic, time.process_time() - cpu
    checksum = sum(float(p.detach().double().sum()) for p in model.policy.parameters())
    peak = rss_mib()
    return {
        "route": route,
        "backend": backend,
        "layout": f"{copies} copies x n_steps {model.n_steps}, batch {model.batch_size}",
        "threads": torch.get_num_threads(),
        "env_rate": steps * venv.num_envs / env_wall,
        "env_cpu_rate": steps * venv.num_envs / env_cpu,
        "train_rate": model.num_timesteps / learn_s,
        "train_cpu_rate": model.num_timesteps / learn_cpu,
        "learn_s": learn_s,
        "peak_mib": peak,
        "above_imports_mib": peak - started_rss,
        "weights": f"{checksum:.10g}",
        **({"compile_s": compile_s} if backend == "compiled" else {}),
    }


# ---------------------------------------------------------------------------- parent: the table
def child_argv(args: argparse.Namespace, route: str) -> list[str]:
    argv = [sys.executable, __file__, "--child", route, "--env", args.env]
    argv += ["--env-kwargs", args.env_kwargs, "--copies", str(args.copies)]
    argv += ["--network", args.network]
    argv += ["--budget", str(args.budget), "--env-steps", str(args.env_steps)]
    argv += ["--seed", str(args.seed)]
    for flag, value in (("--n-steps", args.n_steps), ("--batch-size", args.batch_size)):
        if value is not None:
            argv += [flag, str(value)]
    return argv


def start(args: argparse.Namespace, routes: list[str]) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    pipe = subprocess.PIPE
    argv = child_argv(args, ",".join(routes))
    return subprocess.Popen(argv, stdout=pipe, stderr=pipe, text=True, env=env), time.perf_counter()


def collect(proc: subprocess.Popen, started: float) -> list[dict]:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{err}")
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    for row in rows:
        row["proc_s"] = time.perf_counter() - started
    return rows


def measure_all(args: argparse.Namespace, routes: list[str]) -> list[dict]:
    """One fresh process per route, routes taking turns for ``--repeat`` rounds, so timings and
    memory are comparable and a burst of load hits every route alike; ``--quick`` (a smoke test)
    runs every route in one process to save the imports."""
    if args.quick:
        return add_ratios(collect(*start(args, routes)))
    rounds = [add_ratios([measure(args, route) for route in routes]) for _ in range(args.repeat)]
    return [median_row([r[i] for r in rounds]) for i in range(len(routes))]


def measure(args: argparse.Namespace, route: str) -> dict:
    """One route's row; ``ROUTE*K`` runs K processes of ROUTE at once (as ``marlmod run`` with K
    workers trains K cells at once) and reports their combined rates."""
    base, count = processes(route)
    started = [start(args, [base]) for _ in range(count)]
    rows = [row for proc in started for row in collect(*proc)]
    return rows[0] if count == 1 else combined(route, rows)


def combined(route: str, rows: list[dict]) -> dict:
    """Rows of processes that ran at the same time, as one: agent-steps/s add up over processes;
    per CPU-second it is total steps over total CPU time (every process does the same steps, so
    the harmonic mean); memory adds up."""
    if any("skipped" in r for r in rows):
        return {"route": route, "skipped": rows[0].get("skipped", "a process skipped")}

    def per_cpu_second(key: str) -> float:
        return len(rows) / sum(1 / r[key] for r in rows)

    out = {
        "route": route,
        "threads": sum(r["threads"] for r in rows),
        "env_rate": sum(r["env_rate"] for r in rows),
        "env_cpu_rate": per_cpu_second("env_cpu_rate"),
        "train_rate": sum(r["train_rate"] for r in rows),
        "train_cpu_rate": per_cpu_second("train_cpu_rate"),
        "weights": rows[0]["weights"],
        "backend": rows[0]["backend"],
        "layout": rows[0]["layout"],
    }
    for key, merge in (("learn_s", max), ("proc_s", max), ("compile_s", max)):
        if key in rows[0]:
            out[key] = merge(r[key] for r in rows)
    for key in ("peak_mib", "above_imports_mib"):
        out[key] = sum(r[key] for r in rows)
    return out


def add_ratios(rows: list[dict]) -> list[dict]:
    """Each route's speed over the plain routes' *in the same round*: a burst of load on the
    machine then moves numerator and denominator alike, and the median over rounds is of ratios
    (not a ratio of medians taken from different rounds)."""
    by_route = {r["route"]: r for r in rows if "skipped" not in r}
    plain, plain_1t = by_route.get("plain"), by_route.get("plain-1t")
    for r in by_route.values():
        if plain:
            r["x_plain"] = r["train_rate"] / plain["train_rate"]
        if plain_1t:
            r["x_plain_1t"] = r["train_rate"] / plain_1t["train_rate"]
            r["x_plain_1t_cpu"] = r["train_cpu_rate"] / plain_1t["train_cpu_rate"]
    return rows


def median_row(rows: list[dict]) -> dict:
    """Per-field medians of one route's rounds (the first round's non-numeric fields)."""
    out = dict(rows[0])
    for key, value in out.items():
        if isinstance(value, float):
            out[key] = statistics.median(r[key] for r in rows)
    for key in ("train_rate", "x_plain"):
        if key in out:
            out[f"{key}_range"] = (min(r[key] for r in rows), max(r[key] for r in rows))
    return out


COLUMNS = (  # header, row key, format
    ("env/s", "env_rate", ",.0f"),
    ("env/cpu-s", "env_cpu_rate", ",.0f"),
    ("train/s", "train_rate", ",.0f"),
    ("train/cpu-s", "train_cpu_rate", ",.0f"),
    ("threads", "threads", "d"),
    ("x plain", "x_plain", ".2f"),
    ("x 1t", "x_plain_1t", ".2f"),
    ("x 1t cpu", "x_plain_1t_cpu", ".2f"),
    ("learn s", "learn_s", ".1f"),
    ("proc s", "proc_s", ".1f"),
    ("peak MiB", "peak_mib", ".0f"),
    ("+MiB", "above_imports_mib", ".0f"),
    ("compile s", "compile_s", ".1f"),
)


def format_table(rows: list[dict]) -> str:
    head = f"{'route':<15}" + "".join(f"{h:>12}" for h, _, _ in COLUMNS) + "  weights"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "skipped" in r:
            lines.append(f"{r['route']:<15}  skipped: {r['skipped']}")
            continue
        cells = "".join(
            f"{format(r[key], fmt) if key in r else '-':>12}" for _, key, fmt in COLUMNS
        )
        lines.append(f"{r['route']:<15}{cells}  {r['weights']}")
        if "train_rate_range" in r and r["train_rate_range"][0] != r["train_rate_range"][1]:
            low, high = r["train_rate_range"]
            lines[-1] += f"  (train/s {low:,.0f}-{high:,.0f}"
            if "x_plain_range" in r:
                low, high = r["x_plain_range"]
                lines[-1] += f", x plain {low:.2f}-{high:.2f}"
            lines[-1] += ")"
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        for route in args.child.split(","):
            print(json.dumps(run_route(args, route)), flush=True)
        return
    routes = args.routes.split(",")
    for route in routes:
        kind = layout(args, route)[0]
        if kind in RENAMED:
            raise SystemExit(f"route {kind!r} is now {RENAMED[kind]!r} (named after its backend)")
        if kind not in KINDS:
            raise SystemExit(
                f"unknown route {route!r}; valid: {', '.join(KINDS)}, each optionally followed "
                "by @COPIESxN_STEPS and *PROCESSES"
            )
    load = os.getloadavg()
    print(
        f"env {args.env} {args.env_kwargs} | network {args.network} | {args.copies} copies | "
        f"budget {args.budget:,} agent-steps | env-only {args.env_steps:,} | "
        f"load avg {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores | "
        f"median of {args.repeat} round(s)"
    )
    if args.quick:
        print("--quick: a smoke test (all routes in one process); the numbers mean nothing")
    rows = measure_all(args, routes)
    print(format_table(rows))
    for row in rows:
        if row["route"].startswith("default") and "skipped" not in row:
            print(f"{row['route']}: ppo.backend {row['backend']}, {row['layout']} (PPOConfig())")
    if not args.no_locate:
        locate = [sys.executable, str(ROOT / "benchmarks" / "locate_scale.py")]
        sys.stdout.flush()
        subprocess.run(locate + (["--quick"] if args.quick else []), check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
