"""Are two runs the same? Compare every per-seed result file of two run directories exactly.

Determinism is a claim about files, so this checks files: every JSON result (cell metrics, relapse
curves, prunes, scores, sweeps, clusterability) must be equal value for value, and every
checkpoint's, mask file's and recorded activation's arrays bit for bit (read with
``weights_only=True``; nothing is unpickled). Used to show that the Ray backend and local workers
give identical numbers, and that a rerun reproduces a committed run.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from marlmod.errors import MarlmodError

RESULT_SUFFIXES = (".json", ".pt", ".zip", ".npz")


@dataclass
class Comparison:
    """Relative paths of result files: equal in both runs, different, or in one run only."""

    same: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.different and bool(self.same)

    def summary(self) -> str:
        lines = [
            f"{len(self.same)} result files identical, {len(self.different)} different, "
            f"{len(self.only_a)} only in the first run, {len(self.only_b)} only in the second"
        ]
        lines += [f"  differs: {path}" for path in self.different]
        return "\n".join(lines)


def result_files(run_dir: Path) -> set[str]:
    """Per-seed result files, relative to the run directory."""
    if not run_dir.is_dir():
        raise MarlmodError(f"not a run directory: {run_dir}")
    return {
        str(path.relative_to(run_dir))
        for path in run_dir.glob("seed_*/**/*")
        # dot-files are temporaries of interrupted atomic writes (marlmod.atomic), not results
        if path.is_file() and path.suffix in RESULT_SUFFIXES and not path.name.startswith(".")
    }


def compare_runs(a: Path, b: Path) -> Comparison:
    files_a, files_b = result_files(a), result_files(b)
    comparison = Comparison(only_a=sorted(files_a - files_b), only_b=sorted(files_b - files_a))
    for rel in sorted(files_a & files_b):
        same = same_file(a / rel, b / rel)
        (comparison.same if same else comparison.different).append(rel)
    return comparison


def same_file(a: Path, b: Path) -> bool:
    if a.suffix == ".json":
        return json.loads(a.read_text()) == json.loads(b.read_text())
    if a.suffix == ".zip":
        return same_tensors(zip_tensors(a), zip_tensors(b))
    if a.suffix == ".npz":
        return same_arrays(a, b)
    return same_tensors(load_tensors(a), load_tensors(b))


def zip_tensors(path: Path) -> dict[str, dict]:
    """The tensor entries (policy and optimiser state) of an SB3 checkpoint."""
    out = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(".pth"):
                with archive.open(name) as stream:
                    out[name] = torch.load(stream, weights_only=True, map_location="cpu")
    return out


def same_arrays(a: Path, b: Path) -> bool:
    """Recorded activations: every array equal, bit for bit (no pickled objects allowed)."""
    with np.load(a, allow_pickle=False) as x, np.load(b, allow_pickle=False) as y:
        return x.files == y.files and all(
            x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]) for k in x.files
        )


def load_tensors(path: Path) -> object:
    return torch.load(path, weights_only=True, map_location="cpu")


def same_tensors(a: object, b: object) -> bool:
    """Deep equality where tensors must match exactly (dtype, shape and every bit)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_tensors(x, y) for x, y in zip(a, b, strict=True))
    return a == b
