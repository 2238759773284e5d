"""Train-to-localise vs post-hoc locating, side by side (issue 9).

Reads the committed per-cell results of the plain, gradient-routed and modular runs of both
scenarios and writes one table — trait rate before/after pruning and after cooperative
retraining, relapse AUC, capability kept — plus the relapse curves of the same rows:

    python experiments/train_to_localise.py   # -> results/train_to_localise.{md,csv,png}

Every row prunes 16 of the 64 units of ``policy_net.3`` (matched size). "Post-hoc best" is the
unit strategy with the lowest mean trait rate after retraining on plainly trained nets; it is
picked on the same seeds it is scored on, so it flatters post-hoc locating. Means are over seeds
with 95% percentile-bootstrap intervals (``marlmod.stats.mean_ci``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from marlmod.stats import mean_ci  # noqa: E402

POST_HOC_BEST = "post-hoc best"


@dataclass(frozen=True)
class Row:
    """One line of the table: a strategy's cells in one run."""

    scenario: str
    training: str
    run: str
    strategy: str  # POST_HOC_BEST: chosen from the run's unit strategies


ROWS = (
    Row("aggression", "plain", "aggression", POST_HOC_BEST),
    Row("aggression", "plain", "aggression", "none"),
    Row("aggression", "routing (action)", "aggression_routing", "routed"),
    Row("aggression", "routing (action)", "aggression_routing", "contrast"),
    Row("aggression", "routing (action)", "aggression_routing", "none"),
    Row("aggression", "routing (advantage)", "aggression_routing_adv", "routed"),
    Row("aggression", "routing (advantage)", "aggression_routing_adv", "contrast"),
    Row("aggression", "routing (advantage)", "aggression_routing_adv", "none"),
    Row("aggression", "routing (advantage, 30% labels)", "aggression_routing_adv_cov30", "routed"),
    Row(
        "aggression", "routing (advantage, 30% labels)", "aggression_routing_adv_cov30", "contrast"
    ),
    Row("aggression", "routing (advantage, 30% labels)", "aggression_routing_adv_cov30", "none"),
    Row("aggression", "modular", "aggression_modular", "cluster"),
    Row("aggression", "modular", "aggression_modular", "contrast"),
    Row("aggression", "modular", "aggression_modular", "none"),
    Row("deception", "plain", "deception", POST_HOC_BEST),
    Row("deception", "plain", "deception", "none"),
    Row("deception", "routing (action)", "deception_routing", "routed"),
    Row("deception", "routing (action)", "deception_routing", "contrast"),
    Row("deception", "routing (action)", "deception_routing", "none"),
    Row("deception", "modular", "deception_modular", "cluster"),
    Row("deception", "modular", "deception_modular", "contrast"),
    Row("deception", "modular", "deception_modular", "none"),
)

# (column in cells.csv, header); ratios are computed below
METRICS = (
    ("trait_rate_before", "trait before pruning"),
    ("task_return_before", "task return before pruning"),
    ("trait_rate_pruned", "trait pruned"),
    ("trait_rate_retrained", "trait retrained"),
    ("relapse_auc", "relapse AUC"),
    ("kept_right_after", "capability kept right after pruning"),
    ("kept_vs_unpruned", "capability kept vs fine-tune"),
    ("kept_vs_scratch", "capability kept vs scratch"),
)


def unit_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """Cells that prune hidden units (not single weights, not the action head)."""
    granularity = cells.get("granularity", pd.Series("units", index=cells.index))
    head = cells.get("prunes_action_head", pd.Series(False, index=cells.index))
    return cells[(granularity == "units") & ~head.astype(bool) & (cells.units_pruned > 0)]


def post_hoc_best(cells: pd.DataFrame) -> str:
    """The unit strategy with the lowest mean trait rate after retraining."""
    candidates = unit_cells(cells)
    candidates = candidates[~candidates.strategy.str.contains("~")]  # no released variants
    return candidates.groupby("strategy").trait_rate_retrained.mean().idxmin()


def row_cells(row: Row, results: Path) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """(strategy actually used, its cells, its relapse curves)."""
    cells = pd.read_csv(results / row.run / "cells.csv")
    curves = pd.read_csv(results / row.run / "curves.csv")
    strategy = post_hoc_best(cells) if row.strategy == POST_HOC_BEST else row.strategy
    picked = cells[cells.strategy == strategy].copy()
    if picked.empty:
        raise SystemExit(f"{results / row.run}: no cells for strategy {strategy!r}")
    picked["kept_right_after"] = picked.task_return_pruned / picked.task_return_before
    return strategy, picked, curves[curves.strategy == strategy]


