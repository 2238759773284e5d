"""Plots of a finished run (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import EngFormatter  # noqa: E402

from marlmod.atomic import write_with  # noqa: E402
from marlmod.cells import NO_PRUNE  # noqa: E402
from marlmod.stats import mean_ci  # noqa: E402

# Drawn in grey in every panel of a faceted plot, where the run has them: what every strategy
# must beat. Values: (legend text, line style).
REFERENCES = {NO_PRUNE: ("none: fine-tuning only", "--"), "random": ("random units", ":")}
STRATEGY_COLOUR = "tab:red"
METRICS = (
    ("trait_rate", "trait per agent-step"),
    ("task_return", "task return"),
)


def plot_relapse(curves: pd.DataFrame, target: Path) -> None:
    """Trait rate and task return over cooperative retraining: one panel per strategy (mean and
    95% CI band over seeds), fine-tuning alone and random pruning in grey in each."""
    _facets(
        curves,
        "steps",
        "Relapse during cooperative retraining: trait rate (top) and capability (bottom)",
        "retraining agent-steps",
        target,
    )


def plot_sweep(sweeps: pd.DataFrame, target: Path) -> None:
    """Trait rate and task return right after pruning, against the fraction pruned: one panel
    per strategy, random pruning in grey in each."""
    _facets(
        sweeps,
        "fraction",
        "Right after pruning, by fraction of the layer pruned: trait rate (top) and capability "
        "(bottom)",
        "fraction of the layer's units pruned",
        target,
    )


def _facets(frame: pd.DataFrame, x: str, title: str, xlabel: str, target: Path) -> None:
    """Small multiples that stay legible at any number of strategies: per strategy a trait
    panel over a capability panel, axes shared across panels, the references in grey in each,
    the legend above the panels."""
    strategies = sorted(frame.strategy.unique())
    references = [r for r in REFERENCES if r in strategies]
    panels = [s for s in strategies if s not in REFERENCES] or references
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    width = max(3.3 * cols, 8.0)  # room for the title and the legend above one panel
    fig = plt.figure(figsize=(width, 3.0 * rows + 1.0), layout="constrained")
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=[1.5, 1.0] * rows)
    shared: dict[str, plt.Axes] = {}
    for i, strategy in enumerate(panels):
        row, col = divmod(i, cols)
        axes = []
        for offset, (column, ylabel) in enumerate(METRICS):
            ax = fig.add_subplot(
                grid[2 * row + offset, col], sharex=shared.get("x"), sharey=shared.get(column)
            )
            shared.setdefault("x", ax)
            shared.setdefault(column, ax)
            for reference in references:
                if reference != strategy:
                    style = REFERENCES[reference][1]
                    _line_band(ax, frame[frame.strategy == reference], x, column, "grey", style)
            _line_band(ax, frame[frame.strategy == strategy], x, column, STRATEGY_COLOUR, "-")
            ax.tick_params(labelsize=7)
            if col == 0:
                ax.set_ylabel(ylabel, fontsize=8)
            axes.append(ax)
        axes[0].set_title(strategy, fontsize=9)
        axes[0].tick_params(labelbottom=False)
        axes[1].set_xlabel(xlabel, fontsize=7)
    handles = [Line2D([], [], color=STRATEGY_COLOUR, marker="o", label="the panel's strategy")]
    handles += [
        Line2D([], [], color="grey", linestyle=REFERENCES[r][1], label=REFERENCES[r][0])
        for r in references
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    if x == "steps":  # agent-steps in thousands read better as 50k than 50000
        shared["x"].xaxis.set_major_formatter(EngFormatter(sep=""))
    fig.suptitle(title, fontsize=10)
    write_with(target, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def _line_band(
    ax: plt.Axes, group: pd.DataFrame, x: str, column: str, color: str, style: str
) -> None:
    """Mean over seeds and its 95% CI band (none at one seed) against ``x``."""
    if group.empty:
        return
    stats = group.groupby(x)[column].apply(lambda v: mean_ci(v.values))
    xs = stats.index.values
    ax.plot(xs, [e.mean for e in stats], color=color, linestyle=style, marker="o", markersize=3)
    lows = [e.low if e.n > 1 else e.mean for e in stats]
    highs = [e.high if e.n > 1 else e.mean for e in stats]
    ax.fill_between(xs, lows, highs, color=color, alpha=0.15, linewidth=0)


def plot_pareto(cells: pd.DataFrame, target: Path) -> None:
    """Trait removed and capability kept after retraining, per strategy (mean and 95% CI over
    seeds), side by side with one row per strategy, sorted by trait removed: legible at any
    number of strategies, and the trade-off reads across each row."""
    capability, kept_label = _capability(cells)
    rows = []
    for strategy, group in cells.groupby("strategy"):
        rows.append((strategy, mean_ci(1 - group.relapse_fraction), mean_ci(group[capability])))
    rows.sort(key=lambda row: row[1].mean if np.isfinite(row[1].mean) else -np.inf)
    fig, axes = plt.subplots(
        1, 2, sharey=True, figsize=(9, 1.4 + 0.3 * len(rows)), layout="constrained"
    )
    for y, (strategy, removed, kept) in enumerate(rows):
        color = "grey" if strategy in REFERENCES else STRATEGY_COLOUR
        for ax, estimate in zip(axes, (removed, kept), strict=True):
            ax.errorbar(
                estimate.mean, y, xerr=_half_widths(estimate), marker="o", color=color, capsize=3
            )
    axes[0].axvline(0, color="k", linewidth=0.6, linestyle=":")
    axes[1].axvline(1, color="k", linewidth=0.6, linestyle=":")
    axes[0].set_yticks(range(len(rows)), [row[0] for row in rows], fontsize=8)
    axes[0].set_xlabel("trait removed after retraining\n(1 − retrained / pretrained rate)")
    axes[1].set_xlabel(kept_label)
    fig.suptitle(
        "Trait removed vs capability kept after cooperative retraining (grey: references)",
        fontsize=10,
    )
    write_with(target, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def _capability(cells: pd.DataFrame) -> tuple[str, str]:
    """Capability measured from the random policy's return where the run has it (any sign of
    return), else the plain ratio to the from-scratch model's (runs made before)."""
    if "capability_vs_scratch" in cells and cells.capability_vs_scratch.notna().any():
        return "capability_vs_scratch", "capability vs scratch\n(0 = random policy, 1 = scratch)"
    return "kept_vs_scratch", "capability kept\n(task return ÷ from-scratch model's)"


