"""Full disk: a write that runs out of space mid-file leaves no partial file, the error (one line,
exit 2) names the file and the space left, and a rerun after freeing space resumes to an
undisturbed run's results (fault injection: writes fail with ENOSPC halfway through)."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import pytest
import yaml
from stable_baselines3.common import base_class

from marlmod.atomic import write_with
from marlmod.cli import main
from marlmod.compare import compare_runs
from marlmod.config import parse_scenario
from marlmod.errors import DiskFull
from marlmod.experiment import run_scenario
from marlmod.lock import HOLDER_FILE


def half_then_enospc(tmp: Path) -> None:
    """A writer that gets half its bytes onto the disk, then finds it full."""
    with open(tmp, "wb") as handle:
        handle.write(b"x" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")


def test_enospc_midway_leaves_no_file_and_names_the_file_and_free_space(tmp_path: Path) -> None:
    target = tmp_path / "stage" / "model.zip"
    with pytest.raises(DiskFull) as full:
        write_with(target, half_then_enospc)
    assert str(full.value).startswith(f"no space left writing {target} (")
    assert "MiB free on its filesystem" in str(full.value)
    assert list(target.parent.iterdir()) == []  # neither the target nor its temporary


def test_enospc_wrapped_by_a_library_is_still_a_full_disk(tmp_path: Path) -> None:
    """torch and zipfile report a failed write as their own error, caused by the OSError."""

    def torch_like(tmp: Path) -> None:
        try:
            half_then_enospc(tmp)
        except OSError as err:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0") from err

    with pytest.raises(DiskFull):
        write_with(tmp_path / "masks.pt", torch_like)
    assert list(tmp_path.iterdir()) == []


def fill_disk_at_save(monkeypatch: pytest.MonkeyPatch, nth: int) -> list[int]:
    """SB3's checkpoint writer fails halfway through its ``nth`` file with ENOSPC."""
    real = base_class.save_to_zip_file
    saves = [0]

    def save_to_zip_file(path: Path, **kwargs: object) -> None:
        saves[0] += 1
        if saves[0] == nth:
            half_then_enospc(Path(path))
        real(path, **kwargs)

    monkeypatch.setattr(base_class, "save_to_zip_file", save_to_zip_file)
    return saves


def test_full_disk_mid_run_exits_2_with_one_line_and_a_rerun_resumes(
    tmp_path: Path, tiny_dict: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_dict))
    out = tmp_path / "out"
    with monkeypatch.context() as patched:
        fill_disk_at_save(patched, nth=2)  # the control model (the pretrained one is kept)
        argv = ["marlmod", "run", str(config), "--out", str(out), "--workers", "1"]
        patched.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exit_:
            main()
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()[-1:]
    model = out / "tiny" / "seed_0" / "control_model" / "model.zip"
    assert line.startswith(f"marlmod: error: no space left writing {model} (")
    run_dir = out / "tiny"
    assert not list(model.parent.glob("*"))  # no partial checkpoint, no temporary
    assert (run_dir / "seed_0" / "pretrain" / "metrics.json").is_file()  # kept
    assert not (run_dir / HOLDER_FILE).exists()

    pretrained = (run_dir / "seed_0" / "pretrain" / "model.zip").stat().st_mtime_ns
    scenario = parse_scenario(tiny_dict)
    run_scenario(scenario, out, workers=1)  # space freed: the rerun resumes
    assert (run_dir / "seed_0" / "pretrain" / "model.zip").stat().st_mtime_ns == pretrained
    run_scenario(scenario, tmp_path / "undisturbed", workers=1)
    comparison = compare_runs(run_dir, tmp_path / "undisturbed" / "tiny")
    assert comparison.identical and not comparison.only_a and not comparison.only_b
