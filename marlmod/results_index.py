"""The index of committed results: every run directory under ``results/`` with the config that
made it, the commit and date it was made at, its seeds and what it is.

Runs are named by config, commit and date, never by when or by whom they were made. The commit is
the one ``run.json`` recorded when the run started (``git_commit``); its date is that commit's
date in the repository's history ("unknown" where the history lacks it, e.g. a shallow clone).
What a run is comes from the first sentence of its config's leading comment, so the description
has one home. ``marlmod index`` regenerates ``results/README.md``; a test checks that every
``results/*/run.json`` is listed.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from marlmod.atomic import read_json, write_text

INDEX_NAME = "README.md"
MIN_ABOUT, MAX_ABOUT = 60, 150  # characters of a run's one-line description


@dataclass(frozen=True)
class RunEntry:
    """One committed run directory."""

    name: str  # the directory under results/, and the scenario's name
    config: str  # the config file that makes it, relative to the repository root
    commit: str  # run.json's git_commit
    date: str  # that commit's date (YYYY-MM-DD) or "unknown"
    seeds: tuple[int, ...]
    about: str  # one line: what the run is
    resumed_with: tuple[str, ...] = ()  # commits of later reruns that resumed it


def commit_date(commit: str, repo: Path) -> str:
    """The commit's date in ``repo``'s history, or "unknown"."""
    try:
        out = subprocess.run(
            ["git", "show", "-s", "--format=%ad", "--date=short", commit],
            capture_output=True,
            text=True,
            cwd=repo,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def first_sentence(config: Path) -> str:
    """The first sentence of a YAML file's leading comment block ("" if it has none)."""
    if not config.is_file():
        return ""
    lines = []
    for line in config.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = "".join(
        line if line.endswith("/") else line + " "
        for line in lines  # paths broken at a /
    ).strip()
    text = re.sub(r"^Issues? \d+:\s*", "", text)  # which issue asked for it is not what it is
    sentences = re.findall(r".+?[.?](?=\s|$)|.+$", text)
    about = ""
    for sentence in sentences:  # enough sentences to say something
        about = f"{about} {sentence.strip()}".strip()
        if len(about) >= MIN_ABOUT:
            break
    about = about.rstrip(".")
    if len(about) > MAX_ABOUT:
        about = about[:MAX_ABOUT].rsplit(" ", 1)[0] + " …"
    return about if about.startswith("configs/") else about[:1].upper() + about[1:]


def run_entries(results: Path, repo: Path) -> list[RunEntry]:
    """Every run directory under ``results`` (one with a ``run.json``, at any depth: a study's
    runs may share a folder, e.g. ``results/scale/width_64`` of ``configs/scale/width_64.yaml``),
    by path."""
    entries = []
    for info_path in sorted(results.glob("**/run.json")):
        info = read_json(info_path)
        name = info_path.parent.relative_to(results).as_posix()
        config = Path("configs") / f"{name}.yaml"
        commit = str(info.get("git_commit", "unknown"))
        entries.append(
            RunEntry(
                name=name,
                config=config.as_posix() if (repo / config).is_file() else "unknown",
                commit=commit,
                date=commit_date(commit, repo) if commit != "unknown" else "unknown",
                seeds=tuple(info["config"]["seeds"]),
                about=first_sentence(repo / config),
                resumed_with=tuple(r["git_commit"] for r in info.get("resumed_with", [])),
            )
        )
    return entries


def render_index(entries: list[RunEntry]) -> str:
    """``results/README.md``: one row per run, linking its summary."""
    rows = [
        "# Committed results",
        "",
        "Every run directory here, made by `marlmod run <config> --out results` (a run without "
        "`--out` goes to `runs/`, which git ignores). Commit: the one the run started at "
        "(`run.json`'s `git_commit`), then any that resumed it (`resumed_with`: reruns of the "
        "same config digest with later code); date: the first commit's. Regenerate this file with "
        "`marlmod index results`. Each directory holds `summary.md` (tables for people), "
        "`cells.csv` and `curves.csv` (the per-seed numbers) and plots; the seed directories "
        "(models, activations) are not committed.",
        "",
        "| run | config | commit | date | seeds | what it is |",
        "|---|---|---|---|---|---|",
    ]
    for e in entries:
        seeds = ", ".join(str(s) for s in e.seeds)
        about = e.about.replace("|", "\\|")  # a table cell
        commits = " → ".join(f"`{c[:7]}`" for c in (e.commit, *e.resumed_with))
        rows.append(
            f"| [{e.name}]({e.name}/summary.md) | `{e.config}` | {commits} | {e.date} "
            f"| {seeds} | {about} |"
        )
    return "\n".join(rows) + "\n"


def write_index(results: Path, repo: Path) -> Path:
    """Regenerate ``results/README.md`` from the run directories' ``run.json`` files."""
    target = results / INDEX_NAME
    write_text(target, render_index(run_entries(results, repo)))
    return target
