"""The ``marlmod`` command: a thin layer over the pipeline modules.

User errors (bad config, unknown names, missing or corrupt files) print one line and exit 2;
``check-env`` exits 1 when the environment fails a check, ``compare`` when two runs differ;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from marlmod.errors import MarlmodError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train misbehaviour into multi-agent RL agents, locate it, prune it, "
    "retrain cooperatively, and score relapse and capability.",
)


def set_option() -> typer.models.OptionInfo:
    """``--set key.path=value`` (repeatable), shared by the commands that load a scenario."""
    return typer.Option(
        None,
        "--set",
        metavar="KEY.PATH=VALUE",
        help="Set one config value as if the file were edited (the value is YAML; it replaces "
        "what is there), e.g. --set seeds=[0] --set ppo.learning_rate=1e-4. Repeatable; the "
        "config hash and run.json are those of the result",
    )


@app.command()
def run(
    config: Path = typer.Argument(..., help="Scenario YAML, e.g. configs/aggression.yaml"),
    out: Path = typer.Option(
        Path("runs"),
        help="Results root; the run goes in OUT/<name> (runs/ is git-ignored; the committed "
        "results were made with --out results)",
    ),
    workers: int = typer.Option(0, help="Worker processes (0 = the config's 'workers')"),
    backend: str = typer.Option("local", help="local (worker processes) or ray (Ray tasks)"),
    ray_address: str = typer.Option(None, help="Ray cluster address; default: start Ray here"),
    assignments: list[str] | None = set_option(),
    ray_ship_files: bool = typer.Option(
        None,
        "--ray-ship-files/--ray-shared-fs",
        help="Ray tasks send their files back to this process (no shared filesystem needed), "
        "or write OUT directly (OUT shared by every node); default: ship with --ray-address",
    ),
) -> None:
    """Run (or resume) a scenario end to end and print its results table."""
    from marlmod.config import load_scenario
    from marlmod.experiment import run_scenario

    scenario = load_scenario(config, assignments or ())
    echo_summary(run_scenario(scenario, out, workers or None, backend, ray_address, ray_ship_files))


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run directory, e.g. results/aggression"),
) -> None:
    """Regenerate the tables and plot of a run from its per-cell results (refused while a run
    writes the directory: it writes its own report when it finishes)."""
    from marlmod.lock import run_lock
    from marlmod.report import write_report

    if not run_dir.is_dir():
        raise MarlmodError(f"run directory not found: {run_dir}")
    with run_lock(run_dir, "marlmod report"):
        echo_summary(write_report(run_dir, run_dir.name))


def echo_summary(markdown: str) -> None:
    """Print a run's summary, then its warnings again on stderr, where they are not lost above
    the tables (``marlmod.report_checks``)."""
    from marlmod.report_checks import warnings_in

    typer.echo(markdown)
    for warning in warnings_in(markdown):
        typer.echo(f"marlmod: {warning}", err=True)


@app.command()
def episodes(
    run_dir: Path = typer.Argument(..., help="A run directory, e.g. results/aggression"),
    seed: int = typer.Option(0, help="Which seed's models"),
    strategy: str = typer.Option(
        "contrast", help="Which cell: a strategy, or <strategy>~<variant> (e.g. contrast~weights)"
    ),
    out: Path = typer.Option(None, help="Where to write the GIF (default RUN_DIR/episodes)"),
) -> None:
    """One GIF of the same episode before pruning, right after, and after cooperative
    retraining, side by side, captioned."""
    from marlmod.episodes import write_episode_gif

    typer.echo(write_episode_gif(run_dir, seed, strategy, out or run_dir / "episodes"))


@app.command()
def validate(
    config: Path = typer.Argument(..., help="Scenario YAML to check"),
    assignments: list[str] | None = set_option(),
) -> None:
    """Check a scenario config (schema and environment) without running anything; every schema
    problem is listed, one per line with its key path."""
    from marlmod.config import load_scenario
    from marlmod.environments import resolve_env

    scenario = load_scenario(config, assignments or ())
    resolve_env(scenario.env)
    typer.echo(f"{config}: ok (config hash {scenario.digest})")


@app.command()
def migrate(
    run_dir: Path = typer.Argument(..., help="A run directory made by an older marlmod"),
) -> None:
    """Bring a run directory made by an older marlmod to the current layout (retrains only what
    older versions did not keep, checked against the stored results)."""
    from marlmod.lock import run_lock
    from marlmod.migrate import migrate_run

    if not (run_dir / "run.json").is_file():
        raise MarlmodError(f"{run_dir} is not a run directory (no run.json)")
    with run_lock(run_dir, "marlmod migrate"):
        done = migrate_run(run_dir)
    for line in done:
        typer.echo(line)
    typer.echo(f"{run_dir}: {'migrated' if done else 'already current'}")


@app.command("check-env")
def check_env(
    env: str = typer.Argument(
        ..., help="Registry id (marlmod/gathering-v0) or import path 'package.module:factory'"
    ),
    kwargs: str = typer.Option("{}", help="Constructor kwargs as JSON, e.g. '{\"grid_size\": 5}'"),
    steps: int = typer.Option(1000, min=1, help="Random-play steps per run"),
    bonus: float = typer.Option(1.0, help="Bonus kwarg value for the 'bonus on' runs"),
    seed: int = typer.Option(0, help="Seed of the random-play runs"),
) -> None:
    """Check an environment against marlmod's protocol; exit 1 if any check fails."""
    from marlmod.check_env import check_env as run_checks
    from marlmod.check_env import parse_kwargs

    findings = run_checks(env, parse_kwargs(kwargs), steps, bonus, seed)
    for finding in findings:
        typer.echo(str(finding))
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    verdict = "FAILED" if errors else "ok"
    typer.echo(f"{env}: {verdict} ({errors} errors, {warnings} warnings)")
    if errors:
        raise typer.Exit(1)


