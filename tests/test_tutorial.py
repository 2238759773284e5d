"""docs/adding_an_environment.md cannot rot: its excerpts are the files, its commands and
registration snippet run, and its env and config go through ``check-env`` and the pipeline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pettingzoo
import pytest
import yaml

from marlmod.check_env import check_env, read_spec
from marlmod.config import parse_scenario
from marlmod.environments import resolve_constructor
from marlmod.experiment import run_scenario

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TUTORIAL = DOCS / "adding_an_environment.md"
# A marker comment, then a fenced block: ("from" | "exec", target, language, code).
BLOCK = re.compile(r"<!-- (from|exec): (\S+) -->\n```(\w+)\n(.*?)```", re.S)
TINY_BUDGET = {
    "seeds": [0],
    "network": {"hidden": [8, 8], "activation": "relu"},
    "ppo": {"n_copies": 2, "n_steps": 16, "batch_size": 32, "n_epochs": 1},
    "pretrain_steps": 128,
    "retrain": {"steps": 64, "eval_points": 2},
    "evaluation": {"episodes": 2},
    "record_episodes": 2,
    "workers": 1,
}


def blocks(kind: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for marker, target, _, code in BLOCK.findall(TUTORIAL.read_text()):
        if marker == kind:
            found.setdefault(target, []).append(code)
    return found


def tiny(config: Path) -> dict:
    """The config as written, with budgets small enough for a test."""
    return {**yaml.safe_load(config.read_text()), **TINY_BUDGET}


@pytest.fixture(autouse=True)
def _repo_root_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))  # what PYTHONPATH=. does for the marlmod command


def test_every_python_and_yaml_block_is_an_excerpt_or_executed() -> None:
    text = TUTORIAL.read_text()
    fenced = re.findall(r"```(python|yaml)\n", text)
    assert len(fenced) == len([b for b in BLOCK.findall(text) if b[2] in ("python", "yaml")])
    excerpts = blocks("from")
    assert set(excerpts) == {"examples/coins/coins.py", "examples/coins/coins.yaml"}
    for path, codes in excerpts.items():
        source = (ROOT / path).read_text()
        for code in codes:
            assert code in source, f"tutorial excerpt no longer in {path}:\n{code}"


def test_the_documented_check_env_command_exits_0() -> None:
    (command,) = blocks("exec")["check-env"]
    bin_dir = str(Path(sys.executable).parent)  # where the `marlmod` console script is
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    result = subprocess.run(
        ["bash", "-c", command.strip() + " --steps 300"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok (0 errors, 0 warnings)" in result.stdout


def test_the_documented_registration_gives_a_working_registry_id() -> None:
    (snippet,) = blocks("exec")["registration"]
    env_id = re.search(r'"parallel", "([^"]+)"', snippet).group(1)
    try:
        exec(compile(snippet, str(TUTORIAL), "exec"), {})
        resolve_constructor(env_id)
        assert check_env(env_id, {}, steps=200) == []
    finally:
        pettingzoo.parallel_registry.pop(env_id, None)


def test_the_tutorial_config_runs_the_pipeline(tmp_path: Path) -> None:
    scenario = parse_scenario(tiny(ROOT / "examples" / "coins" / "coins.yaml"))
    run_scenario(scenario, tmp_path)
    cells = pd.read_csv(tmp_path / "coins" / "cells.csv")
    assert sorted(cells.strategy) == ["contrast", "none", "random"]
    assert cells.trait_rate_before.notna().all()


def test_the_protocol_docs_metadata_example_is_well_formed() -> None:
    (code,) = re.findall(
        r"```python\n(metadata = .*?)```", (DOCS / "environment_protocol.md").read_text(), re.S
    )
    scope: dict = {}
    exec(code, scope)
    spec, findings = read_spec(scope["metadata"])
    assert spec is not None and findings == []
