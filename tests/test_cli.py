"""The CLI: user errors are one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from marlmod.config import load_scenario
from marlmod.experiment import prepare_run_dir

ROOT = Path(__file__).resolve().parent.parent
TINY_YAML = ROOT / "configs" / "tiny.yaml"


def marlmod(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "marlmod.cli", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"prune": {"strategies": ["magic"]}}, "unknown strategy 'magic'"),
        ({"typo_key": 1}, "at typo_key: unknown key"),
        ({"env": {"id": "nope/env-v0", "bonus": 1.0, "trait": "attack"}}, "unknown environment"),
    ],
)
def test_bad_config_is_one_clear_line(
    tmp_path: Path, tiny_dict: dict, config: dict, message: str
) -> None:
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(tiny_dict.get(key), dict):
            tiny_dict[key].update(value)
        else:
            tiny_dict[key] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tiny_dict))
    result = marlmod("run", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_file_and_missing_run_dir(tmp_path: Path) -> None:
    for args in (("run", str(tmp_path / "none.yaml")), ("report", str(tmp_path / "none"))):
        result = marlmod(*args)
        assert result.returncode == 2 and "not found" in result.stderr
        assert "Traceback" not in result.stderr


def test_validate_and_envs_list(tmp_path: Path) -> None:
    ok = marlmod("validate", str(TINY_YAML))
    assert ok.returncode == 0 and "ok" in ok.stdout
    assert "marlmod/gathering-v0" in marlmod("envs").stdout


def test_validate_and_run_list_every_problem(tmp_path: Path, tiny_dict: dict) -> None:
    tiny_dict["ppo"]["learnin_rate"] = 1
    tiny_dict["prune"]["fraction"] = 2
    del tiny_dict["seeds"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tiny_dict))
    expected = [
        f"marlmod: error: {path}: 3 problems:",
        "  at seeds: required key is missing",
        "  at ppo.learnin_rate: unknown key",
        "  at prune.fraction: Input should be less than or equal to 1",
    ]
    for args in (("validate", str(path)), ("run", str(path), "--out", str(tmp_path / "out"))):
        result = marlmod(*args)
        assert result.returncode == 2, args
        assert result.stderr.splitlines() == expected, args


def test_validate_with_set_reports_the_edited_files_hash(tmp_path: Path, tiny_dict: dict) -> None:
    tiny_dict.update(seeds=[0, 2], pretrain_steps=512)
    edited = tmp_path / "tiny.yaml"
    edited.write_text(yaml.safe_dump(tiny_dict))
    result = marlmod(
        "validate", str(TINY_YAML), "--set", "seeds=[0, 2]", "--set=pretrain_steps=512"
    )
    assert result.returncode == 0, result.stderr
    assert f"(config hash {load_scenario(edited).digest})" in result.stdout
    assert load_scenario(edited).digest != load_scenario(TINY_YAML).digest


def test_run_with_set_is_pinned_to_the_resolved_config(tmp_path: Path) -> None:
    """The run directory holds the plain tiny config's results; the --set run is refused under
    the overridden config's hash, so run hashes (and would store) the resolved config."""
    prepare_run_dir(load_scenario(TINY_YAML), tmp_path / "tiny")
    overridden = load_scenario(TINY_YAML, ["pretrain_steps=512"]).digest
    result = marlmod("run", str(TINY_YAML), "--out", str(tmp_path), "--set", "pretrain_steps=512")
    assert result.returncode == 2
    assert f"this one {overridden})" in result.stderr


def test_bad_set_is_one_clear_line(tmp_path: Path) -> None:
    for assignment, message in [
        ("ppo.learnin_rate=1", "at ppo.learnin_rate: unknown key"),
        ("seeds", "expected key.path=value"),
    ]:
        for command in (("validate",), ("run", "--out", str(tmp_path))):
            result = marlmod(*command, str(TINY_YAML), "--set", assignment)
            assert result.returncode == 2 and message in result.stderr, (command, result.stderr)
            assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_command_is_a_usage_error() -> None:
    result = marlmod("frobnicate")
    assert result.returncode != 0 and "Traceback" not in result.stderr
