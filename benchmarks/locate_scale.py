"""Locating at scale: time and peak memory of scoring units on a million recorded rows.

Run (from the repository root, venv active)::

    python benchmarks/locate_scale.py                       # 1M rows × 64 units, contrast
    python benchmarks/locate_scale.py --quick               # 20k rows, for CI
    python benchmarks/locate_scale.py --strategies contrast,random --rows 2000000

The evidence is synthetic but shaped like a recording: float32 ReLU activations ``[rows, units]``
(what ``marlmod.record`` stores), a trait label on ``--trait-rate`` of the rows with a few units
shifted on trait rows, and opportunity labels (trait rows and half of the others). For each
strategy it prints the wall time of ``score_units(strategy, Evidence(...))`` and of
``top_units``, and the peak memory *the scoring allocates* (``tracemalloc``, which sees NumPy's
buffers; the input arrays and the scorer's module imports are excluded), next to the input's own
size and the process's peak RSS.

Measured on the 2-core development machine (NumPy 2.4), 1M rows × 64 units, input 245 MiB:
``contrast`` 0.6 s with a scoring peak of 25 MiB (the chunk buffer of
``marlmod.strategies.moments`` and its row masks; 2.3 s and 928 MiB before chunking),
``opportunity`` 24 MiB, ``activation_magnitude`` 16 MiB, ``selective`` 246 MiB (its floor takes
|acts| once, whole, to keep its float32 mean bit for bit).
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np

from marlmod.locate import score_units, top_units
from marlmod.strategies.evidence import Evidence
from marlmod.strategies.registry import STRATEGIES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--trait-rate", type=float, default=0.1)
    parser.add_argument("--strategies", default="contrast", help="comma-separated")
    parser.add_argument("--fraction", type=float, default=0.25, help="top_units fraction")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="20k rows for CI")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = 20_000
    return args


def synthetic_evidence(rows: int, units: int, trait_rate: float, seed: int) -> Evidence:
    """ReLU-like float32 activations with a trait signal in the first eighth of the units."""
    rng = np.random.default_rng(seed)
    trait = rng.random(rows) < trait_rate
    acts = rng.standard_normal((rows, units), dtype=np.float32)
    acts[:, : max(1, units // 8)] += trait[:, None].astype(np.float32)
    np.maximum(acts, 0.0, out=acts)
    opportunity = trait | (rng.random(rows) < 0.5)  # the trait was possible on these rows
    return Evidence(acts=acts, trait=trait, opportunity=opportunity)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    ev = synthetic_evidence(args.rows, args.units, args.trait_rate, args.seed)
    input_mib = (ev.acts.nbytes + ev.trait.nbytes) / 2**20
    print(
        f"locating: {args.rows:,} rows × {args.units} units (input {input_mib:.0f} MiB, "
        f"trait on {ev.trait.mean():.0%} of rows)"
    )
    strategies = args.strategies.split(",")
    width = max(12, *(len(s) + 2 for s in strategies))
    print(f"{'strategy':<{width}}{'score s':>9}{'top_units s':>13}{'scoring peak MiB':>18}")
    for strategy in strategies:
        STRATEGIES[strategy].load()  # import the scorer's module before timing and tracing
        tracemalloc.start()
        tic = time.perf_counter()
        scores = score_units(strategy, ev, np.random.default_rng(args.seed))
        score_s = time.perf_counter() - tic
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        tic = time.perf_counter()
        top_units(scores, args.fraction)
        top_s = time.perf_counter() - tic
        print(f"{strategy:<{width}}{score_s:>9.2f}{top_s:>13.5f}{peak / 2**20:>18.0f}")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS {peak_rss:.0f} MiB (input arrays and imports included)")


if __name__ == "__main__":
    main()
