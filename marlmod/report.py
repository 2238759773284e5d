"""Results tables for people: ``summary.md``/``.html``/``.csv`` and the plots, from ``cells.csv``.

``marlmod.cells_table`` builds ``cells.csv`` (its columns are documented there) and the curves;
``marlmod.removal_report`` adds the sections on removal vs suppression; this module summarises
them over seeds (mean, 95% intervals, IQM, paired comparisons with random pruning) and writes
every file of a run's report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from marlmod.atomic import read_json, write_text
from marlmod.cells import ACTION_HEAD_MARK, NO_PRUNE, Cell
from marlmod.cells_table import load_cells
from marlmod.failures import count_failed_seeds, failures_table, load_failures, with_failures
from marlmod.removal_report import load_relearn, removal_tables
from marlmod.report_checks import plain, reader_warnings
from marlmod.stats import (
    CIMethod,
    iqm,
    mean_ci,
    probability_of_improvement,
)

SUMMARY_COLUMNS = {
    "trait_rate_before": "trait before",
    "trait_rate_pruned": "trait pruned",
    "trait_rate_retrained": "trait retrained",
    "trait_cut": "trait cut by pruning",
    "relapse_auc": "relapse AUC",
    "task_return_pruned": "task return pruned",
    "task_return_retrained": "task return retrained",
    "capability_vs_finetune": "capability vs fine-tune",
    "capability_vs_scratch": "capability vs scratch",
}
MISSING = "n/a"  # how a statistic of no values reads in a table


def label(strategy: str, cells: pd.DataFrame) -> str:
    """A cell's name for people: action-head cells carry the mark explained under the table."""
    marked = cells.loc[cells.strategy == strategy, "prunes_action_head"].astype(bool).any()
    return f"{strategy} {ACTION_HEAD_MARK}" if marked else strategy


def summary_columns(cells: pd.DataFrame) -> dict[str, str]:
    """Headline columns plus per-role task returns when the env has roles."""
    roles = {
        c: c.replace("task_return_", "task return ").replace("[", " [")
        for c in cells.columns
        if c.startswith("task_return_") and "[" in c
    }
    return {**SUMMARY_COLUMNS, **roles}


def summarise(cells: pd.DataFrame, method: CIMethod = "bootstrap") -> pd.DataFrame:
    """Mean [95% CI] over seeds of each headline column, one row per strategy."""
    out = []
    for strategy, group in cells.groupby("strategy", sort=False):
        row = {
            "strategy": label(str(strategy), cells),
            "seeds": group.seed.nunique(),
            "units pruned": int(group.units_pruned.iloc[0]),
            "weights pruned": int(group.weights_pruned.iloc[0]),
        }
        row.update(
            {
                title: _shown(mean_ci(group[col], method=method))
                for col, title in summary_columns(cells).items()
            }
        )
        out.append(row)
    order = {NO_PRUNE: 0}
    return pd.DataFrame(out).sort_values("strategy", key=lambda s: s.map(order).fillna(1))


def _shown(estimate: object) -> str:
    text = str(estimate)
    return MISSING if text == "nan" else text


def tidy_summary(cells: pd.DataFrame) -> pd.DataFrame:
    """Machine-readable summary: one row per strategy × metric, both interval kinds and IQM."""
    rows = []
    for strategy, group in cells.groupby("strategy"):
        for col in summary_columns(cells):
            boot, t = mean_ci(group[col], method="bootstrap"), mean_ci(group[col], method="t")
            rows.append(
                {
                    "strategy": strategy,
                    "metric": col,
                    "n": boot.n,
                    "mean": boot.mean,
                    "iqm": iqm(group[col]),
                    "bootstrap_low": boot.low,
                    "bootstrap_high": boot.high,
                    "t_low": t.low,
                    "t_high": t.high,
                }
            )
    return pd.DataFrame(rows)


