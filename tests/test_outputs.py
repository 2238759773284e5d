"""Side outputs of a run: TensorBoard logs of every training run, and episode GIFs."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import pytest

from marlmod.config import parse_scenario
from marlmod.episodes import write_episode_gifs
from marlmod.errors import MarlmodError
from marlmod.experiment import run_scenario


def test_tensorboard_logs_and_episode_gifs(tmp_path: Path, tiny_dict: dict) -> None:
    pytest.importorskip("tensorboard")
    tiny_dict["tensorboard"] = True
    run_scenario(parse_scenario(tiny_dict), tmp_path)
    run_dir = tmp_path / "tiny"
    logs = {p.parent.name.rsplit("_", 1)[0] for p in run_dir.glob("tensorboard/seed_0/*/events*")}
    assert {"pretrain", "control", "scratch", "retrain_none", "retrain_contrast"} <= logs

    gifs = write_episode_gifs(run_dir, 0, "contrast", tmp_path / "gifs")
    assert [p.name for p in gifs] == [
        f"seed0_contrast_{s}.gif" for s in ("before", "pruned", "retrained")
    ]
    frames = imageio.mimread(gifs[0])
    assert len(frames) > 1 and frames[0].ndim == 3

    with pytest.raises(MarlmodError, match="no retrained model for strategy 'magic'"):
        write_episode_gifs(run_dir, 0, "magic", tmp_path / "gifs")
