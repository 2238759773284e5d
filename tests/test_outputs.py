"""Side outputs of a run: TensorBoard logs of every training run, and episode GIFs."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import pytest

from marlmod.config import parse_scenario
from marlmod.episodes import write_episode_gif
from marlmod.errors import MarlmodError
from marlmod.experiment import run_scenario


def test_tensorboard_logs_and_episode_gifs(tmp_path: Path, tiny_dict: dict) -> None:
    pytest.importorskip("tensorboard")
    tiny_dict["tensorboard"] = True
    run_scenario(parse_scenario(tiny_dict), tmp_path)
    run_dir = tmp_path / "tiny"
    logs = {p.parent.name.rsplit("_", 1)[0] for p in run_dir.glob("tensorboard/seed_0/*/events*")}
    assert {"pretrain", "control", "scratch", "retrain_none", "retrain_contrast"} <= logs

    gif = write_episode_gif(run_dir, 0, "contrast", tmp_path / "gifs")
    assert gif.name == "seed0_contrast.gif"
    frames = imageio.mimread(gif)
    assert len(frames) == 1 + tiny_dict["env"]["kwargs"]["max_cycles"] and frames[0].ndim == 3

    with pytest.raises(MarlmodError, match="no retrained model for strategy 'magic'"):
        write_episode_gif(run_dir, 0, "magic", tmp_path / "gifs")