def references(cells: pd.DataFrame) -> pd.DataFrame:
    """The control (never paid for the trait) and the from-scratch cooperative model."""
    per_seed = cells.drop_duplicates("seed")

    def boot(values: pd.Series) -> object:
        return mean_ci(values, method="bootstrap")

    return pd.DataFrame(
        [
            {
                "model": "pretrained (bonus on)",
                "trait rate": str(boot(per_seed.trait_rate_before)),
                "task return": str(boot(per_seed.task_return_before)),
            },
            {
                "model": "control (bonus 0)",
                "trait rate": str(boot(per_seed.control_trait_rate)),
                "task return": str(boot(per_seed.control_task_return)),
            },
            {
                "model": "scratch (cooperative, retrain budget)",
                "trait rate": "",
                "task return": str(boot(per_seed.scratch_task_return)),
            },
            {
                "model": "random policy (uniform actions)",
                "trait rate": "",
                "task return": _shown(boot(per_seed.random_task_return)),
            },
        ]
    )


def matched_baseline(strategy: str, available: pd.Index, baseline: str = "random") -> str:
    """The baseline a cell is compared with: random pruning of the same kind (``random~weights``
    for a weight cell) where the run has it, else plain ``baseline``."""
    variant = Cell.parse(strategy).variant
    same_kind = Cell(baseline, variant).name if variant != "released" else baseline
    return same_kind if same_kind in available else baseline


def paired_comparisons(cells: pd.DataFrame, baseline: str = "random") -> pd.DataFrame:
    """Per strategy: how much more of the trait pruning cut than its baseline (random units, or
    random weights for a weight cell), paired by seed."""
    cut = cells.pivot(index="seed", columns="strategy", values="trait_cut")
    rows = []
    if baseline not in cut:
        return pd.DataFrame(rows)
    for strategy in cut.columns:
        base = matched_baseline(strategy, cut.columns, baseline)
        if strategy == base or Cell.parse(strategy).strategy in (baseline, NO_PRUNE):
            continue
        diff = cut[strategy] - cut[base]
        base_mean = cut[base].mean()
        ratio = (
            f"{cut[strategy].mean() / base_mean:.2f}"
            if base_mean > 1e-12
            else ("n/a: baseline cut ≤ 0")
        )
        rows.append(
            {
                "strategy": label(strategy, cells),
                "baseline": base,
                "trait cut minus baseline's (paired)": str(mean_ci(diff.dropna())),
                "ratio of mean cuts": ratio,
                "seeds where it cut more": f"{int((diff > 0).sum())}/{int(diff.notna().sum())}",
                "P(cut > baseline's)": round(
                    probability_of_improvement(cut[strategy], cut[base]), 2
                ),
            }
        )
    return pd.DataFrame(rows)


def load_sweeps(run_dir: Path) -> pd.DataFrame:
    """Trait rate and task return right after pruning, per seed × strategy × fraction."""
    rows = [
        {
            "seed": int(path.parent.parent.name.removeprefix("seed_")),
            "strategy": path.parent.name,
            **point,
        }
        for path in sorted(run_dir.glob("seed_*/*/sweep.json"))
        for point in read_json(path)
    ]
    return pd.DataFrame(rows)


def load_clusterability(run_dir: Path) -> pd.DataFrame:
    """n-cut, percentile among shuffles and z-score per seed × network (pretrain, control)."""
    rows = [
        {"seed": int(path.parent.name.removeprefix("seed_")), "network": network, **result}
        for path in sorted(run_dir.glob("seed_*/clusterability.json"))
        for network, result in read_json(path).items()
    ]
    return pd.DataFrame(rows)


def load_relocations(run_dir: Path, cells: pd.DataFrame) -> pd.DataFrame:
    """Per seed × strategy: the trait after retraining, and after pruning where it moved to."""
    rows = [
        {"seed": int(path.parent.parent.name.removeprefix("seed_")), **read_json(path)}
        for path in sorted(run_dir.glob("seed_*/*/relocation.json"))
    ]
    if not rows:
        return pd.DataFrame()
    found = pd.DataFrame(rows)
    return found.merge(
        cells[["seed", "strategy", "trait_rate_retrained", "task_return_retrained"]],
        on=["seed", "strategy"],
    )


