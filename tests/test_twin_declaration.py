"""An env declares its batched twin in ``metadata["marlmod"]["batched"]``: no registry in marlmod,
used only for the exact env class, a bad declaration is one clear error, and reading envs and their
protocol stays free of torch."""

from __future__ import annotations

import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from envs.gathering import GatheringEnv
from envs.gathering_batched import BatchedGathering
from marlmod.config import parse_scenario
from marlmod.environments import resolve_env
from marlmod.errors import MarlmodError
from marlmod.train import make_venv
from marlmod.vec_env import SharedPolicyVecEnv, batched_venv

ROOT = Path(__file__).resolve().parent.parent
GATHERING = partial(GatheringEnv, grid_size=5, max_cycles=20)

THIRD_PARTY = """
from envs.gathering import GatheringEnv
from envs.gathering_batched import BatchedGathering


class Shaded(GatheringEnv):
    metadata = {
        **GatheringEnv.metadata,
        "marlmod": {**GatheringEnv.metadata["marlmod"], "batched": "shaded_game:ShadedTwin"},
    }


class ShadedTwin(BatchedGathering):
    env_class = Shaded
"""


def test_importing_envs_and_reading_their_protocol_loads_no_torch() -> None:
    """``marlmod validate`` reads envs and their metadata; twins (SB3, torch) load only to train."""
    code = (
        "import sys, envs, envs.gathering, envs.signalling, marlmod.environments as e\n"
        "for cls in (envs.gathering.GatheringEnv, envs.signalling.SignallingEnv):\n"
        "    assert e.read_protocol(cls(), cls.__name__).batched\n"
        "heavy = {'torch', 'stable_baselines3', 'supersuit'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_declared_twin_is_used_for_the_exact_class_only(tiny_dict: dict) -> None:
    scenario = parse_scenario(tiny_dict)
    assert isinstance(make_venv(scenario, GATHERING), BatchedGathering)

    class Variant(GatheringEnv):  # inherits the metadata, may change the rules
        pass

    assert isinstance(make_venv(scenario, partial(Variant, grid_size=5)), SharedPolicyVecEnv)


def test_without_a_declaration_training_uses_per_copy_envs(
    tiny_dict: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The metadata is the only place marlmod learns of a twin."""
    monkeypatch.delitem(GatheringEnv.metadata["marlmod"], "batched")
    assert isinstance(make_venv(parse_scenario(tiny_dict), GATHERING), SharedPolicyVecEnv)


def test_an_env_outside_envs_can_ship_its_own_twin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shaded_game.py").write_text(THIRD_PARTY)
    monkeypatch.syspath_prepend(str(tmp_path))
    from shaded_game import Shaded, ShadedTwin

    venv = batched_venv(partial(Shaded, grid_size=5), 2)
    assert type(venv) is ShadedTwin and venv.template.grid_size == 5


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("envs.no_such_module:BatchedGathering", "cannot be imported"),
        ("envs.gathering_batched:NoSuchTwin", "cannot be imported"),
        (":BatchedGathering", "cannot be imported"),
        ("envs.gathering:GatheringEnv", "not a twin class"),
        ("envs.gathering_batched.BatchedGathering", "not an import path"),
        (42, "not an import path"),
    ],
)
def test_a_bad_twin_declaration_is_one_clear_error(
    tiny_dict: dict, monkeypatch: pytest.MonkeyPatch, path: object, problem: str
) -> None:
    monkeypatch.setitem(GatheringEnv.metadata["marlmod"], "batched", path)
    with pytest.raises(MarlmodError) as caught:
        make_venv(parse_scenario(tiny_dict), GATHERING)
    message = str(caught.value)
    assert "GatheringEnv" in message and repr(path) in message and problem in message
    assert "\n" not in message


def test_a_malformed_twin_path_fails_when_the_config_is_resolved(
    tiny_dict: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked without importing the twin, so a typo surfaces before any training starts."""
    monkeypatch.setitem(GatheringEnv.metadata["marlmod"], "batched", "no_colon")
    with pytest.raises(MarlmodError, match="'no_colon', not an import path"):
        resolve_env(parse_scenario(tiny_dict).env)
