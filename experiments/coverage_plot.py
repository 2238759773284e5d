"""Gradient routing vs label coverage (issue 9): the trait rate learned, right after pruning and
after cooperative retraining, and the task return right after pruning, for the ``routed`` prune,
post-hoc ``contrast`` and ``random`` units on the routed agents — one row per way of routing (by
the action, by the advantage's sign).

    python experiments/coverage_plot.py   # reads results/aggression_routing*/cells.csv
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from marlmod.stats import mean_ci  # noqa: E402

# routing family -> {label coverage: results directory}
RUNS = {
    "routed by the action": {
        1.0: "aggression_routing",
        0.3: "aggression_routing_cov30",
        0.1: "aggression_routing_cov10",
    },
    "routed by the advantage's sign": {
        1.0: "aggression_routing_adv",
        0.3: "aggression_routing_adv_cov30",
        0.1: "aggression_routing_adv_cov10",
    },
}
COLUMNS = {
    "trait_rate_before": "learned (before pruning)",
    "trait_rate_pruned": "right after pruning",
    "trait_rate_retrained": "after retraining",
    "task_return_pruned": "task return right after pruning",
}
STRATEGIES = ("routed", "contrast", "random")
PLAIN = "aggression"  # the same scenario trained without routing: the cost of localising


def main(results: Path = Path("results")) -> None:
    fig, axes = plt.subplots(
        len(RUNS), len(COLUMNS), figsize=(17, 7), sharex=True, constrained_layout=True
    )
    for family_axes, (family, runs) in zip(axes, RUNS.items(), strict=True):
        present = {c: n for c, n in runs.items() if (results / n / "cells.csv").is_file()}
        cells = {c: pd.read_csv(results / n / "cells.csv") for c, n in present.items()}
        for ax, (column, title) in zip(family_axes, COLUMNS.items(), strict=True):
            for strategy in STRATEGIES if column != "trait_rate_before" else ("routed",):
                xs = sorted(cells)
                stats = [
                    mean_ci(
                        cells[c][cells[c].strategy == strategy][column].to_numpy(),
                        method="bootstrap",
                    )
                    for c in xs
                ]
                seeds = [s.n for s in stats]
                ax.errorbar(
                    xs,
                    [s.mean for s in stats],
                    yerr=[[s.mean - s.low for s in stats], [s.high - s.mean for s in stats]],
                    marker="o",
                    capsize=3,
                    label=strategy if column != "trait_rate_before" else f"seeds {seeds}",
                )
            if column == "trait_rate_before" and (results / PLAIN / "cells.csv").is_file():
                plain = pd.read_csv(results / PLAIN / "cells.csv")
                level = plain[plain.strategy == "none"][column].mean()
                ax.axhline(level, color="grey", linestyle="--", label="plain training")
            ylabel = "task return" if column.startswith("task") else "attack rate"
            ax.set(xscale="log", ylabel=ylabel, title=f"{family}:\n{title}")
            ax.title.set_fontsize(9)
            ax.legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("label coverage (fraction of attack steps labelled)")
    target = results / "routing_coverage.png"
    fig.savefig(target, dpi=110)
    print(target)


if __name__ == "__main__":
    main()
