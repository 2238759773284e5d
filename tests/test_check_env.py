"""``check-env``: each planted protocol mistake is named, a clean env passes with exit code 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from marlmod.check_env import Finding, Play, Spec, Step, check_env, check_reward_sum, read_spec
from marlmod.errors import MarlmodError

TESTS = Path(__file__).resolve().parent
SMALL = {"grid_size": 5, "max_cycles": 20}
STEPS = 300


@pytest.fixture(autouse=True)
def _broken_envs_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))


def errors(env_id: str) -> dict[str, list[Finding]]:
    """Error findings by check name."""
    found: dict[str, list[Finding]] = {}
    for finding in check_env(env_id, SMALL, steps=STEPS):
        if finding.severity == "error":
            found.setdefault(finding.check, []).append(finding)
    return found


def marlmod_check_env(env_id: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    args = ["check-env", env_id, "--kwargs", json.dumps(SMALL), "--steps", str(STEPS)]
    return subprocess.run(
        [sys.executable, "-m", "marlmod.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_clean_env_passes_with_no_findings_and_exit_0() -> None:
    assert check_env("broken_envs:declared", SMALL, steps=STEPS) == []
    result = marlmod_check_env("broken_envs:DeclaredGathering")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok (0 errors, 0 warnings)" in result.stdout


def test_gathering_as_registered_passes_clean() -> None:
    assert check_env("marlmod/gathering-v0", SMALL, steps=STEPS) == []


def test_undeclared_cost_is_a_warning_naming_the_line_to_add() -> None:
    findings = check_env("broken_envs:UndeclaredCost", SMALL, steps=STEPS)
    assert [(f.check, f.severity) for f in findings] == [("reward-sum", "warning")]
    assert "'costs': ('zap_cost',)" in findings[0].fix


def test_missing_labels_are_named_and_the_cli_exits_1() -> None:
    found = errors("broken_envs:MissingLabels")
    assert set(found) == {"labels"}
    assert "'behaviour'] is missing" in found["labels"][0].problem
    result = marlmod_check_env("broken_envs:MissingLabels")
    assert result.returncode == 1 and "FAILED" in result.stdout
    assert "fix:" in result.stdout and "Traceback" not in result.stderr


def test_bonus_that_is_not_turned_off_is_caught() -> None:
    found = errors("broken_envs:BonusNeverOff")
    assert set(found) == {"bonus-off"}
    assert "aggression_bonus=0 still pays" in found["bonus-off"][0].problem


def test_non_determinism_under_seed_is_caught() -> None:
    found = errors("broken_envs:Unseeded")
    assert "determinism" in found and "pettingzoo-seed" in found
    assert "self.np_random" in found["determinism"][0].fix


def test_observations_outside_the_declared_space_are_caught() -> None:
    found = errors("broken_envs:ObsOutOfSpace")
    assert set(found) == {"observations"}
    assert "values in [0, 2]" in found["observations"][0].problem


def test_missing_protocol_is_caught_and_user_errors_are_marlmod_errors() -> None:
    assert set(errors("broken_envs:NoProtocol")) == {"metadata"}
    with pytest.raises(MarlmodError, match="use --bonus"):
        check_env("broken_envs:declared", {**SMALL, "aggression_bonus": 1.0})
    with pytest.raises(MarlmodError, match="cannot import"):
        check_env("no_such_module:env", {})


@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        ({"behaviours": ("a",)}, "bonus_kwarg is None"),
        ({"bonus_kwarg": "b", "behaviours": "a"}, "not a non-empty tuple"),
        ({"bonus_kwarg": "b", "behaviours": ("a",), "opportunities": ("z",)}, "not behaviours"),
    ],
)
def test_malformed_metadata_is_named(meta: dict, problem: str) -> None:
    _, findings = read_spec({"marlmod": meta})
    assert any(problem in f.problem and f.severity == "error" for f in findings)


def test_an_unaccounted_reward_component_is_an_error() -> None:
    info = {"behaviour": {"a": False}, "task_reward": 1.0, "bonus_reward": 0.0}
    step = Step(("p",), {"p": 0}, {"p": 1.5}, {"p": False}, {"p": False}, {"p": info})
    findings = check_reward_sum(Play([{}], [step]), Spec("b", ("a",)))
    assert [f.severity for f in findings] == ["error"] and "by 0.5" in findings[0].problem
