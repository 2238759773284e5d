"""Relearning attacks: which models are attacked from where, that an attack really trains on the
bonus env with the cell's masks held (or released), and that attacks resume, extend and refuse
stale settings like every other stage."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from marlmod.config import parse_scenario
from marlmod.errors import MarlmodError
from marlmod.experiment import run_scenario
from marlmod.pipeline import SeedRun
from marlmod.prune import load_prune
from marlmod.relearn import CONTROL, SCRATCH, Attack, attacks, run_attack

RELEARN = {"steps": 64, "eval_points": 2, "learning_rates": [0.0003]}


@pytest.fixture
def relearn_dict(tiny_dict: dict) -> dict:
    tiny_dict["relearn"] = dict(RELEARN)
    return tiny_dict


def test_attacks_cover_every_cell_and_reference_from_each_start(tiny_dict: dict) -> None:
    tiny_dict["prune"].update(distilled=["contrast"])
    tiny_dict["retrain"]["early_stop"] = True
    tiny_dict["relearn"] = {
        **RELEARN,
        "learning_rates": [0.001, 0.0003],
        "release_masks": ["contrast", "random"],
    }
    found = attacks(parse_scenario(tiny_dict))
    assert len(found) == len(set(found)) == 2 * 13
    one_rate = {(a.target, a.start, a.released) for a in found if a.learning_rate == 0.001}
    assert one_rate == {
        (CONTROL, "retrained", False),
        (SCRATCH, "retrained", False),
        ("none", "retrained", False),  # the unpruned cells start from the pretrained model
        ("none~early_stopped", "retrained", False),
        ("contrast~distilled", "retrained", False),  # a fresh network: nothing to hold
        *(
            (cell, start, released)
            for cell in ("contrast", "random")
            for start in ("retrained", "pruned")
            for released in (False, True)
        ),
    }


def test_relearn_cells_must_name_cells_of_the_scenario(relearn_dict: dict) -> None:
    relearn_dict["relearn"]["cells"] = ["contrast", "contrast~weights"]
    with pytest.raises(MarlmodError, match="relearn names 'contrast~weights'"):
        parse_scenario(relearn_dict)


@pytest.fixture
def finished(tmp_path: Path, relearn_dict: dict) -> SeedRun:
    scenario = parse_scenario(relearn_dict)
    run_scenario(scenario, tmp_path)
    return SeedRun(scenario, 0, tmp_path / "tiny")


def pruned_entries(model, masks: dict) -> list[torch.Tensor]:  # noqa: ANN001
    params = dict(model.policy.named_parameters())
    return [params[name][mask == 0] for name, mask in masks.items()]


def test_an_attack_trains_on_the_bonus_env_with_the_cells_masks_held(finished: SeedRun) -> None:
    masks = load_prune(finished.dir / "contrast")[1]
    for start in ("retrained", "pruned"):
        model, record = run_attack(finished, Attack("contrast", start, 0.003))
        assert record["bonus_paid"] > 0  # trained where the trait pays (not the cooperative env)
        assert record["masks_held"]
        assert all(torch.all(w == 0) for w in pruned_entries(model, masks)), start
    model, record = run_attack(finished, Attack("contrast", "retrained", 0.003, released=True))
    assert not record["masks_held"]
    assert any(torch.any(w != 0) for w in pruned_entries(model, masks))  # free to regrow


def test_reference_attacks_start_from_the_control_and_scratch_models(finished: SeedRun) -> None:
    for target in (CONTROL, SCRATCH):
        model, record = run_attack(finished, Attack(target, "retrained", 0.0003))
        assert record["bonus_paid"] > 0 and not record["masks_held"]
        assert record["curve"][0]["trait_rate"] == pytest.approx(
            finished.evaluate(
                finished.load(
                    finished.dir
                    / ("control_model" if target == CONTROL else "scratch")
                    / "model.zip"
                )
            ).trait_rate
        )


def test_attacks_reach_the_report_and_extend_without_recomputing(
    tmp_path: Path, relearn_dict: dict
) -> None:
    scenario = parse_scenario(relearn_dict)
    run_scenario(scenario, tmp_path)
    run_dir = tmp_path / "tiny"
    table = pd.read_csv(run_dir / "relearn.csv")
    assert set(table.target) == {"none", "contrast", "random", CONTROL, SCRATCH}
    assert (table.bonus_paid > 0).all() and table.steps_to_half.ge(0).any()
    assert "## Relearning attack" in (run_dir / "summary.md").read_text()
    assert (run_dir / "relearn.png").stat().st_size > 0
    stamps = {p: p.stat().st_mtime_ns for p in run_dir.glob("seed_*/**/*.json")}

    relearn_dict["relearn"]["learning_rates"] = [0.0003, 0.001]  # same digest: attacks are extras
    extended = parse_scenario(relearn_dict)
    assert extended.digest == scenario.digest
    run_scenario(extended, tmp_path)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing finished recomputed
    assert len(pd.read_csv(run_dir / "relearn.csv")) == 2 * len(table)

    relearn_dict["relearn"]["steps"] = 32
    with pytest.raises(MarlmodError, match="made with relearn settings"):
        run_scenario(parse_scenario(relearn_dict), tmp_path)
