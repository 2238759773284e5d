"""Checking a config loads no learning library: ``marlmod validate`` answers in a moment, and the
strategy registry's names and needs are read without importing any scorer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "stable_baselines3", "sklearn")

# Refuses to import the heavy libraries, so that the command fails at the import that pulled one
# in (naming it) instead of merely being slow.
BLOCKER = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HEAVY!r}:
            raise ImportError(f"blocked import of {{name}}")
        return None
sys.meta_path.insert(0, Block())
"""


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_importing_the_config_and_the_registry_loads_no_learning_library() -> None:
    code = (
        "import sys, marlmod.config, marlmod.strategies.registry, marlmod.locate\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("config", ["configs/tiny.yaml", "configs/deception_granularity.yaml"])
def test_validate_runs_without_torch_sb3_or_sklearn(config: str) -> None:
    code = BLOCKER + (
        f"sys.argv = ['marlmod', 'validate', {config!r}]\nfrom marlmod.cli import main\nmain()\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert f"{config}: ok" in result.stdout


def test_the_blocker_blocks() -> None:
    """Without this, the test above could pass because the blocker does nothing."""
    result = run_python(BLOCKER + "import torch\n")
    assert result.returncode != 0 and "blocked import of torch" in result.stderr
