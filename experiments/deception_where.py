"""Where does the rest of the lie live? (issue 16)

On Signalling, pruning the best-ranked 25% of the *second* hidden layer removes only about half
of lying (``configs/deception.yaml``), where on Gathering the same prune removes ~96% of attacks.
Candidates: the other layer, both layers, more units, or a code spread over many units. This
script puts the fraction sweeps of runs that prune different layers of the same pretrained
networks side by side, and, for a run that ranks every hidden unit jointly
(``prune.layer: all_hidden``), says which layer the chosen units come from:

    marlmod run configs/deception_where.yaml --out runs         # all hidden units ranked jointly
    marlmod run configs/deception_first_layer.yaml --out runs   # the first hidden layer alone
    marlmod run configs/deception_second_layer.yaml --out runs  # the second alone
    python experiments/deception_where.py runs/deception_where runs/deception_first_layer \
        runs/deception_second_layer --decisions contrast,attribution,random
    # -> results/deception_layers.md, .csv, and _decisions.csv

``--decisions`` adds what the surviving lies look like: each run's pruned policies read on
its recorded sender states — how much probability is left on lying at low and at high
stakes, and whether lying is still the most likely action (``decision_rows``).

Each run directory needs ``run.json``, ``cells.csv`` and ``sweep.csv`` (what a report writes,
so committed results serve); the per-layer split also needs the ``seed_*/<strategy>/scores.json``
files of an ``all_hidden`` run (its ``--out``, not a committed copy). The CSV has one row per
run × seed × strategy × fraction: ``layer`` (the prune.layer), ``units`` (pruned at that
fraction), ``trait_rate_before`` and ``control_trait_rate``, ``trait_rate`` and ``task_return``
right after pruning, ``removed`` = (before − pruned) / (before − control), and for
``all_hidden`` the pruned units in each hidden layer (``units_<layer>``). The Markdown table
gives mean and 95% bootstrap interval over seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from marlmod.atomic import read_json, write_text
from marlmod.experiment import stored_scenario
from marlmod.layers import ACTION_HEAD, ALL_HIDDEN
from marlmod.locate import top_units
from marlmod.prune import apply_masks
from marlmod.record import activations_on
from marlmod.stats import mean_ci

TRUTH, DECOY = 0, 1  # the sender's actions in its own frame (envs/signalling.py)


def sweep_rows(run_dir: Path) -> pd.DataFrame:
    """One row per seed × strategy × fraction of a run's sweep, with the pretrained trait rate
    beside it and, for an ``all_hidden`` run with seed directories, the units per layer."""
    info = run_dir / "run.json"
    scenario = stored_scenario(read_json(info), info)
    layer = scenario.prune.layer
    layers = scenario.network.units(layer)
    sweep = pd.read_csv(run_dir / "sweep.csv")
    cells = pd.read_csv(run_dir / "cells.csv")
    before = cells.groupby("seed").trait_rate_before.first()
    control = cells.groupby("seed").control_trait_rate.first()
    rows = []
    for record in sweep.itertuples(index=False):
        total = sum(n for _, n in layers)
        row = {
            "run": run_dir.name,
            "layer": layer,
            "strategy": record.strategy,
            "fraction": float(record.fraction),
            "units": max(1, int(round(record.fraction * total))),
            "seed": int(record.seed),
            "trait_rate_before": float(before[record.seed]),
            "control_trait_rate": float(control[record.seed]),
            "trait_rate": float(record.trait_rate),
            "task_return": float(record.task_return),
        }
        if layer == ALL_HIDDEN:
            row.update(
                _units_per_layer(run_dir, record.seed, record.strategy, record.fraction, layers)
            )
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["removed"] = (frame.trait_rate_before - frame.trait_rate) / (
        frame.trait_rate_before - frame.control_trait_rate
    )
    return frame


def _units_per_layer(
    run_dir: Path, seed: int, strategy: str, fraction: float, layers: tuple[tuple[str, int], ...]
) -> dict[str, float]:
    """How many of the top ``fraction`` units of ``strategy``'s joint ranking sit in each layer
    (the same ``top_units`` the prune uses); NaN when the scores are not on disk."""
    path = run_dir / f"seed_{seed}" / strategy / "scores.json"
    if not path.is_file():
        return {f"units_{name}": float("nan") for name, _ in layers}
    chosen = top_units(np.asarray(json.loads(path.read_text()), dtype=np.float64), fraction)
    counts, start = {}, 0
    for name, width in layers:
        counts[f"units_{name}"] = float(np.sum((chosen >= start) & (chosen < start + width)))
        start += width
    return counts


def decision_rows(run_dir: Path, strategies: list[str]) -> pd.DataFrame:
    """How the lies that survive a prune look, from the policy's own action probabilities on the
    sender states recorded for locating (``seed_*/record/activations.npz``). The sender's states
    (resource, decoy, stakes) do not depend on its policy, so every model is read on the same
    unbiased sample. Per seed × model (control, pretrained, each strategy × sweep fraction):
    ``p_lie_low`` / ``p_lie_high``: mean probability of not pointing at the resource at low /
    high stakes; ``decoy_share``: of that probability, the share on the paid lie (the decoy);
    ``argmax_lie_low`` / ``argmax_lie_high``: how often the most likely action is a lie. A prune
    that removes a *decision* to lie lowers the argmax rates to the control's; one that only
    blurs it leaves lies sampled from a flatter distribution."""
    from marlmod.pipeline import SeedRun  # imports torch and the envs: only for this table

    info = run_dir / "run.json"
    scenario = stored_scenario(read_json(info), info)
    rows = []
    for seed_number in scenario.seeds:
        if not (run_dir / f"seed_{seed_number}" / "record" / "activations.npz").is_file():
            continue
        seed = SeedRun(scenario, seed_number, run_dir)
        with np.load(seed.dir / "record" / "activations.npz") as data:
            obs = data["obs"]
        n_sites = (obs.shape[1] - 4) // 3
        low = obs[:, 2 + n_sites] > 0.5  # the value one-hot's "low" field (sender only)
        models = [
            ("control", 0.0, seed.control_model()),
            ("pretrained", 0.0, seed.pretrained_model()),
        ]
        for strategy in strategies:
            for fraction in scenario.prune.sweep:
                model = seed.pretrained_model()
                apply_masks(model.policy, seed.prune_for(strategy, model, fraction))
                models.append((strategy, fraction, model))
        for name, fraction, model in models:
            logits = activations_on(model.policy, ACTION_HEAD, obs).astype(np.float64)
            probs = np.exp(logits - logits.max(1, keepdims=True))
            probs /= probs.sum(1, keepdims=True)
            lie = 1.0 - probs[:, TRUTH]
            argmax_lie = probs.argmax(1) != TRUTH
            rows.append(
                {
                    "run": run_dir.name,
                    "seed": seed_number,
                    "model": name,
                    "fraction": fraction,
                    "p_lie_low": float(lie[low].mean()),
                    "p_lie_high": float(lie[~low].mean()),
                    "decoy_share": float(probs[:, DECOY].sum() / lie.sum()),
                    "argmax_lie_low": float(argmax_lie[low].mean()),
                    "argmax_lie_high": float(argmax_lie[~low].mean()),
                }
            )
    return pd.DataFrame(rows)


DECISION_COLUMNS = (
    ("p_lie_low", "P(lie), low stakes"),
    ("p_lie_high", "P(lie), high stakes"),
    ("decoy_share", "share of P(lie) on the decoy"),
    ("argmax_lie_low", "most likely action a lie, low stakes"),
    ("argmax_lie_high", "… high stakes"),
)


def decision_markdown(decisions: pd.DataFrame) -> str:
    """Mean [95% bootstrap CI] over seeds of each decision column, per run, model and fraction."""
    header = ["run", "model", "fraction", "seeds"] + [title for _, title in DECISION_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    groups = decisions.groupby(["run", "model", "fraction"], sort=False)
    for (run, model, fraction), group in groups:
        cells = [
            run,
            model,
            "—" if model in ("control", "pretrained") else f"{fraction:g}",
            str(len(group)),
        ]
        for column, _ in DECISION_COLUMNS:
            est = mean_ci(group[column].to_numpy(dtype=float), method="bootstrap")
            cells.append(_interval(est.mean, est.low, est.high, "{:.3f}"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% bootstrap interval over seeds per run × strategy × fraction."""
    out = []
    keys = ["run", "layer", "strategy", "fraction", "units"]
    layer_columns = [c for c in rows.columns if c.startswith("units_")]
    for key, group in rows.groupby(keys, sort=True):
        row = dict(zip(keys, key, strict=True))
        row["n"] = len(group)
        for column in ("trait_rate", "removed", "task_return"):
            est = mean_ci(group[column].to_numpy(dtype=float), method="bootstrap")
            row.update({column: est.mean, f"{column}_low": est.low, f"{column}_high": est.high})
        for column in layer_columns:
            row[column] = group[column].mean()
        out.append(row)
    return pd.DataFrame(out)


