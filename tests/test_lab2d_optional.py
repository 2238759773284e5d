"""DeepMind Lab2D stays optional: without it ``import envs`` works (torch-free), and building a
Lab2D game or validating its config says which extra to install, in one line with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WITHOUT_DMLAB2D = "import sys; sys.modules['dmlab2d'] = None\n"  # makes `import dmlab2d` fail


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_DMLAB2D + code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_envs_import_without_dmlab2d_and_without_torch() -> None:
    out = run(
        "import envs, envs.commons_harvest, envs.clean_up\n"
        "assert 'torch' not in sys.modules\n"
        "try:\n"
        "    envs.clean_up.CleanUpEnv()\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    assert out.returncode == 0, out.stderr
    assert "pip install 'marlmod[lab2d]'" in out.stdout


def test_validating_a_lab2d_config_without_dmlab2d_names_the_extra() -> None:
    out = run(
        "from marlmod.cli import main\n"
        "sys.argv = ['marlmod', 'validate', 'configs/commons_harvest.yaml']\n"
        "main()\n"
    )
    assert out.returncode == 2
    assert "marlmod/commons_harvest-v0' cannot be built" in out.stderr
    assert "marlmod[lab2d]" in out.stderr and "Traceback" not in out.stderr
