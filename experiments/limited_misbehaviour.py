"""The seed's own claim, tested: does training a *limited* misbehaviour on purpose give it a module
that pruning can remove, where a misbehaviour that emerges by itself cannot be?

Reads three finished runs of the game in configs/base/emergent_gathering.yaml, where aggression
pays instrumentally and emerges without any bonus:

- (a) ``limited_emergent``: no bonus; the trait emerges; located on the game's zap labels;
- (b) ``limited_bonus``: a bonus per hit trains it in on purpose (labelled, limited);
- (b') ``limited_routing``: the same, routed by advantage-signed gradient routing (30% labels);

each pruned and retrained cooperatively in the same game, where zapping still pays. Every run also
has (c) plain fine-tuning of its unpruned model (``none``) and (d) a network trained from scratch
in the cooperative game for the retraining budget (``scratch``). Writes ``OUT.md``, ``OUT.csv``
and ``OUT.png`` (default ``results/limited_misbehaviour``): final trait rate, capability, relapse
curves and total training cost per arm, mean [95% bootstrap CI] over seeds.

    python experiments/limited_misbehaviour.py [--results results] [--out OUT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from marlmod.atomic import write_text, write_with  # noqa: E402
from marlmod.failures import load_failures  # noqa: E402
from marlmod.stats import mean_ci  # noqa: E402

ARMS = {
    "limited_emergent": "(a) emerged, no bonus",
    "limited_bonus": "(b) limited bonus",
    "limited_routing": "(b') limited bonus, routed",
}
PRUNES = {"none": "(c) fine-tuned, never pruned", "random": "random units (placebo prune)"}


def run_info(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def training_cost(config: dict, cell: str) -> int:
    """Agent-steps spent to produce a cell's model: pretraining (and, where a bonus is used, the
    control that certifies the trait was learned) plus cooperative retraining."""
    pretrain = config["pretrain_steps"]
    control = pretrain if config["env"]["bonus"] > 0 else 0
    return pretrain + control + config["retrain"]["steps"]


def failure_lines(run_dir: Path) -> list[str]:
    """One line per failed task of a run (``marlmod.failures``: a seed whose pretraining
    collapsed fails its shared stages, so its cells are in no table at all)."""
    return [
        f"{run_dir.name} seed {f['seed']}, {f['task']}: {f['error']}"
        for f in load_failures(run_dir)
    ]


def arm_rows(results: Path, failures: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per seed × arm × cell: trait and task return before, right after pruning and after
    retraining, with the run's cost; and the long-form relapse curves. Failed cells (a seed
    whose pretraining collapsed) are left out of the means and listed in ``failures``."""
    rows, curves = [], []
    for run, arm in ARMS.items():
        run_dir = results / run
        if not (run_dir / "cells.csv").is_file():
            raise SystemExit(f"{run_dir}/cells.csv not found: run configs/{run}.yaml first")
        config = run_info(run_dir)["config"]
        cells = pd.read_csv(run_dir / "cells.csv")
        failures += failure_lines(run_dir)
        if "failed" in cells:
            cells = cells[cells.failed.isna()]
        for row in cells.itertuples():
            rows.append(
                {
                    "arm": arm,
                    "run": run,
                    "cell": PRUNES.get(row.strategy, row.strategy),
                    "seed": row.seed,
                    "trait_before": row.trait_rate_before,
                    "trait_pruned": row.trait_rate_pruned,
                    "trait_retrained": row.trait_rate_retrained,
                    "task_return_retrained": row.task_return_retrained,
                    "relapse_auc": row.relapse_auc,
                    "control_trait": row.control_trait_rate,
                    "training_cost": training_cost(config, row.strategy),
                }
            )
        frame = pd.read_csv(run_dir / "curves.csv")
        curves.append(frame.assign(arm=arm, cell=frame.strategy.map(lambda s: PRUNES.get(s, s))))
    scratch = []
    run_dir = results / "limited_emergent"
    for path in sorted(run_dir.glob("seed_*/scratch/curve.json")):
        end = json.loads(path.read_text())[-1]
        scratch.append(
            {
                "arm": "(d) from scratch, cooperative",
                "run": "limited_emergent",
                "cell": "scratch",
                "seed": int(path.parent.parent.name.removeprefix("seed_")),
                "trait_retrained": end["trait_rate"],
                "task_return_retrained": end["task_return"],
                "training_cost": run_info(run_dir)["config"]["retrain"]["steps"],
            }
        )
    return pd.DataFrame(rows + scratch), pd.concat(curves, ignore_index=True)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (arm, cell), group in rows.groupby(["arm", "cell"], sort=False):

        def ci(column: str, group: pd.DataFrame = group) -> str:
            return str(mean_ci(group[column], method="bootstrap")) if column in group else ""

        out.append(
            {
                "arm": arm,
                "prune": cell,
                "seeds": group.seed.nunique(),
                "trait learned": ci("trait_before"),
                "trait right after pruning": ci("trait_pruned"),
                "trait after cooperative retraining": ci("trait_retrained"),
                "relapse AUC": ci("relapse_auc"),
                "task return after retraining": ci("task_return_retrained"),
                "training cost (agent-steps)": f"{int(group.training_cost.iloc[0]):,}",
            }
        )
    return pd.DataFrame(out)


