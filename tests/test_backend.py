"""``ppo.backend``: one explicit choice, the default and its compiler fallback, and digests that
keep every existing run directory resumable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from stable_baselines3 import PPO

import marlmod.config
import marlmod.config_sections
from marlmod.config import DEFAULT_BACKEND, load_scenario, parse_scenario
from marlmod.config_files import resolve_file
from marlmod.environments import resolve_env
from marlmod.errors import MarlmodError
from marlmod.experiment import stored_digest, stored_scenario
from marlmod.lean_ppo import LeanPPO
from marlmod.train import build_model, learn, load_model, save_model

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
# Runs whose stored config_hash was written under an older schema (before later prune fields);
# they resume through stored_digest, which re-reads the stored config under today's schema.
REHASHED_BEFORE = {"deception"}


def committed_runs() -> list[tuple[Path, Path]]:
    runs = []
    for config in CONFIGS:
        run = ROOT / "results" / load_scenario(config).name / "run.json"
        if run.is_file():
            runs.append((config, run))
    return runs


def test_every_committed_config_names_its_backend() -> None:
    """Resolved through ``extends``: the backend may come from a base file, never the default."""
    for config in CONFIGS:
        assert "backend" in resolve_file(config)["ppo"], config.name


def test_committed_runs_keep_their_digests() -> None:
    """Every committed run still resumes under its config; those whose stored hash was today's
    digest before ``ppo.backend`` existed still hash to exactly it (the compiled one included)."""
    runs = committed_runs()
    assert {"aggression", "aggression_five_compiled", "deception"} <= {
        load_scenario(config).name for config, _ in runs
    }
    for config, run in runs:
        scenario, info = load_scenario(config), json.loads(run.read_text())
        assert stored_digest(info, run) == scenario.digest, run
        if scenario.name not in REHASHED_BEFORE:
            assert scenario.digest == info["config_hash"], run


def test_old_run_configs_keep_their_backend_whatever_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run.json from before ``ppo.backend`` names ``compile`` (or nothing): it re-reads as the
    backend that trained it, not as today's default."""
    monkeypatch.setattr(marlmod.config_sections, "DEFAULT_BACKEND", "compiled")
    monkeypatch.setattr("marlmod.compiled_update.cpp_compiler", lambda: "g++")
    older = 0
    for config, run in committed_runs():
        info, scenario = json.loads(run.read_text()), load_scenario(config)
        older += "backend" not in info["config"]["ppo"]  # made before ppo.backend existed
        assert stored_digest(info, run) == scenario.digest, run
        # what `marlmod episodes` loads the run's models with
        assert stored_scenario(info, run).ppo.backend == scenario.ppo.backend, run
    assert older >= 3, "the committed runs from before ppo.backend are the point of this test"


def test_sb3_and_lean_hash_alike_and_compiled_apart(tiny_dict: dict) -> None:
    digests = {}
    for backend in ("sb3", "lean", "compiled"):
        tiny_dict["ppo"]["backend"] = backend
        digests[backend] = parse_scenario(tiny_dict).digest
    assert digests["sb3"] == digests["lean"] != digests["compiled"]


def test_the_legacy_compile_key_is_refused_with_its_replacement(tiny_dict: dict) -> None:
    tiny_dict["ppo"]["compile"] = True
    with pytest.raises(MarlmodError, match="ppo.compile was replaced by ppo.backend"):
        parse_scenario(tiny_dict)


def test_an_unset_backend_is_the_default_resolved_into_the_config(tiny_dict: dict) -> None:
    del tiny_dict["ppo"]["backend"]  # the tiny config pins one
    scenario = parse_scenario(tiny_dict)
    assert scenario.ppo.backend == DEFAULT_BACKEND
    assert scenario.model_dump()["ppo"]["backend"] == DEFAULT_BACKEND  # what run.json stores
    tiny_dict["ppo"]["backend"] = DEFAULT_BACKEND
    assert parse_scenario(tiny_dict).digest == scenario.digest


def test_a_default_compiled_falls_back_to_lean_without_a_compiler(
    tiny_dict: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    del tiny_dict["ppo"]["backend"]  # the tiny config pins one
    monkeypatch.setattr(marlmod.config_sections, "DEFAULT_BACKEND", "compiled")
    monkeypatch.setattr("marlmod.compiled_update.cpp_compiler", lambda: "g++")
    compiled = parse_scenario(tiny_dict)
    assert compiled.ppo.backend == "compiled"
    monkeypatch.setattr("marlmod.compiled_update.cpp_compiler", lambda: None)
    fallen_back = parse_scenario(tiny_dict)
    assert fallen_back.ppo.backend == "lean"  # the digest hashes what trains
    assert fallen_back.digest != compiled.digest
    tiny_dict["ppo"]["backend"] = "compiled"  # asked for explicitly: no fallback
    assert parse_scenario(tiny_dict).ppo.backend == "compiled"


def test_the_fallback_warns_in_one_line_once_per_process() -> None:
    script = (
        "import marlmod.config as c, marlmod.config_sections as s, marlmod.compiled_update as u\n"
        "s.DEFAULT_BACKEND = 'compiled'\n"
        "u.cpp_compiler = lambda: None\n"
        "from tests.conftest import TINY\n"
        "unset = {**TINY, 'ppo': {k: v for k, v in TINY['ppo'].items() if k != 'backend'}}\n"
        "print(*(c.parse_scenario(unset).ppo.backend for _ in range(3)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.split() == ["lean"] * 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "falls back to lean" in lines[0], done.stderr


@pytest.mark.parametrize(("backend", "cls"), [("sb3", PPO), ("lean", LeanPPO)])
def test_each_backend_builds_and_loads_its_own_model(
    tiny_dict: dict, tmp_path: Path, backend: str, cls: type
) -> None:
    tiny_dict["ppo"]["backend"] = backend
    scenario = parse_scenario(tiny_dict)
    make_env = resolve_env(scenario.env).factory(1.0)
    model = build_model(scenario, make_env, seed=0)
    assert type(model) is cls
    save_model(model, tmp_path / "model.zip")
    assert type(load_model(tmp_path / "model.zip", scenario, make_env, seed=0)) is cls


def test_sb3_and_lean_train_bitwise_alike_through_build_model(tiny_dict: dict) -> None:
    """Why the two may share a digest."""
    weights = []
    for backend in ("sb3", "lean"):
        tiny_dict["ppo"]["backend"] = backend
        scenario = parse_scenario(tiny_dict)
        model = build_model(scenario, resolve_env(scenario.env).factory(1.0), seed=0)
        learn(model, 128)
        weights.append(model.policy.state_dict())
    sb3, lean = weights
    assert all(torch.equal(sb3[key], lean[key]) for key in sb3)
