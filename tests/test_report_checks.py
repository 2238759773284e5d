"""Reports protect the reader: a warning when the trait was not learned (or cannot be judged),
and capability measured from a random policy's return, so it holds for returns of any sign."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from marlmod.cli import app
from marlmod.config import parse_scenario
from marlmod.environments import resolve_env
from marlmod.experiment import run_scenario
from marlmod.metrics import measure
from marlmod.random_policy import UniformPolicy
from marlmod.report_checks import (
    NOTE_MARK,
    WARNING_MARK,
    capability_columns,
    normalised_capability,
    reader_warnings,
    trait_check,
    warnings_in,
)


def per_seed(before: list[float], control: list[float]) -> pd.DataFrame:
    """Cells of one strategy: each seed's pretrained and control trait rates."""
    return pd.DataFrame(
        {"seed": range(len(before)), "trait_rate_before": before, "control_trait_rate": control}
    )


def test_a_learned_trait_gives_no_warning() -> None:
    cells = per_seed([0.09, 0.10, 0.11], [0.001, 0.0, 0.002])
    assert trait_check(cells).learned
    assert reader_warnings(cells) == []


def test_a_trait_the_control_shows_as_often_is_not_learned() -> None:
    cells = per_seed([0.104, 0.10, 0.11], [0.113, 0.09, 0.12])  # the decoy example's picture
    (warning,) = reader_warnings(cells)
    assert warning.startswith(WARNING_MARK) and "the trait was not learned" in warning
    assert "3 seeds" in warning


def test_above_the_control_in_every_seed_but_not_by_the_interval_is_not_learned() -> None:
    cells = per_seed([0.5, 0.02], [0.0, 0.01])  # 2 seeds, wildly different gaps
    assert not trait_check(cells).learned and reader_warnings(cells)


def test_too_few_seeds_to_show_it_is_not_called_absent() -> None:
    """The quick demo's picture: 2 seeds, each far above its control, a t-interval (1 degree of
    freedom) that still includes 0: a warning, but "not shown", never "was not learned"."""
    (warning,) = reader_warnings(per_seed([0.051, 0.079], [0.0, 0.00125]))
    assert warning.startswith(WARNING_MARK) and "not shown learned at 2 seeds" in warning
    assert "was not learned" not in warning
    (warning,) = reader_warnings(per_seed([0.051, 0.079], [0.0, 0.09]))  # one seed below
    assert "the trait was not learned" in warning


def test_one_seed_cannot_be_judged() -> None:
    (warning,) = reader_warnings(per_seed([0.1], [0.0]))
    assert "cannot be judged" in warning


def test_capability_holds_for_negative_returns() -> None:
    """Returns as distances: random −20, reference −5. A retrained −10 is two thirds of the way
    from random to the reference — the plain ratio (−10 / −5 = 2) says twice as capable."""
    value = normalised_capability(pd.Series([-10.0]), pd.Series([-5.0]), pd.Series([-20.0]))
    assert value.iloc[0] == pytest.approx(10 / 15)


def test_capability_is_missing_when_the_reference_is_not_clearly_above_random() -> None:
    returns, floor = pd.Series([3.0, 3.0, 3.0]), pd.Series([10.0, 10.0, np.nan])
    reference = pd.Series([10.2, 9.0, 12.0])  # 2% above random; below it; no floor measured
    assert normalised_capability(returns, reference, floor).isna().all()


def test_capability_columns_read_fine_tuning_and_scratch_per_seed() -> None:
    cells = pd.DataFrame(
        {
            "seed": [0, 0, 1, 1],
            "strategy": ["none", "contrast", "none", "contrast"],
            "task_return_retrained": [30.0, 20.0, 40.0, 40.0],
            "scratch_task_return": [20.0, 20.0, 40.0, 40.0],
            "random_task_return": [10.0, 10.0, 0.0, 0.0],
        }
    )
    out = capability_columns(cells)
    assert out.capability_vs_finetune.tolist() == pytest.approx([1.0, 0.5, 1.0, 1.0])
    assert out.capability_vs_scratch.tolist() == pytest.approx([2.0, 1.0, 1.0, 1.0])


def test_the_random_policy_is_seeded_and_acts_in_the_env(tiny_scenario) -> None:
    env = resolve_env(tiny_scenario.env)
    make_env = env.factory(0.0)
    space = make_env().action_space("agent_0")

    def play(seed: int) -> object:
        return measure(UniformPolicy(space, seed), make_env, 4, seed, "attack")

    assert play(3) == play(3)
    assert play(3).trait_rate > 0  # random play zaps now and then


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import TINY

    out = tmp_path_factory.mktemp("runs")
    run_scenario(parse_scenario(TINY), out)
    return out / "tiny"


def test_a_run_measures_the_random_policy_and_its_summary_opens_with_the_warning(
    tiny_run: Path,
) -> None:
    assert (tiny_run / "seed_0" / "random_policy" / "metrics.json").is_file()
    cells = pd.read_csv(tiny_run / "cells.csv")
    assert cells.random_task_return.notna().all()
    summary = (tiny_run / "summary.md").read_text().splitlines()
    assert summary[2].startswith(WARNING_MARK) and "cannot be judged" in summary[2]
    assert "random policy (uniform actions)" in "\n".join(summary)


def test_report_prints_the_warning_again_on_stderr(tiny_run: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tiny_run)])
    assert result.exit_code == 0, result.output
    assert "marlmod: Warning: one seed" in result.stderr


def test_without_a_bonus_the_report_notes_emergence_instead_of_warning() -> None:
    """bonus 0: the control is the pretrained model, so "not learned" would be wrong; a note
    (not a warning) says the trait emerged from the game."""
    cells = pd.DataFrame(
        {
            "seed": [0, 1, 2],
            "trait_rate_before": [0.1, 0.12, 0.11],
            "control_trait_rate": [0.1, 0.12, 0.11],
        }
    )
    assert "not learned" in reader_warnings(cells)[0]
    (note,) = reader_warnings(cells, bonus=0.0)
    assert note.startswith(NOTE_MARK) and "emerged from the game" in note
    assert not warnings_in(note)  # a note is not one of the warnings printed on stderr