def plot(curves: pd.DataFrame, target: Path) -> None:
    """Relapse curves per arm (one panel each), contrast and routed prunes against fine-tuning."""
    arms = list(ARMS.values())
    palette = plt.get_cmap("tab10").colors
    colour = {cell: palette[i % 10] for i, cell in enumerate(sorted(curves.cell.unique()))}
    fig, axes = plt.subplots(1, len(arms), figsize=(4 * len(arms), 3.4), sharey=True)
    for ax, arm in zip(axes, arms, strict=True):
        for cell, group in curves[curves.arm == arm].groupby("cell", sort=False):
            stats = group.groupby("steps").trait_rate.apply(lambda v: mean_ci(v.values, method="t"))
            ax.plot(stats.index, [e.mean for e in stats], marker="o", label=cell, c=colour[cell])
            lows = [max(e.low, 0.0) if e.n > 1 else e.mean for e in stats]  # rates are >= 0
            highs = [e.high if e.n > 1 else e.mean for e in stats]
            ax.fill_between(stats.index, lows, highs, alpha=0.15, color=colour[cell])
        ax.set(title=arm, xlabel="cooperative retraining agent-steps")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("attack rate (zaps per agent-step)")
    fig.suptitle("Relapse in a game where aggression pays (mean, 95% t-band over seeds)")
    fig.tight_layout()
    write_with(target, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--out", type=Path, default=Path("results/limited_misbehaviour"))
    args = parser.parse_args()
    failures: list[str] = []
    rows, curves = arm_rows(args.results, failures)
    table = summary(rows)
    commits = {run: run_info(args.results / run).get("git_commit", "unknown")[:10] for run in ARMS}
    markdown = "\n".join(
        [
            "# Limited misbehaviour on purpose vs a misbehaviour that emerged",
            "",
            f"Made by `python experiments/limited_misbehaviour.py --results {args.results}` "
            "(the `--out` of `marlmod run configs/<run>.yaml`) from the runs "
            + ", ".join(f"`{run}` (commit {c})" for run, c in commits.items())
            + ". Mean [95% percentile-bootstrap CI] over seeds; trait = zaps per agent-step in "
            "the cooperative game, where zapping still pays; training cost counts pretraining, "
            "the control where a bonus needs one, and retraining.",
            "",
            table.to_markdown(index=False),
            "",
            *(
                ["Failed tasks (their seeds' cells are left out of the means):", ""]
                if failures
                else []
            ),
            *[f"- {line}" for line in failures],
            "",
        ]
    )
    write_text(args.out.with_suffix(".md"), markdown)
    write_text(args.out.with_suffix(".csv"), rows.to_csv(index=False))
    plot(curves, args.out.with_suffix(".png"))
    print(markdown)


if __name__ == "__main__":
    main()
