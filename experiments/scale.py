"""Scale study (issue 16): does excision get easier or harder as policies grow?

Reads the finished runs of the ``configs/scale/`` family and writes, against the policy's size,
what the study asks — the trait learned, the cut by ``contrast`` against ``random`` at the same
size, relapse after cooperative retraining, capability kept, clusterability and training cost:

    for f in configs/scale/{width,depth,units16}_*.yaml; do marlmod run $f --out results/scale; done
    python experiments/scale.py     # -> results/scale/summary.{md,csv}, seeds.csv, scale.png

Families (from the run names): ``width_W`` (two hidden layers of W units, 25% of the second
pruned: the same *fraction*), ``units16_width_W`` (16 units at every width: the same *number*;
width_64 is that point at W = 64) and ``depth_D`` (D layers of 64, 25% of the last); runs that
are absent are left out. Per seed (``seeds.csv``, the source of the table):

- ``trait_learned``: the pretrained trait rate; ``control_trait``: the no-bonus control's;
- ``cut_contrast``, ``cut_random``: trait rate before minus right after pruning, and
  ``cut_advantage``: their difference, paired by seed (> 0: locating beat chance);
- ``relapse_contrast``: the trait rate after cooperative retraining of the contrast prune, and
  ``relapse_fraction``: that over the pretrained rate; ``relapse_finetune`` and
  ``relapse_random``: the same for plain fine-tuning (no prune) and the random prune, the
  baselines a relapse is read against;
- ``kept_right_after``: task return right after the contrast prune over before it;
  ``kept_vs_scratch``: after retraining, over a net trained from scratch on the same budget;
- ``clusterability_z``: the pretrained net's n-cut z-score against weight shuffles (< 0: more
  clusterable than chance);
- ``pretrain_seconds_per_100k``: wall seconds of pretraining per 100k agent-steps
  (``<seed>/pretrain/timing.csv``; runs made before it was written have none).

``summary.csv`` holds mean and 95% percentile-bootstrap interval per family, setting and metric;
``summary.md`` the same as one row per setting; ``scale.png`` each metric against width.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from marlmod.atomic import read_json, write_text, write_with  # noqa: E402
from marlmod.experiment import stored_scenario  # noqa: E402
from marlmod.stats import mean_ci  # noqa: E402
from marlmod.timing import read_timing  # noqa: E402

FAMILIES = {  # run name pattern -> family
    r"width_\d+": "same fraction",
    r"units16_width_\d+": "same number",
    r"depth_\d+": "depth",
}
METRICS = (  # column, what people read
    ("trait_learned", "trait learned"),
    ("control_trait", "control's trait"),
    ("cut_contrast", "cut by contrast"),
    ("cut_random", "cut by random"),
    ("cut_advantage", "contrast − random cut (paired)"),
    ("relapse_contrast", "trait after retraining (contrast)"),
    ("relapse_finetune", "trait after retraining (fine-tuning, no prune)"),
    ("relapse_random", "trait after retraining (random)"),
    ("relapse_fraction", "relapse fraction"),
    ("kept_right_after", "task return kept right after"),
    ("kept_vs_scratch", "capability vs scratch after retraining"),
    ("clusterability_z", "clusterability z"),
    ("pretrain_seconds_per_100k", "pretrain s / 100k steps"),
)
PANELS = (  # what scale.png plots against width
    ("trait_learned", "trait learned (pretrained rate)"),
    ("cut_advantage", "cut by contrast − by random"),
    ("relapse_contrast", "trait after retraining (contrast)"),
    ("relapse_finetune", "trait after retraining (fine-tuning, no prune)"),
    ("relapse_random", "trait after retraining (random)"),
    ("kept_vs_scratch", "capability kept vs scratch"),
    ("clusterability_z", "clusterability z-score"),
    ("pretrain_seconds_per_100k", "pretraining s per 100k steps"),
)


def family_of(name: str) -> str | None:
    return next((f for pattern, f in FAMILIES.items() if re.fullmatch(pattern, name)), None)


def seed_rows(run_dir: Path) -> list[dict]:
    """One row per seed of a finished run: its setting and every metric (module docstring)."""
    info = run_dir / "run.json"
    scenario = stored_scenario(read_json(info), info)
    cells = pd.read_csv(run_dir / "cells.csv")
    setting = {
        "family": family_of(run_dir.name),
        "setting": run_dir.name,
        "width": scenario.network.hidden[-1],
        "depth": len(scenario.network.hidden),
        "units_pruned": max(1, round(scenario.prune.fraction * scenario.network.hidden[-1])),
    }
    rows = []
    for seed, group in cells.groupby("seed"):
        by = group.set_index("strategy")
        contrast, random, finetune = by.loc["contrast"], by.loc["random"], by.loc["none"]
        seed_dir = run_dir / f"seed_{seed}"
        clusters = seed_dir / "clusterability.json"
        timing = read_timing(seed_dir / "pretrain")
        rows.append(
            {
                **setting,
                "seed": int(seed),
                "trait_learned": contrast.trait_rate_before,
                "control_trait": contrast.control_trait_rate,
                "cut_contrast": contrast.trait_rate_before - contrast.trait_rate_pruned,
                "cut_random": random.trait_rate_before - random.trait_rate_pruned,
                "cut_advantage": random.trait_rate_pruned - contrast.trait_rate_pruned,
                "relapse_contrast": contrast.trait_rate_retrained,
                "relapse_finetune": finetune.trait_rate_retrained,
                "relapse_random": random.trait_rate_retrained,
                "relapse_fraction": _ratio(
                    contrast.trait_rate_retrained, contrast.trait_rate_before
                ),
                "kept_right_after": _ratio(
                    contrast.task_return_pruned, contrast.task_return_before
                ),
                "kept_vs_scratch": contrast.kept_vs_scratch,
                "clusterability_z": (
                    read_json(clusters)["pretrain"]["z_score"] if clusters.is_file() else np.nan
                ),
                "pretrain_seconds_per_100k": (
                    1e5 * timing["seconds"] / timing["agent_steps"] if timing else np.nan
                ),
            }
        )
    return rows


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def summarise(seeds: pd.DataFrame) -> pd.DataFrame:
    """Tidy: one row per family × setting × metric, mean and 95% bootstrap interval."""
    rows = []
    keys = ["family", "setting", "width", "depth", "units_pruned"]
    for key, group in seeds.groupby(keys, sort=False):
        for column, _ in METRICS:
            est = mean_ci(group[column].to_numpy(dtype=float), method="bootstrap")
            rows.append(
                {
                    **dict(zip(keys, key, strict=True)),
                    "metric": column,
                    "n": est.n,
                    "mean": est.mean,
                    "low": est.low,
                    "high": est.high,
                }
            )
    return pd.DataFrame(rows)


def wide_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per setting, 'mean [low, high]' per metric (for summary.md)."""
    rows = []
    keys = ["family", "setting", "width", "depth", "units_pruned"]
    for key, group in summary.groupby(keys, sort=False):
        row = dict(zip(["family", "setting", "width", "depth", "units pruned"], key, strict=True))
        row["seeds"] = int(group.n.max())
        for column, header in METRICS:
            r = group.set_index("metric").loc[column]
            row[header] = _format(r["mean"], r["low"], r["high"])
        rows.append(row)
    return pd.DataFrame(rows)


