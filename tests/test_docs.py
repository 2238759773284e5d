"""The docs site builds with --strict (no broken link or reference), its configuration reference
is generated from the schema and describes every field, and no tracked file names runs by
internal work periods."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from marlmod.config import Scenario

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))


def schema_keys(model: type, prefix: str = "") -> list[str]:
    from docs_hooks import nested_model

    keys = []
    for name, field in model.model_fields.items():
        keys.append(f"{prefix}{name}")
        sub = nested_model(field.annotation)
        if sub is not None:
            keys += schema_keys(sub, f"{prefix}{name}.")
    return keys


def test_the_configuration_reference_describes_every_field() -> None:
    pytest.importorskip("mkdocs")
    from docs_hooks import config_page

    rows = {
        line.split("|")[1].strip().strip("`"): line.split("|")[4].strip()
        for line in config_page().splitlines()
        if line.startswith("| `")
    }
    keys = schema_keys(Scenario)
    assert set(keys) == set(rows)
    assert [key for key in keys if not rows[key]] == []  # a new field needs a description


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (the docs extra)")
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": str(Path(sys.executable).parent)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "reference" / "api.html").stat().st_size > 100_000
    assert (tmp_path / "site" / "results" / "aggression" / "relapse.png").is_file()


def test_no_tracked_file_names_internal_work_periods() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    forbidden = "ses" + "sion"  # spelt in two parts so that this file does not name it
    word = re.compile(rf"(?<![_\w]){forbidden}(?![_\w])", re.IGNORECASE)
    named = []
    for name in files:
        path = ROOT / name
        if path.suffix in (".png", ".gif", ".npz", ".pt", ".zip") or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        named += [f"{name}: {line.strip()[:80]}" for line in text.splitlines() if word.search(line)]
    assert named == []
