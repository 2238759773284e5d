"""Checkpoints load without unpickling anything, and a planted pickle is refused unexecuted."""

from __future__ import annotations

import base64
import json
import pickle
import tempfile
import zipfile
from pathlib import Path

import pytest
import torch

from marlmod.config import Scenario
from marlmod.environments import resolve_env
from marlmod.errors import MarlmodError
from marlmod.train import build_model, learn, load_model, pickled_entries, save_model


class Planted:
    """Unpickling this writes a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def saved_model(scenario: Scenario, path: Path):
    make_env = resolve_env(scenario.env).factory(1.0)
    model = build_model(scenario, make_env, seed=0)
    learn(model, 64)
    save_model(model, path)
    return model


def test_load_restores_weights_without_unpickling(
    tiny_scenario: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = saved_model(tiny_scenario, tmp_path / "model.zip")
    assert "policy_class" in pickled_entries(tmp_path / "model.zip")

    def refuse(*args, **kwargs):
        raise AssertionError("cloudpickle.loads was called")

    monkeypatch.setattr("stable_baselines3.common.save_util.cloudpickle.loads", refuse)
    make_env = resolve_env(tiny_scenario.env).factory(0.0)
    loaded = load_model(tmp_path / "model.zip", tiny_scenario, make_env, seed=0)
    for a, b in zip(model.policy.parameters(), loaded.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    learn(loaded, 64)  # and it still trains


def test_planted_pickle_is_refused_and_never_runs(tiny_scenario: Scenario, tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    saved_model(tiny_scenario, path)
    marker = tmp_path / "marker.txt"
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(files["data"])
    data["surprise"] = {":serialized:": base64.b64encode(pickle.dumps(Planted(marker))).decode()}
    files["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    make_env = resolve_env(tiny_scenario.env).factory(0.0)
    with pytest.raises(
        MarlmodError, match="pickled entries marlmod does not rebuild \\(surprise\\)"
    ):
        load_model(path, tiny_scenario, make_env, seed=0)
    assert not marker.exists()


def test_training_leaves_no_sb3_log_folders_in_the_temp_dir(
    tiny_scenario: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SB3 makes ``$TMPDIR/SB3-<timestamp>`` on every ``learn`` when TensorBoard is off."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    model = build_model(tiny_scenario, resolve_env(tiny_scenario.env).factory(1.0), seed=0)
    learn(model, 64)
    learn(model, 64, continue_run=True)
    assert model.num_timesteps == 128
    assert not list(tmp_path.glob("SB3-*"))
    assert "train/value_loss" in model.logger.name_to_value  # still recorded
