"""Gradient routing vs label coverage (issue 9): trait rate right after pruning and after
cooperative retraining, for the ``routed`` prune and post-hoc ``contrast`` on the routed agents.

    python experiments/coverage_plot.py   # reads results/aggression_routing*/cells.csv
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from marlmod.stats import mean_ci  # noqa: E402

RUNS = {1.0: "aggression_routing", 0.3: "aggression_routing_cov30", 0.1: "aggression_routing_cov10"}


def main(results: Path = Path("results")) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for strategy in ("routed", "contrast", "random"):
        for ax, column in zip(axes, ("trait_rate_pruned", "trait_rate_retrained"), strict=True):
            points = []
            for coverage, name in sorted(RUNS.items()):
                cells = pd.read_csv(results / name / "cells.csv")
                points.append((coverage, mean_ci(cells[cells.strategy == strategy][column])))
            xs = [c for c, _ in points]
            ax.errorbar(
                xs,
                [e.mean for _, e in points],
                marker="o",
                capsize=3,
                label=strategy,
                yerr=[[e.mean - e.low for _, e in points], [e.high - e.mean for _, e in points]],
            )
    for ax, title in zip(
        axes, ("right after pruning", "after cooperative retraining"), strict=True
    ):
        ax.set(
            xscale="log",
            xlabel="label coverage (fraction of trait steps routed)",
            ylabel="attack rate",
            title=f"Gradient-routed agents: {title}",
        )
    axes[0].legend()
    fig.savefig(results / "routing_coverage.png", dpi=110)
    print(results / "routing_coverage.png")


if __name__ == "__main__":
    main()
