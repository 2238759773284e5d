"""``marlmod compare``: identical runs pass; any changed value, tensor or missing file is named."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

from marlmod.cli import app
from marlmod.compare import compare_runs


def make_run(root: Path) -> Path:
    cell = root / "seed_0" / "contrast"
    cell.mkdir(parents=True)
    (cell / "cell.json").write_text(json.dumps({"trait_rate": 0.25, "curve": [1.0, 2.0]}))
    torch.save({"policy.weight": torch.ones(3, 2)}, cell / "masks.pt")
    weights = root / "weights.pth"
    torch.save({"w": torch.arange(4.0)}, weights)
    with zipfile.ZipFile(cell / "model.zip", "w") as archive:
        archive.write(weights, "policy.pth")
        archive.writestr("data", "{}")
    weights.unlink()
    np.savez(root / "seed_0" / "activations.npz", acts=np.eye(3, dtype=np.float32))
    (root / "summary.md").write_text("tables are derived, not compared")
    return root


def test_identical_runs_compare_equal(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    (b / "summary.md").write_text("different text in a derived file")
    comparison = compare_runs(a, b)
    assert comparison.identical and len(comparison.same) == 4
    result = CliRunner().invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 0 and "4 result files identical" in result.output


def test_a_changed_value_tensor_or_array_is_named(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    cell = b / "seed_0" / "contrast"
    (cell / "cell.json").write_text(json.dumps({"trait_rate": 0.25, "curve": [1.0, 2.0000001]}))
    torch.save({"policy.weight": torch.ones(3, 2).double()}, cell / "masks.pt")  # dtype only
    np.savez(b / "seed_0" / "activations.npz", acts=np.eye(3, dtype=np.float32) * 1.0000001)
    comparison = compare_runs(a, b)
    assert comparison.different == [
        "seed_0/activations.npz",
        "seed_0/contrast/cell.json",
        "seed_0/contrast/masks.pt",
    ]
    result = CliRunner().invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 1 and "differs: seed_0/contrast/cell.json" in result.output


def test_checkpoint_weights_are_compared_bit_for_bit(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    weights = tmp_path / "w.pth"
    torch.save({"w": torch.arange(4.0) + 1e-6}, weights)
    with zipfile.ZipFile(b / "seed_0" / "contrast" / "model.zip", "w") as archive:
        archive.write(weights, "policy.pth")
        archive.writestr("data", "{}")
    assert compare_runs(a, b).different == ["seed_0/contrast/model.zip"]


def test_missing_files_fail_unless_allowed(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    (b / "seed_0" / "contrast" / "masks.pt").unlink()
    comparison = compare_runs(a, b)
    assert comparison.only_a == ["seed_0/contrast/masks.pt"] and comparison.identical
    assert CliRunner().invoke(app, ["compare", str(a), str(b)]).exit_code == 1
    allowed = CliRunner().invoke(app, ["compare", str(a), str(b), "--allow-missing"])
    assert allowed.exit_code == 0


def test_not_a_run_directory_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "nope"), str(tmp_path)])
    assert result.exit_code != 0
    assert "not a run directory" in str(result.exception)


def test_temporaries_of_interrupted_writes_are_not_results(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    # what a worker killed inside marlmod.atomic.atomic_path leaves behind
    (b / "seed_0" / "contrast" / ".cell.json.k3j9x.tmp.json").write_text("{")
    comparison = compare_runs(a, b)
    assert comparison.identical and not comparison.only_b