def _half_widths(estimate) -> list[list[float]] | None:
    if estimate.n < 2 or not np.isfinite(estimate.low):
        return None
    return [[estimate.mean - estimate.low], [estimate.high - estimate.mean]]


def plot_clusterability(clusters: pd.DataFrame, target: Path) -> None:
    """Each seed's n-cut (marker) against the n-cuts of its weight-shuffled copies (dots)."""
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    labels = []
    for i, row in enumerate(clusters.sort_values(["network", "seed"]).itertuples()):
        ax.scatter(
            [i] * len(row.shuffled_ncuts),
            row.shuffled_ncuts,
            s=8,
            color="grey",
            alpha=0.5,
            label="shuffled" if i == 0 else None,
        )
        ax.scatter(
            [i],
            [row.ncut],
            s=60,
            marker="D",
            color="C3" if row.network == "pretrain" else "C0",
            label=None,
        )
        labels.append(f"{row.network}\nseed {row.seed}")
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set(
        ylabel="normalised cut (lower = more modular)",
        title="Clusterability of policy nets vs within-layer weight shuffles",
    )
    ax.legend()
    write_with(target, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def plot_layer_contrasts(contrasts: dict[int, dict[str, list[float]]], target: Path) -> None:
    """Heatmap per layer: seeds × units (sorted by score within each seed), signed contrast.

    A few bright cells and a dark rest = the trait is carried by few units (prunable);
    an even smear = it is spread out.
    """
    layers = sorted({layer for per_seed in contrasts.values() for layer in per_seed})
    fig, axes = plt.subplots(
        len(layers),
        1,
        figsize=(8, 1.2 + 0.35 * len(contrasts) * len(layers)),
        constrained_layout=True,
        squeeze=False,
    )
    for ax, layer in zip(axes[:, 0], layers, strict=True):
        seeds = sorted(contrasts)
        grid = [sorted(contrasts[s][layer], reverse=True) for s in seeds]
        bound = max(1e-9, max(abs(v) for row in grid for v in row))
        image = ax.imshow(grid, aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound)
        ax.set(
            title=f"{layer}: signed contrast (trait vs not), units sorted per seed",
            ylabel="seed",
            xlabel="unit rank",
        )
        ax.set_yticks(range(len(seeds)), [str(s) for s in seeds])
        fig.colorbar(image, ax=ax)
    write_with(target, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def plot_relearn(curves: pd.DataFrame, attacks: pd.DataFrame, target: Path) -> None:
    """Relearning attacks as small multiples: one panel per attacked model and start, its trait
    rate over the attack (each seed's fastest learning rate; mean and 95% CI band), with the
    control model's attack in every panel as the reference and the half-pretrained threshold."""
    from marlmod.relearn import CONTROL
    from marlmod.removal_report import worst_case

    fastest = worst_case(attacks)[["seed", "target", "start", "masks", "fastest_lr"]]
    chosen = curves.merge(
        fastest.rename(columns={"fastest_lr": "learning_rate"}),
        on=["seed", "target", "start", "masks", "learning_rate"],
    )
    control = chosen[chosen.target == CONTROL]
    panels = [
        key
        for key in chosen[["target", "start", "masks"]].drop_duplicates().itertuples(index=False)
        if key.target != CONTROL
    ]
    cols = min(4, max(1, len(panels)))
    rows = max(1, -(-len(panels) // cols))
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(3.4 * cols, 2.6 * rows + 0.6),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    threshold = attacks.half_threshold.mean()
    for ax, key in zip(axes.flat, panels, strict=False):
        group = chosen[
            (chosen.target == key.target)
            & (chosen.start == key.start)
            & (chosen.masks == key.masks)
        ]
        _mean_band(ax, control, "grey", "control model", linestyle="--")
        _mean_band(ax, group, "tab:red", key.target)
        first = group.steps[group.steps > 0].min() if (group.steps > 0).any() else 1
        ax.set_xscale("symlog", linthresh=first)  # evaluations dense early (geometric spacing)
        ax.axhline(threshold, color="k", linewidth=0.6, linestyle=":")
        masks = "" if key.masks == "held" else ", masks released"
        ax.set_title(f"{key.target}\n(from {key.start}{masks})", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    fig.supxlabel("attack agent-steps (bonus back on)", fontsize=9)
    fig.supylabel("trait occurrences per agent-step", fontsize=9)
    fig.suptitle(
        "Relearning attacks (red) vs the never-paid control (grey dashed); dotted: half the "
        "pretrained rate",
        fontsize=9,
    )
    write_with(target, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def _mean_band(ax: plt.Axes, group: pd.DataFrame, color: str, label: str, **style) -> None:
    stats = group.groupby("steps").trait_rate.apply(lambda v: mean_ci(v.values))
    if stats.empty:
        return
    steps = stats.index.values
    ax.plot(steps, [e.mean for e in stats], color=color, label=label, **style)
    lows = [e.low if e.n > 1 else e.mean for e in stats]
    highs = [e.high if e.n > 1 else e.mean for e in stats]
    ax.fill_between(steps, lows, highs, color=color, alpha=0.2)
