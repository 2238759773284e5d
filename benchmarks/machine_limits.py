"""How far training is from this machine's limits: one core's matmul peak against the FLOP/s the
PPO update achieves, and the batched env's own random-action rate against training's env rate.

Run (from the repository root, venv active)::

    python benchmarks/machine_limits.py                     # what a new scenario trains with
    python benchmarks/machine_limits.py --backend lean --copies 8 --n-steps 128
    python benchmarks/machine_limits.py --quick             # CI smoke run; numbers mean nothing

Everything runs on one thread, as every marlmod worker does. Printed:

* **matmul peak**: a 256×256 float32 matrix product in a loop (2·256³ FLOP each) per CPU second,
  the best of several timed blocks, and the same for the policy's widest product (a minibatch
  times the first layer's weights), which is what the update actually multiplies;
* **update step**: the FLOPs of one minibatch step counted from the MLP's shapes — forward
  (2·rows·in·out per Linear layer of the policy and value nets and their heads), backward (the
  weight gradients, 2·rows·in·out per layer, and the input gradients of every layer but the
  first) and gradient clipping plus Adam (``OPTIMISER_FLOPS_PER_WEIGHT`` per weight) — over the
  measured time of PPO's update phase (``train()``: every epoch's minibatches, shuffling
  included), as FLOP/s per wall and per CPU second and as a share of the matmul peak (read the
  CPU line: both are then per second the core was ours). Elementwise work (activations,
  softmax, the loss) is left out of the count, so the share is a lower bound on how busy the
  core is;
* **env steps**: the batched env stepped with random actions (no policy), training's agent-steps
  per second (rollouts and updates), and the rollouts alone (env and policy calls), each as a
  share of the env's own rate.

On a shared machine these move with its load: compare lines of one run.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

# Gradient clipping (square and sum for the norm, one scale) and Adam (two moment updates, the
# square root, bias corrections, division and the step): elementwise operations per weight.
OPTIMISER_FLOPS_PER_WEIGHT = 3 + 11


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="marlmod/gathering-v0")
    parser.add_argument("--env-kwargs", default="{}", help="env kwargs as JSON")
    parser.add_argument("--backend", default=None, help="ppo.backend (default: PPOConfig()'s)")
    parser.add_argument("--copies", type=int, default=None, help="default: PPOConfig()'s")
    parser.add_argument("--n-steps", type=int, default=None, help="default: PPOConfig()'s")
    parser.add_argument("--budget", type=int, default=100_000, help="PPO agent-steps")
    parser.add_argument("--env-steps", type=int, default=200_000, help="env-only agent-steps")
    parser.add_argument("--seconds", type=float, default=1.0, help="per timed matmul block")
    parser.add_argument("--quick", action="store_true", help="tiny budgets for CI")
    args = parser.parse_args(argv)
    if args.quick:
        args.budget, args.env_steps, args.seconds = 4_096, 2_000, 0.05
    return args


# ---------------------------------------------------------------------------- one core's peak
def matmul_rate(rows: int, inner: int, cols: int, seconds: float, blocks: int = 5) -> float:
    """FLOP/s of a float32 (rows × inner) @ (inner × cols) product on this thread, per CPU
    second (a shared machine's load takes the core away, which wall time would count): the best
    of ``blocks`` timed loops of about ``seconds`` each."""
    a, b = torch.randn(rows, inner), torch.randn(inner, cols)
    out = torch.empty(rows, cols)
    flops = 2 * rows * inner * cols
    tic, n = time.process_time(), 0
    while time.process_time() - tic < seconds / 10:
        torch.mm(a, b, out=out)
        n += 1
    per_block = max(1, round(n * seconds / max(time.process_time() - tic, 1e-9)))
    best = 0.0
    for _ in range(blocks):
        tic = time.process_time()
        for _ in range(per_block):
            torch.mm(a, b, out=out)
        best = max(best, flops * per_block / max(time.process_time() - tic, 1e-9))
    return best


# ---------------------------------------------------------------------------- FLOPs of an update
def linear_shapes(policy: Any) -> list[tuple[int, int, bool]]:
    """(in, out, first) of every Linear the update runs: policy net, value net, both heads;
    ``first`` marks layers fed by the observation (they need no input gradient)."""
    from marlmod.functional_policy import parameters_in_order

    weights = parameters_in_order(policy)[0::2]
    obs_dim = weights[0].shape[1]
    return [(w.shape[1], w.shape[0], w.shape[1] == obs_dim) for w in weights]


def update_flops(policy: Any, rows: int) -> dict[str, int]:
    """FLOPs of one minibatch step on ``rows`` samples, by part."""
    shapes = linear_shapes(policy)
    forward = sum(2 * rows * i * o for i, o, _ in shapes)
    backward = sum(2 * rows * i * o * (1 if first else 2) for i, o, first in shapes)
    weights = sum(p.numel() for p in policy.parameters())
    return {
        "forward": forward,
        "backward": backward,
        "optimiser": OPTIMISER_FLOPS_PER_WEIGHT * weights,
    }


# ---------------------------------------------------------------------------- training
def build(args: argparse.Namespace) -> tuple[Any, Callable[[], Any], dict[str, Any]]:
    """A fresh model on the route a new scenario trains with (``PPOConfig()``), with
    ``--backend``, ``--copies`` and ``--n-steps`` overriding it, and its env factory."""
    from marlmod.config import NetworkConfig, PPOConfig
    from marlmod.environments import resolve_constructor
    from marlmod.train import BACKENDS, on_backend, policy_kwargs, ppo_arguments
    from marlmod.vec_env import SharedPolicyVecEnv, batched_venv

    ppo, net = PPOConfig(), NetworkConfig()
    backend = args.backend or ppo.backend
    copies, n_steps = args.copies or ppo.n_copies, args.n_steps or ppo.n_steps
    constructor, kwargs = resolve_constructor(args.env), json.loads(args.env_kwargs)

    def make_venv() -> Any:
        venv = batched_venv(lambda: constructor(**kwargs), copies)
        return venv or SharedPolicyVecEnv([lambda: constructor(**kwargs)] * copies)

    model = BACKENDS[backend](
        "MlpPolicy",
        make_venv(),
        **{**ppo_arguments(ppo), "n_steps": n_steps},
        policy_kwargs=policy_kwargs(net),
        seed=0,
        device="cpu",
        verbose=0,
    )
    on_backend(model, backend)
    if backend == "compiled":
        model.warm_up_compiled_update()
    layout = {"backend": backend, "copies": copies, "n_steps": n_steps, "batch": ppo.batch_size}
    return model, make_venv, layout


def env_rate(make_venv: Callable[[], Any], steps: int) -> tuple[float, float]:
    """Agent-steps per second of the env alone, random actions: per wall and per CPU second."""
    venv = make_venv()
    venv.seed(0)
    venv.reset()
    rows = max(1, steps // venv.num_envs)
    actions = np.random.default_rng(0).integers(0, venv.action_space.n, (rows, venv.num_envs))
    tic, cpu = time.perf_counter(), time.process_time()
    for row in actions:
        venv.step(row)
    wall, cpu = time.perf_counter() - tic, time.process_time() - cpu
    venv.close()
    return rows * venv.num_envs / wall, rows * venv.num_envs / cpu


def timed_training(model: Any, budget: int) -> dict[str, float]:
    """``learn`` for ``budget`` agent-steps, its update phase (``train``) timed apart, in wall
    and in this process's CPU seconds (which other people's load disturbs far less)."""
    spent = {"train_s": 0.0, "train_cpu": 0.0, "updates": 0}
    train = model.train

    def timed_train() -> None:
        tic, cpu = time.perf_counter(), time.process_time()
        train()
        spent["train_s"] += time.perf_counter() - tic
        spent["train_cpu"] += time.process_time() - cpu
        spent["updates"] += 1

    model.train = timed_train
    tic, cpu = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=budget, progress_bar=False)
    spent["learn_s"] = time.perf_counter() - tic
    spent["learn_cpu"] = time.process_time() - cpu
    spent["steps"] = model.num_timesteps
    del model.train
    return spent


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    model, make_venv, layout = build(args)
    rollout_size = model.n_steps * model.env.num_envs
    minibatches = model.n_epochs * -(-rollout_size // model.batch_size)
    first_in, first_out, _ = linear_shapes(model.policy)[0]
    square = matmul_rate(256, 256, 256, args.seconds)
    widest = matmul_rate(model.batch_size, first_in, first_out, args.seconds)
    flops = update_flops(model.policy, model.batch_size)
    spent = timed_training(model, args.budget)
    env, env_cpu = env_rate(make_venv, args.env_steps)

    total = sum(flops.values())
    n_minibatches = spent["updates"] * minibatches
    wall_flops = total * n_minibatches / spent["train_s"]
    cpu_flops = total * n_minibatches / spent["train_cpu"]
    print(
        f"{args.env}: ppo.backend {layout['backend']}, {layout['copies']} copies x n_steps "
        f"{layout['n_steps']}, batch {layout['batch']}, one thread"
    )
    print(f"matmul peak, 256x256 @ 256x256 float32: {square / 1e9:.1f} GFLOP/s per CPU second")
    print(
        f"the update's widest product, {model.batch_size}x{first_in} @ {first_in}x{first_out}: "
        f"{widest / 1e9:.1f} GFLOP/s ({widest / square:.0%} of the peak)"
    )
    print(
        f"update step: {total / 1e6:.2f} MFLOP per minibatch (forward {flops['forward'] / 1e6:.2f}"
        f", backward {flops['backward'] / 1e6:.2f}, clipping + Adam {flops['optimiser'] / 1e6:.2f})"
    )
    for name, seconds, achieved in (
        ("wall", spent["train_s"], wall_flops),
        ("CPU", spent["train_cpu"], cpu_flops),
    ):
        print(
            f"  per {name:<4} second: {seconds / n_minibatches * 1e3:.3f} ms per minibatch in the "
            f"update phase -> {achieved / 1e9:.2f} GFLOP/s = {achieved / square:.1%} of the "
            f"peak, {achieved / widest:.1%} of the widest product's rate"
        )
    print(f"update phase: {spent['train_s'] / spent['learn_s']:.0%} of learn's wall time")
    rollout_s = spent["learn_s"] - spent["train_s"]
    rollout_cpu = spent["learn_cpu"] - spent["train_cpu"]
    rows = (
        ("env alone, random actions", env, env_cpu),
        (
            "training (rollouts + updates)",
            spent["steps"] / spent["learn_s"],
            spent["steps"] / spent["learn_cpu"],
        ),
        ("rollouts alone (env + policy)", spent["steps"] / rollout_s, spent["steps"] / rollout_cpu),
    )
    print(f"{'agent-steps per second':<32}{'wall':>10}{'CPU':>10}{'of env (CPU)':>14}")
    for name, wall, cpu in rows:
        print(f"  {name:<30}{wall:>10,.0f}{cpu:>10,.0f}{cpu / env_cpu:>14.1%}")


if __name__ == "__main__":
    main()
