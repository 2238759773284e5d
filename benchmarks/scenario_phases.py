"""Where a whole scenario's wall time goes: training, evaluation, recording, locating, reports.

Run (from the repository root, venv active), e.g. the aggression study on one seed with a fifth
of its training budgets::

    python benchmarks/scenario_phases.py configs/aggression.yaml --set 'seeds=[0]' \\
        --set pretrain_steps=100000 --set 'retrain={steps: 40000, eval_points: 4}'

It runs the scenario in this one process (``workers: 1``, so every stage is seen) into a fresh
temporary directory (or ``--out``), with a timer around each phase, and prints each phase's
*exclusive* wall time (a phase called inside another is subtracted from it), its share, its calls
and, for training, the agent-steps trained. Training time scales with the budgets; the other
phases mostly do not (evaluation scales with ``evaluation.episodes`` and the number of curve
points), so reduced budgets overstate everything but training: ``--full-budgets`` prints the
table again with training scaled to the config's own budgets (per-step cost as measured).

Phases: ``imports`` (marlmod, torch, SB3, scikit-learn), ``pretrain`` and ``retrain``
(``marlmod.train.learn`` for the pretraining budget — pretrained model, control — and for any
other, i.e. the chunks of every training curve: cells, the scratch bar, attacks),
``compile`` (the first call of the compiled PPO step in this process, for ``ppo.backend:
compiled``), ``evaluate`` (rollouts without recording: evaluations, curve points, sweeps),
``record`` (rollouts that record activations), ``build/load`` (``build_model``,
``load_model``), ``save`` (``save_model``), ``locate`` (``score_units``),
``clusterability``, ``report`` (``write_report``: tables and plots), ``other`` (the rest:
pruning, distillation, JSON, …). Timings on a shared machine move with its load; compare phases
within one run, or runs made minutes apart.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import functools  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


class PhaseTimer:
    """Exclusive wall time per phase: time spent in a nested phase is not its caller's."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.train_steps = 0
        self._stack: list[str] = []

    def timed(self, phase: str | Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            name = phase(*args, **kwargs) if callable(phase) else phase
            self._stack.append(name)
            tic = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - tic
                self._stack.pop()
                self.seconds[name] += elapsed
                self.calls[name] += 1
                if self._stack:
                    self.seconds[self._stack[-1]] -= elapsed

        return wrapper


def replace_everywhere(module: Any, name: str, make: Callable[[Any], Any]) -> None:
    """Replace ``module.name`` in every loaded marlmod module that imported it (by any name)."""
    original = getattr(module, name)
    wrapped = make(original)
    for loaded in list(sys.modules.values()):
        if not getattr(loaded, "__name__", "").startswith("marlmod"):
            continue
        for attr, value in list(vars(loaded).items()):
            if value is original:
                setattr(loaded, attr, wrapped)


def instrument(timer: PhaseTimer, pretrain_steps: int) -> None:
    """Time the phases; ``learn`` calls of ``pretrain_steps`` count as pretraining (pretrained
    model, control), all others as retraining (curve chunks: cells, scratch bar, attacks)."""
    import marlmod.clusterability as clusterability
    import marlmod.compiled_update as compiled_update
    import marlmod.experiment  # noqa: F401  (loads every module whose names get replaced)
    import marlmod.locate as locate
    import marlmod.report as report
    import marlmod.rollout as rollout
    import marlmod.seed_extras  # noqa: F401
    import marlmod.train as train

    def learn_phase(*args: Any, **kwargs: Any) -> str:
        steps = int(args[1] if len(args) > 1 else kwargs["steps"])
        timer.train_steps += steps
        return "pretrain" if steps == pretrain_steps else "retrain"

    def rollout_phase(*args: Any, **kwargs: Any) -> str:
        return "record" if (args[6] if len(args) > 6 else kwargs.get("record")) else "evaluate"

    replace_everywhere(train, "learn", lambda fn: timer.timed(learn_phase, fn))
    replace_everywhere(rollout, "rollout", lambda fn: timer.timed(rollout_phase, fn))
    for name in ("build_model", "load_model"):
        replace_everywhere(train, name, lambda fn: timer.timed("build/load", fn))
    replace_everywhere(train, "save_model", lambda fn: timer.timed("save", fn))
    replace_everywhere(locate, "score_units", lambda fn: timer.timed("locate", fn))
    replace_everywhere(
        clusterability, "clusterability", lambda fn: timer.timed("clusterability", fn)
    )
    replace_everywhere(report, "write_report", lambda fn: timer.timed("report", fn))

    def first_call_timed(make_step: Callable[[], Callable[..., Any]]) -> Callable[[], Any]:
        @functools.cache
        def cached() -> Callable[..., Any]:
            step = make_step()
            first = [True]

            def call(*args: Any, **kwargs: Any) -> Any:
                if not first[0]:
                    return step(*args, **kwargs)
                first[0] = False
                return timer.timed("compile", step)(*args, **kwargs)

            return call

        return cached

    replace_everywhere(compiled_update, "compiled_ppo_step", first_call_timed)


def table(timer: PhaseTimer, total: float, scale: dict[str, float] | None = None) -> str:
    """The phases by exclusive seconds; ``scale`` multiplies the time of the named phases
    (training at other budgets)."""
    seconds = dict(timer.seconds)
    for name, factor in (scale or {}).items():
        total += seconds.get(name, 0.0) * (factor - 1)
        seconds[name] = seconds.get(name, 0.0) * factor
    seconds["other"] = total - sum(seconds.values())
    lines = [f"{'phase':<16}{'seconds':>10}{'share':>8}{'calls':>8}", "-" * 42]
    for name, value in sorted(seconds.items(), key=lambda kv: -kv[1]):
        calls = "" if name in ("other", "imports") else str(timer.calls.get(name, ""))
        lines.append(f"{name:<16}{value:>10.1f}{value / total:>8.1%}{calls:>8}")
    lines.append(f"{'total':<16}{total:>10.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
    parser.add_argument("--out", type=Path, default=None, help="results root (default: a temp)")
    parser.add_argument(
        "--full-budgets", action="store_true", help="also scale training to the config's budgets"
    )
    args = parser.parse_args(argv)

    tic = time.perf_counter()
    from marlmod.config import load_scenario

    scenario = load_scenario(args.config, [*args.set, "workers=1"])
    timer = PhaseTimer()
    instrument(timer, scenario.pretrain_steps)
    from marlmod.experiment import run_scenario

    timer.seconds["imports"] = time.perf_counter() - tic
    with tempfile.TemporaryDirectory() as tmp:
        run_scenario(scenario, args.out or Path(tmp), workers=1)
    total = time.perf_counter() - STARTED
    print(f"{scenario.name}: {len(scenario.seeds)} seed(s), ppo.backend {scenario.ppo.backend}")
    print(f"trained {timer.train_steps:,} agent-steps")
    print(table(timer, total))
    if args.full_budgets:
        full = load_scenario(args.config)
        scale = {
            "pretrain": full.pretrain_steps / scenario.pretrain_steps,
            "retrain": full.retrain.steps / scenario.retrain.steps,
        }
        print(
            f"\nat the config's budgets (pretraining x{scale['pretrain']:.2f}, retraining "
            f"x{scale['retrain']:.2f}, per-step cost as measured; seeds and the rest as run):"
        )
        print(table(timer, total, scale))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