def _format(mean: float, low: float, high: float) -> str:
    if np.isnan(mean):
        return "—"
    return f"{mean:.3g}" if np.isnan(low) else f"{mean:.3g} [{low:.3g}, {high:.3g}]"


def plot(summary: pd.DataFrame, target: Path) -> None:
    """Each metric against width, per family with a width axis, mean and 95% CI."""
    fig, axes = plt.subplots(2, 4, figsize=(17, 7), constrained_layout=True)
    widths = summary[summary.family.isin(["same fraction", "same number"])]
    for ax, (column, title) in zip(axes.flat, PANELS, strict=True):
        for family, group in widths[widths.metric == column].groupby("family"):
            if family == "same number":  # width 64 prunes 16 units too: it belongs to both
                anchor = widths[(widths.setting == "width_64") & (widths.metric == column)]
                group = pd.concat([group, anchor])
            group = group.sort_values("width")
            ax.errorbar(
                group.width,
                group["mean"],
                yerr=[group["mean"] - group.low, group.high - group["mean"]],
                marker="o",
                capsize=3,
                label=family,
            )
        ax.set_xscale("log", base=2)
        ax.set(title=title, xlabel="hidden width")
    axes.flat[0].legend()
    fig.suptitle("Scale: Gathering aggression, mean and 95% CI over seeds")
    write_with(target, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("results/scale"), help="run folder")
    args = parser.parse_args(argv)
    if not args.runs.is_dir():
        print(f"{args.runs}: no such run folder", file=sys.stderr)
        return 2
    run_dirs = sorted(
        d for d in args.runs.iterdir() if family_of(d.name) and (d / "cells.csv").is_file()
    )
    if not run_dirs:
        print(f"no finished scale runs in {args.runs}", file=sys.stderr)
        return 2
    seeds = pd.DataFrame([row for run in run_dirs for row in seed_rows(run)])
    summary = summarise(seeds)
    write_text(args.runs / "seeds.csv", seeds.to_csv(index=False))
    write_text(args.runs / "summary.csv", summary.to_csv(index=False))
    header = (
        "# Scale study\n\n"
        "Made by `python experiments/scale.py` from the runs of `configs/scale/` "
        f"({', '.join(d.name for d in run_dirs)}). Mean [95% percentile-bootstrap CI] over seeds; "
        "per-seed values in `seeds.csv`, the same numbers tidy in `summary.csv`; column "
        "meanings in `experiments/scale.py`.\n\n"
    )
    markdown = wide_table(summary).to_markdown(index=False)
    write_text(args.runs / "summary.md", header + markdown + "\n")
    plot(summary, args.runs / "scale.png")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