@app.command()
def compare(
    first: Path = typer.Argument(..., help="A run directory, e.g. results/aggression"),
    second: Path = typer.Argument(..., help="Another run of the same config"),
    allow_missing: bool = typer.Option(
        False, help="Only compare files both runs have (e.g. one run is a subset)"
    ),
) -> None:
    """Check two runs gave identical results: every per-seed result file, value for value and
    tensor for tensor. Exits 1 on any difference."""
    from marlmod.compare import compare_runs

    comparison = compare_runs(first, second)
    typer.echo(comparison.summary())
    missing = comparison.only_a or comparison.only_b
    if not comparison.identical or (missing and not allow_missing):
        raise typer.Exit(1)


@app.command()
def index(
    results: Path = typer.Argument(Path("results"), help="The committed results folder"),
) -> None:
    """Regenerate RESULTS/README.md: every run directory with its config, commit, date and
    seeds (read from each run.json; the date from git)."""
    from marlmod.results_index import write_index

    if not results.is_dir():
        raise MarlmodError(f"results folder not found: {results}")
    typer.echo(write_index(results, Path.cwd()))


@app.command()
def envs() -> None:
    """List the environments in PettingZoo's registry."""
    from marlmod.environments import registered_ids

    for env_id in registered_ids():
        typer.echo(env_id)


def main() -> None:
    try:
        app()
    except MarlmodError as err:
        typer.echo(f"marlmod: error: {err}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        interrupted()
    except SystemExit as stop:
        if stop.code == 130:  # typer turns Ctrl-C into a silent exit 130
            interrupted()
        raise


def interrupted() -> None:
    again = shlex.join(["marlmod", *sys.argv[1:]])
    typer.echo(f"marlmod: interrupted; finished stages are kept; resume with: {again}", err=True)
    sys.exit(130)


if __name__ == "__main__":
    main()
