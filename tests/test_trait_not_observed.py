"""A seed whose pretrained policy never shows the trait on the recorded steps (its pretraining
collapsed: seen with gradient routing on the emergent-aggression game) fails alone: the other
seeds finish, the failure is recorded and reported, and the run exits with the usual error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from marlmod.config import parse_scenario
from marlmod.errors import MarlmodError, TaskFailed, TraitNotObserved
from marlmod.experiment import run_scenario
from marlmod.failures import load_failures
from marlmod.seed_locate import LocateAndPrune
from marlmod.strategies.common import trait_groups


def test_no_trait_step_is_a_failed_task_not_a_bad_config() -> None:
    with pytest.raises(TraitNotObserved, match="trait occurred on 0 of 5"):
        trait_groups(np.zeros(5, dtype=bool))
    assert issubclass(TraitNotObserved, TaskFailed)


def test_a_seed_without_the_trait_fails_alone_and_the_others_finish(
    tmp_path: Path, tiny_dict: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = LocateAndPrune.evidence

    def no_trait_on_seed_0(self, model):
        ev = real(self, model)
        return dataclasses.replace(ev, trait=np.zeros_like(ev.trait)) if self.seed == 0 else ev

    monkeypatch.setattr(LocateAndPrune, "evidence", no_trait_on_seed_0)
    tiny_dict["seeds"] = [0, 1]
    with pytest.raises(MarlmodError, match=r"^1 task\(s\) failed, the rest finished"):
        run_scenario(parse_scenario(tiny_dict), tmp_path, workers=1)
    failures = load_failures(tmp_path / "tiny")
    assert [(f["seed"], f["task"]) for f in failures] == [
        (0, "shared stages (pretraining, control, recording, prunes)")
    ]
    assert "trait occurred on 0 of" in failures[0]["error"]
    assert (tmp_path / "tiny" / "summary.md").is_file()  # seed 1's cells were reported


def test_too_few_trait_steps_for_one_strategy_fail_only_its_cells(
    tmp_path: Path, tiny_dict: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen on Clean Up: a seed that learned the trait only faintly had 9 trait steps among its
    recorded opportunity rows, too few for ``opportunity`` (≥10), while ``contrast`` could rank
    its units; that used to stop the whole run."""
    real = LocateAndPrune.evidence

    def few_opportunities_on_seed_0(self, model):
        ev = real(self, model)
        if self.seed != 0:
            return ev
        trait = ev.trait.astype(bool)
        chosen = np.flatnonzero(trait)[:3]  # opportunity rows: every non-trait row + 3 trait rows
        opportunity = ~trait
        opportunity[chosen] = True
        return dataclasses.replace(ev, opportunity=opportunity)

    monkeypatch.setattr(LocateAndPrune, "evidence", few_opportunities_on_seed_0)
    tiny_dict["seeds"] = [0]
    tiny_dict["prune"]["strategies"] = ["contrast", "opportunity"]
    with pytest.raises(MarlmodError, match=r"^1 task\(s\) failed, the rest finished"):
        run_scenario(parse_scenario(tiny_dict), tmp_path, workers=1)
    failures = load_failures(tmp_path / "tiny")
    assert [(f["seed"], f["task"]) for f in failures] == [(0, "CellTask(cell='opportunity')")]
    assert "got 3 with the trait" in failures[0]["error"]
    run = tmp_path / "tiny"
    assert (run / "seed_0" / "contrast" / "cell.json").is_file()  # the seed's other cell finished
    assert (run / "summary.md").is_file()
