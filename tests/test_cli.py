"""The CLI: user errors are one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml


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
    root = Path(__file__).resolve().parent.parent
    ok = marlmod("validate", str(root / "configs" / "tiny.yaml"))
    assert ok.returncode == 0 and "ok" in ok.stdout
    assert "marlmod/gathering-v0" in marlmod("envs").stdout


def test_unknown_command_is_a_usage_error() -> None:
    result = marlmod("frobnicate")
    assert result.returncode != 0 and "Traceback" not in result.stderr