def relocation_table(relocations: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for strategy, group in relocations.groupby("strategy"):
        rows.append(
            {
                "strategy": strategy,
                "seeds": len(group),
                "trait retrained": str(mean_ci(group.trait_rate_retrained, method="bootstrap")),
                "trait after pruning the re-located units": str(
                    mean_ci(
                        group.get("trait_rate_second_prune", pd.Series(dtype=float)),
                        method="bootstrap",
                    )
                ),
                "task return after": str(
                    mean_ci(
                        group.get("task_return_second_prune", pd.Series(dtype=float)),
                        method="bootstrap",
                    )
                ),
            }
        )
    return pd.DataFrame(rows)


def clusterability_table(clusters: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for network, group in clusters.groupby("network"):
        shuffled = np.array([np.mean(v) for v in group.shuffled_ncuts])
        rows.append(
            {
                "network": network,
                "seeds": len(group),
                "n-cut": str(mean_ci(group.ncut, method="bootstrap")),
                "shuffled n-cut": str(mean_ci(shuffled, method="bootstrap")),
                "percentile among shuffles": str(mean_ci(group.percentile, method="bootstrap")),
                "z-score": str(mean_ci(group.z_score, method="bootstrap")),
            }
        )
    return pd.DataFrame(rows)


def _head_note(cells: pd.DataFrame) -> str:
    if not cells.prunes_action_head.astype(bool).any():
        return ""
    return (
        f" {ACTION_HEAD_MARK} masks the action head: not a module (the logits of the actions "
        "themselves were ranked and held at zero)."
    )


def report_tables(
    cells: pd.DataFrame,
    clusters: pd.DataFrame | None = None,
    relocations: pd.DataFrame | None = None,
    failures: list[dict] | None = None,
) -> dict[str, tuple[str, pd.DataFrame]]:
    """The tables of a report, each with a sentence saying how to read it."""
    failures = failures or []
    tables = {
        "Strategies": (
            "Mean [95% percentile-bootstrap CI] over seeds (Student-t intervals, wider at few "
            "seeds, and IQMs are in `summary.csv`). Weights pruned counts every parameter entry "
            "held at zero (weights and biases): `<strategy>~weights` cells zero as many "
            "individual weights as the unit prune. Capability = (task return after retraining "
            "− the random policy's) / (the reference's − the random policy's): 1 = as capable "
            "as plain fine-tuning or the from-scratch model, 0 = no better than random actions, "
            "whatever the sign of the returns; n/a where the reference is not clearly above "
            "random or the run has no random-policy measurement (rerun `marlmod run` to add "
            "it)." + _head_note(cells),
            count_failed_seeds(summarise(cells), cells, failures),
        ),
        "Reference models": ("Mean [95% percentile-bootstrap CI] over seeds.", references(cells)),
    }
    paired = paired_comparisons(cells)
    if not paired.empty:
        tables["Locating vs random units"] = (
            "Trait cut = trait rate before − right after pruning, paired by seed (same "
            "pretrained model, same evaluation episodes); mean [95% t-interval]. The baseline "
            "is random pruning of the same kind where the run has it (`random~weights` for "
            "weight cells), else random units. P(cut > "
            "baseline's) is the probability of improvement over seeds (Mann–Whitney).",
            paired,
        )
    if relocations is not None and not relocations.empty:
        tables["Relocation after retraining"] = (
            "The trait re-located on each retrained model (`contrast` on fresh recordings, the "
            "pruned units excluded) and that many more units pruned: if the trait falls again, "
            "it had moved to those units. Mean [95% bootstrap CI] over seeds.",
            relocation_table(relocations),
        )
    if clusters is not None and not clusters.empty:
        tables["Clusterability (Filan et al.)"] = (
            "Normalised cut of the policy network's weight graph (4 spectral clusters; lower = "
            "more modular) vs 20 copies with weights shuffled within layers; percentile < 50 and "
            "z < 0 mean more clusterable than chance. Mean [95% bootstrap CI] over seeds.",
            clusterability_table(clusters),
        )
    if failures:
        tables["Failed tasks"] = (
            "These tasks stopped with an error and are in no table above (a failed cell is "
            "counted under `failed seeds`); a seed's later tasks wait until they succeed. "
            "Rerunning the scenario retries them.",
            failures_table(failures),
        )
    return tables


Tables = dict[str, tuple[str, pd.DataFrame]]


def render_markdown(name: str, tables: Tables, warnings: list[str] | None = None) -> str:
    """summary.md: the warnings first (``marlmod.report_checks``), then every table."""
    parts = [f"# Results: {name}", ""]
    for warning in warnings or []:
        parts += [warning, ""]
    parts += [
        "Trait rate = trait occurrences per agent-step (of agents in `env.trait_role`, if set); "
        "task return = task reward per agent per "
        "episode (bonus excluded); both measured in the cooperative env with sampled actions. "
        "Column definitions: `marlmod/cells_table.py`.",
        "",
    ]
    for title, (note, table) in tables.items():
        parts += [f"## {title}", "", note, "", table.to_markdown(index=False), ""]
    return "\n".join(parts)


def render_html(name: str, tables: Tables, warnings: list[str] | None = None) -> str:
    body = [f"<h1>Results: {name}</h1>"]
    body += [f"<p><strong>{plain(w)}</strong></p>" for w in warnings or []]
    for title, (note, table) in tables.items():
        body += [f"<h2>{title}</h2>", f"<p>{note}</p>", table.to_html(index=False)]
    return "<!doctype html><meta charset='utf-8'>" + "\n".join(body) + "\n"


def write_report(run_dir: Path, name: str) -> str:
    """Regenerate every table and plot of a run from its per-cell results."""
    from marlmod.plots import (
        plot_clusterability,
        plot_layer_contrasts,
        plot_pareto,
        plot_relapse,
        plot_relearn,
        plot_sweep,
    )

    cells, curves = load_cells(run_dir)
    attacks, attack_curves = load_relearn(run_dir)
    clusters, sweeps = load_clusterability(run_dir), load_sweeps(run_dir)
    failures = load_failures(run_dir)
    write_text(run_dir / "cells.csv", with_failures(cells, failures).to_csv(index=False))
    write_text(run_dir / "curves.csv", curves.to_csv(index=False))
    write_text(run_dir / "summary.csv", tidy_summary(cells).to_csv(index=False))
    tables = report_tables(cells, clusters, load_relocations(run_dir, cells), failures)
    tables.update(removal_tables(run_dir, cells, curves, attacks))
    if not attacks.empty:
        write_text(run_dir / "relearn.csv", attacks.to_csv(index=False))
        write_text(run_dir / "relearn_curves.csv", attack_curves.to_csv(index=False))
        plot_relearn(attack_curves, attacks, run_dir / "relearn.png")
    info = run_dir / "run.json"
    bonus = read_json(info)["config"]["env"]["bonus"] if info.is_file() else None
    warnings = reader_warnings(cells, bonus)
    markdown = render_markdown(name, tables, warnings)
    write_text(run_dir / "summary.md", markdown)
    write_text(run_dir / "summary.html", render_html(name, tables, warnings))
    plot_relapse(curves, run_dir / "relapse.png")
    plot_pareto(cells, run_dir / "pareto.png")
    if not sweeps.empty:
        write_text(run_dir / "sweep.csv", sweeps.to_csv(index=False))
        plot_sweep(sweeps, run_dir / "sweep.png")
    if not clusters.empty:
        plot_clusterability(clusters, run_dir / "clusterability.png")
    contrasts = {
        int(p.parent.parent.name.removeprefix("seed_")): read_json(p)
        for p in sorted(run_dir.glob("seed_*/record/layer_contrasts.json"))
    }
    if contrasts:
        plot_layer_contrasts(contrasts, run_dir / "layer_contrasts.png")
    return markdown