def markdown(summary: pd.DataFrame, command: str, before: pd.Series) -> str:
    """The table as people read it: one row per run × strategy × fraction."""
    lines = [
        "# Where does the rest of the lie live?",
        "",
        f"Made by `{command}`. Signalling (configs/base/deception.yaml), the same pretrained "
        "networks pruned in different layers right after pretraining, no retraining. Mean "
        "[95% percentile-bootstrap CI] over seeds. *Removed*: (pretrained − pruned) / "
        "(pretrained − control) lie rate. "
        f"Pretrained lie rate {before.mean():.3f}; the control's "
        f"{summary.attrs['control']:.4f}.",
        "",
    ]
    layer_columns = [c for c in summary.columns if c.startswith("units_")]
    header = [
        "run",
        "layer",
        "strategy",
        "fraction",
        "units",
        "seeds",
        "lie rate",
        "removed",
        "task return",
    ] + [f"from {c[len('units_') :]}" for c in layer_columns]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for d in summary.to_dict("records"):  # column names with dots: not itertuples
        cells = [
            d["run"],
            f"`{d['layer']}`",
            d["strategy"],
            f"{d['fraction']:g}",
            str(d["units"]),
            str(d["n"]),
            _ci(d, "trait_rate", "{:.3f}"),
            _ci(d, "removed", "{:.0%}"),
            _ci(d, "task_return", "{:.1f}"),
        ] + ["—" if np.isnan(d[c]) else f"{d[c]:.1f}" for c in layer_columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _ci(row: dict, column: str, fmt: str) -> str:
    """A summary row's ``column`` with its interval (``<column>_low``/``_high``)."""
    return _interval(row[column], row[f"{column}_low"], row[f"{column}_high"], fmt)


def _interval(mean: float, low: float, high: float, fmt: str) -> str:
    """'mean [low, high]' in ``fmt`` (the interval left out when there is none): like
    ``Estimate.__str__``, but with a format per column (shares as percentages)."""
    if np.isnan(low):
        return fmt.format(mean)
    return f"{fmt.format(mean)} [{fmt.format(low)}, {fmt.format(high)}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="finished run directories")
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    parser.add_argument(
        "--decisions",
        default="",
        help="comma-separated strategies whose prunes of the first run get the decision table "
        "(needs that run's seed directories; e.g. contrast,random)",
    )
    args = parser.parse_args(argv)
    for run in args.runs:
        missing = [f for f in ("run.json", "cells.csv", "sweep.csv") if not (run / f).is_file()]
        if missing:
            print(
                f"{run}: not a finished run with a sweep (no {', '.join(missing)})", file=sys.stderr
            )
            return 2
    rows = pd.concat([sweep_rows(run) for run in args.runs], ignore_index=True)
    summary = summarise(rows)
    summary.attrs["control"] = float(rows.control_trait_rate.mean())
    write_text(args.out / "deception_layers.csv", rows.to_csv(index=False))
    command = " ".join(["python experiments/deception_where.py", *map(str, args.runs)])
    if args.decisions:
        command += f" --decisions {args.decisions}"
    text = markdown(summary, command, rows.groupby(["run", "seed"]).trait_rate_before.first())
    if args.decisions:
        strategies = args.decisions.split(",")
        decisions = pd.concat([decision_rows(run, strategies) for run in args.runs])
        if decisions.empty:
            print(
                "--decisions: none of the runs has its recorded seed directories", file=sys.stderr
            )
            return 2
        write_text(args.out / "deception_layers_decisions.csv", decisions.to_csv(index=False))
        text += (
            "\n## How the surviving lies look\n\n"
            "The policies' own action probabilities on each run's recorded sender states (the "
            "same states for every model of a seed; `decision_rows` in the script says why that "
            "is unbiased); runs without seed directories are left out:\n\n"
            + decision_markdown(decisions)
        )
    write_text(args.out / "deception_layers.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
