"""A third-party PettingZoo env (mpe2's Simple Adversary) behind a thin adapter keeps the protocol
and runs the pipeline, with the trait counted on the good agents only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from marlmod.check_env import check_env
from marlmod.config import parse_scenario
from marlmod.experiment import run_scenario

pytest.importorskip("mpe2", reason="optional extra: pip install -e '.[examples]'")

ROOT = Path(__file__).resolve().parent.parent
ADAPTER = "examples.mpe_adversary.decoy:parallel_env"
# Short episodes and wide decoys, so that a few random-ish episodes show the trait to locate.
WIDE_DECOYS = {"max_cycles": 10, "decoy_radius": 1.0}


@pytest.fixture(autouse=True)
def _repo_root_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))


def test_adapter_passes_check_env() -> None:
    assert check_env(ADAPTER, {"max_cycles": 10}, steps=300) == []


def test_adapter_gives_one_shape_and_role_labels() -> None:
    from examples.mpe_adversary.decoy import parallel_env

    env = parallel_env(decoy_bonus=1.0)
    observations, _ = env.reset(seed=0)
    assert {obs.shape for obs in observations.values()} == {env.observation_space("agent_0").shape}
    assert observations["adversary_0"][0] == 0.0 and observations["agent_0"][0] == 1.0
    _, _, _, _, infos = env.step({a: 0 for a in env.agents})
    assert infos["adversary_0"]["role"] == "adversary" and infos["agent_1"]["role"] == "good"


def test_adapter_scenario_runs_the_pipeline(tmp_path: Path, tiny_dict: dict) -> None:
    config = yaml.safe_load((ROOT / "examples" / "mpe_adversary" / "decoy.yaml").read_text())
    tiny_dict.update(name=config["name"], env={**config["env"], "kwargs": WIDE_DECOYS})
    run_scenario(parse_scenario(tiny_dict), tmp_path)
    cells = pd.read_csv(tmp_path / "decoy" / "cells.csv")
    assert sorted(cells.strategy) == ["contrast", "none", "random"]
    assert cells.trait_rate_before.notna().all()
