"""The committed results are indexed (config, commit, date, seeds, what each is), and user runs
go outside them by default."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from marlmod import cli
from marlmod.atomic import read_json
from marlmod.results_index import first_sentence, render_index, run_entries

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"


def test_every_committed_run_is_in_the_index() -> None:
    index = (RESULTS / "README.md").read_text()
    runs = sorted(RESULTS.glob("**/run.json"))  # a study's runs may share a folder
    assert runs
    for info_path in runs:
        name = info_path.parent.relative_to(RESULTS).as_posix()
        commit = read_json(info_path)["git_commit"]
        row = next((line for line in index.splitlines() if line.startswith(f"| [{name}]")), None)
        assert row is not None, f"results/{name} is not in results/README.md: run `marlmod index`"
        assert f"`configs/{name}.yaml`" in row and f"`{commit[:7]}`" in row


def test_the_index_is_read_from_run_json_and_the_config(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "alpha.yaml").write_text(
        "# Issue 3: the alpha study of configs/\n# alpha.yaml. More words here.\nname: alpha\n"
    )
    for name in ("alpha", "beta"):
        run = tmp_path / "results" / name
        run.mkdir(parents=True)
        info = {"git_commit": "0123456789abcdef" * 2 + "01234567", "config": {"seeds": [0, 2]}}
        (run / "run.json").write_text(json.dumps(info))
    alpha, beta = run_entries(tmp_path / "results", tmp_path)
    assert alpha.config == "configs/alpha.yaml" and beta.config == "unknown"
    assert alpha.seeds == (0, 2) and alpha.date == "unknown"  # not a commit of this repository
    assert alpha.about == "The alpha study of configs/alpha.yaml. More words here"
    text = render_index([alpha, beta])
    assert (
        "| [alpha](alpha/summary.md) | `configs/alpha.yaml` | `0123456` | unknown | 0, 2 |" in text
    )


def test_a_description_is_one_short_line() -> None:
    about = first_sentence(ROOT / "configs" / "aggression.yaml")
    assert about.startswith("The full aggression scenario") and "\n" not in about
    assert len(about) <= 152


def test_user_runs_default_outside_the_committed_results() -> None:
    default = inspect.signature(cli.run).parameters["out"].default.default
    assert default == Path("runs")
    assert "runs/" in (ROOT / ".gitignore").read_text().splitlines()


def test_a_run_resumed_with_later_code_says_so_once_per_commit(
    tmp_path: Path, tiny_dict: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rerun of the same config with another commit is noted in run.json (and the index);
    a rerun with the same commit adds nothing."""
    from marlmod import experiment
    from marlmod.config import parse_scenario

    scenario = parse_scenario(tiny_dict)
    run_dir = tmp_path / "tiny"
    monkeypatch.setattr(experiment, "git_commit", lambda: "a" * 40)
    experiment.prepare_run_dir(scenario, run_dir)
    monkeypatch.setattr(experiment, "git_commit", lambda: "b" * 40)
    experiment.prepare_run_dir(scenario, run_dir)
    experiment.prepare_run_dir(scenario, run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["git_commit"] == "a" * 40
    assert [r["git_commit"] for r in info["resumed_with"]] == ["b" * 40]
    (tmp_path / "configs").mkdir()
    entry = run_entries(tmp_path, tmp_path)[0]
    assert entry.resumed_with == ("b" * 40,)
    assert "`aaaaaaa` → `bbbbbbb`" in render_index([entry])
