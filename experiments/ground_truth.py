"""Ground-truth localisation (issue 16): each strategy's unit ranking scored against units known,
by construction, to carry the trait (``marlmod.ground_truth``), over seeds and widths.

Reads finished runs (their ``run.json`` and ``seed_*`` directories) and writes one tidy row per
run × seed × construction × strategy, and a table of means with 95% bootstrap intervals:

    python experiments/ground_truth.py results/scale/width_* results/scale/routed_width_*
    # -> results/ground_truth.csv (rows), results/ground_truth.md (table)

Every run gives the ``grafted`` construction (a module grafted into its control nets' last
hidden layer: ``--graft-fraction`` of its units, default the run's ``prune.fraction``); runs
pretrained with gradient routing at full label coverage also give ``routed``. Columns of the CSV:
``run``, ``construction``, ``depth`` (hidden layers), ``width`` (units of the scored layer),
``seed``, ``strategy``, ``auroc``, ``precision_at_k``, ``known`` (k), ``trait_rate_base`` and
``trait_rate_grafted`` (grafted rows: the trait before and after the graft), ``error`` (why a
strategy could not score, else empty). AUROC 0.5 is chance (``random`` sits there); precision at
k by chance is k / width.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from marlmod.atomic import read_json, write_text
from marlmod.errors import MarlmodError
from marlmod.experiment import stored_scenario
from marlmod.ground_truth import grafted_truth, routed_truth, score_strategies
from marlmod.pipeline import SeedRun
from marlmod.stats import mean_ci
from marlmod.train import limit_threads

COLUMNS = (
    "run",
    "construction",
    "depth",
    "width",
    "seed",
    "strategy",
    "auroc",
    "precision_at_k",
    "known",
    "trait_rate_base",
    "trait_rate_grafted",
    "error",
)


def run_rows(
    run_dir: Path, graft_fraction: float | None, episodes: int | None, skipped: list[str]
) -> list[dict]:
    """Every row one finished run gives (its seeds with a directory on disk); a construction the
    run's env cannot support (e.g. no state ever lacks the trait's opportunity) is skipped with
    its reason appended to ``skipped``, so one such run does not sink a table of many."""
    info = run_dir / "run.json"
    scenario = stored_scenario(read_json(info), info)
    network, cfg = scenario.network, scenario.pretrain
    routed = cfg.method == "routing" and cfg.label_coverage == 1.0 and not cfg.placebo
    fraction = graft_fraction or scenario.prune.fraction
    rows, graftable = [], True
    for seed_number in scenario.seeds:
        if not (run_dir / f"seed_{seed_number}").is_dir():
            continue
        seed = SeedRun(scenario, seed_number, run_dir)
        common = {"run": run_dir.name, "depth": len(network.hidden), "seed": seed_number}
        if routed:
            ev, known = routed_truth(seed)
            setting = {**common, "construction": "routed", "width": ev.units, "known": len(known)}
            rows += [{**setting, **row} for row in score_strategies(ev, known, seed_number)]
        width = network.hidden[-1]
        if not graftable:
            continue
        try:
            ev, known, rates = grafted_truth(seed, max(1, round(fraction * width)), episodes)
        except MarlmodError as error:  # a property of the env, the same for every seed
            skipped.append(f"{run_dir.name}: no grafted construction ({error})")
            graftable = False
            continue
        setting = {**common, "construction": "grafted", "width": width, "known": len(known)}
        rows += [{**setting, **rates, **row} for row in score_strategies(ev, known, seed_number)]
    return rows


def summary_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean [95% bootstrap CI] of AUROC and precision at k per run, setting and strategy. Per
    run: two runs can share a control net (the grafted construction's base), and pooling them
    would count the same seed twice."""
    out = []
    keys = ["run", "construction", "depth", "width", "strategy"]
    for (run, construction, depth, width, strategy), group in rows.groupby(keys, sort=True):
        out.append(
            {
                "run": run,
                "construction": construction,
                "depth": depth,
                "width": width,
                "strategy": strategy,
                "seeds": int(group.auroc.notna().sum()),
                "AUROC": str(mean_ci(group.auroc, method="bootstrap")),
                "precision at k": str(mean_ci(group.precision_at_k, method="bootstrap")),
                "k / width (chance)": f"{group.known.iloc[0] / width:.3f}",
            }
        )
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run directories")
    parser.add_argument("--out", type=Path, default=Path("results"), help="folder of the table")
    parser.add_argument("--graft-fraction", type=float, default=None)
    parser.add_argument("--episodes", type=int, default=None, help="default: record_episodes")
    args = parser.parse_args(argv)
    limit_threads()
    skipped: list[str] = []
    rows = [
        row
        for run in args.runs
        for row in run_rows(run, args.graft_fraction, args.episodes, skipped)
    ]
    for note in skipped:
        print(note, file=sys.stderr)
    if not rows:
        print("no seed directory or applicable construction in the runs given", file=sys.stderr)
        return 2
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "ground_truth.csv", table.to_csv(index=False))
    summary = summary_table(table)
    header = (
        "# Ground-truth localisation\n\n"
        f"Made by `python experiments/ground_truth.py {' '.join(str(r) for r in args.runs)}`. "
        "AUROC: P(a unit known to carry the trait outranks another unit), 0.5 = chance; "
        "precision at k: share of known units among a strategy's top k (k = known units). "
        "Mean [95% bootstrap CI] over seeds; rows per seed in `ground_truth.csv`.\n\n"
        + "".join(f"Skipped: {note}\n\n" for note in skipped)
    )
    write_text(args.out / "ground_truth.md", header + summary.to_markdown(index=False) + "\n")
    print(summary.to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
