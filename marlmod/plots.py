"""Plots of a finished run (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from marlmod.atomic import write_with  # noqa: E402
from marlmod.stats import mean_ci  # noqa: E402

# Up to 20 strategies stay distinguishable (the default cycle repeats after 10).
matplotlib.rcParams["axes.prop_cycle"] = matplotlib.cycler(color=plt.get_cmap("tab20").colors)


def plot_relapse(curves: pd.DataFrame, target: Path) -> None:
    """Trait rate and task return over cooperative retraining, mean and 95% CI band per strategy."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for strategy, group in curves.groupby("strategy"):
        for ax, column in zip(axes, ("trait_rate", "task_return"), strict=False):
            stats = group.groupby("steps")[column].apply(lambda v: mean_ci(v.values))
            steps = stats.index.values
            means = [e.mean for e in stats]
            ax.plot(steps, means, marker="o", label=strategy)
            lows = [e.low if e.n > 1 else e.mean for e in stats]
            highs = [e.high if e.n > 1 else e.mean for e in stats]
            ax.fill_between(steps, lows, highs, alpha=0.2)
    axes[0].set(
        title="Relapse: trait rate during cooperative retraining",
        xlabel="retraining agent-steps",
        ylabel="trait occurrences per agent-step",
    )
    axes[1].set(
        title="Capability during cooperative retraining",
        xlabel="retraining agent-steps",
        ylabel="task return per agent per episode",
    )
    axes[0].legend()
    write_with(target, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def plot_pareto(cells: pd.DataFrame, target: Path) -> None:
    """Trait removed vs capability kept after retraining, per strategy (mean ± 95% CI)."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5), constrained_layout=True)
    for strategy, group in cells.groupby("strategy"):
        removed = mean_ci(1 - group.relapse_fraction)
        kept = mean_ci(group.kept_vs_scratch)
        ax.errorbar(
            removed.mean,
            kept.mean,
            label=strategy,
            marker="o",
            capsize=3,
            xerr=_half_widths(removed),
            yerr=_half_widths(kept),
        )
    ax.set(
        xlabel="trait removed after retraining (1 − retrained / pretrained rate)",
        ylabel="capability kept (task return ÷ from-scratch model's)",
        title="Trait removed vs capability kept",
    )
    ax.legend()
    write_with(target, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def _half_widths(estimate) -> list[list[float]] | None:
    if estimate.n < 2:
        return None
    return [[estimate.mean - estimate.low], [estimate.high - estimate.mean]]


def plot_sweep(sweeps: pd.DataFrame, target: Path) -> None:
    """Trait rate and task return right after pruning, against the fraction pruned."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for strategy, group in sweeps.groupby("strategy"):
        for ax, column in zip(axes, ("trait_rate", "task_return"), strict=True):
            stats = group.groupby("fraction")[column].apply(lambda v: mean_ci(v.values))
            means = [e.mean for e in stats]
            ax.errorbar(
                stats.index.values, means, marker="o", capsize=2, label=strategy, yerr=_band(stats)
            )
    axes[0].set(
        title="Trait left right after pruning",
        xlabel="fraction of layer pruned",
        ylabel="trait occurrences per agent-step",
    )
    axes[1].set(
        title="Capability right after pruning",
        xlabel="fraction of layer pruned",
        ylabel="task return per agent per episode",
    )
    axes[0].legend(fontsize=7)
    write_with(target, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def _band(stats: pd.Series) -> list[list[float]] | None:
    if any(e.n < 2 for e in stats):
        return None
    return [[e.mean - e.low for e in stats], [e.high - e.mean for e in stats]]


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
        rows, cols, figsize=(3.4 * cols, 2.6 * rows), sharex=True, sharey=True, squeeze=False
    )
    threshold = attacks.half_threshold.mean()
    for ax, key in zip(axes.flat, panels, strict=False):
        group = chosen[
            (chosen.target == key.target)
            & (chosen.start == key.start)
            & (chosen.masks == key.masks)
        ]
        _mean_band(ax, control, "grey", "control model", linestyle="--")
        _mean_band(ax, group, "C3", key.target)
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
    fig.tight_layout()
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