def build_table(results: Path) -> tuple[pd.DataFrame, dict[Row, pd.DataFrame]]:
    lines, curves = [], {}
    for row in ROWS:
        if not (results / row.run / "cells.csv").is_file():
            print(f"skipping {row.run}: no results yet")
            continue
        strategy, cells, row_curves = row_cells(row, results)
        label = f"{strategy} (best)" if row.strategy == POST_HOC_BEST else strategy
        line = {
            "scenario": row.scenario,
            "training": row.training,
            "strategy": label,
            "seeds": cells.seed.nunique(),
            "units pruned": int(cells.units_pruned.max()),
        }
        for column, header in METRICS:
            line[header] = mean_ci(cells[column].to_numpy(), method="bootstrap")
        lines.append(line)
        curves[row] = row_curves
    return pd.DataFrame(lines), curves


def formatted(table: pd.DataFrame) -> pd.DataFrame:
    def cell(value: object) -> object:
        if hasattr(value, "mean"):
            return f"{value.mean:.3g} [{value.low:.3g}, {value.high:.3g}]"
        return value

    return table.map(cell)


def flat(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, low and high as separate CSV columns."""
    out = table[["scenario", "training", "strategy", "seeds", "units pruned"]].copy()
    for _, header in METRICS:
        for part in ("mean", "low", "high"):
            out[f"{header} {part}"] = [getattr(v, part) for v in table[header]]
    return out


def colour(strategy: str) -> str:
    """The module prune red, post-hoc locating blue, fine-tuning grey, in every panel."""
    if strategy in ("routed", "cluster"):
        return "tab:red"
    return "tab:grey" if strategy == "none" else "tab:blue"


def plot_relapse(curves: dict[Row, pd.DataFrame], target: Path) -> None:
    """One panel per (scenario, training): the trait rate of each row over retraining."""
    panels = list(dict.fromkeys((row.scenario, row.training) for row in curves))
    scenarios = list(dict.fromkeys(scenario for scenario, _ in panels))
    columns = max(sum(s == scenario for s, _ in panels) for scenario in scenarios)
    fig, axes = plt.subplots(
        len(scenarios),
        columns,
        figsize=(3.6 * columns, 3.2 * len(scenarios)),
        sharex=True,
        sharey="row",
        squeeze=False,
    )
    for ax in axes.flat:
        ax.set_visible(False)
    for (scenario, training), ax in zip(panels, _panel_axes(panels, scenarios, axes), strict=True):
        ax.set_visible(True)
        for row, data in curves.items():
            if (row.scenario, row.training) != (scenario, training) or data.empty:
                continue
            steps = sorted(data.steps.unique())
            stats = [
                mean_ci(group.trait_rate.to_numpy(), method="bootstrap")
                for _, group in data.groupby("steps")
            ]
            name = data.strategy.iloc[0]
            ax.plot(steps, [s.mean for s in stats], marker="o", color=colour(name), label=name)
            ax.fill_between(
                steps,
                [s.low for s in stats],
                [s.high for s in stats],
                alpha=0.15,
                color=colour(name),
            )
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_title(f"{scenario}: {training}", fontsize=9)
        ax.legend(fontsize=7)
        ax.set_xlabel("cooperative agent-steps", fontsize=8)
        ax.set_ylabel("trait rate (95% CI)", fontsize=8)
    fig.tight_layout()
    fig.savefig(target, dpi=110)


def _panel_axes(panels: list[tuple[str, str]], scenarios: list[str], axes) -> list:
    """Each scenario's panels left to right on its own row."""
    seen: dict[str, int] = {}
    out = []
    for scenario, _ in panels:
        column = seen.get(scenario, 0)
        seen[scenario] = column + 1
        out.append(axes[scenarios.index(scenario), column])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args()
    table, curves = build_table(args.results)
    stem = args.results / "train_to_localise"
    stem.with_suffix(".md").write_text(formatted(table).to_markdown(index=False) + "\n")
    flat(table).to_csv(stem.with_suffix(".csv"), index=False)
    plot_relapse(curves, stem.with_suffix(".png"))
    print(formatted(table).to_markdown(index=False))
    print(f"wrote {stem}.md, .csv, .png")


if __name__ == "__main__":
    main()
