"""The analyses beside relearning that tell removal from suppression: early-stopped fine-tuning,
distillation into a fresh network, the routing placebo, held-out situations, latent-trait probes,
weight-space paths, and the relearning table's worst case and verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from marlmod.config import parse_scenario
from marlmod.errors import MarlmodError
from marlmod.experiment import run_scenario
from marlmod.latent_probe import probe_auroc
from marlmod.metrics import Metrics
from marlmod.pipeline import SeedRun
from marlmod.relearn import CONTROL
from marlmod.removal_report import relearn_table, worst_case
from marlmod.retrain import train_early_stopped
from marlmod.routing import designated_units, placebo_steps
from marlmod.train import build_model
from marlmod.weight_space import l2_distance, policy_parameters, straight_path


def weights(model) -> dict[str, torch.Tensor]:  # noqa: ANN001
    return {k: v.clone() for k, v in model.policy.state_dict().items()}


def test_early_stopping_keeps_the_model_from_before_the_trait_stopped_falling(
    tiny_dict: dict,
) -> None:
    scenario = parse_scenario(tiny_dict)
    run = SeedRun(scenario, 0, Path("unused"))
    model = build_model(scenario, run.cooperative, 0)
    validation = iter([0.5, 0.4, 0.3, 0.35, 0.1])  # falls twice, then rises: stop there
    kept: list[dict] = []

    def validate(m) -> Metrics:  # noqa: ANN001
        kept.append((weights(m), m.num_timesteps))
        return Metrics(next(validation), 0.0)

    curve = train_early_stopped(model, 128, 4, lambda m: Metrics(0.0, 1.0), validate)
    assert [p.steps for p in curve] == [0, kept[1][1], kept[2][1]]  # before, after chunk 1 and 2
    best, steps = kept[2]
    assert model.num_timesteps == steps
    assert all(torch.equal(best[k], v) for k, v in weights(model).items())
    assert not all(torch.equal(kept[3][0][k], v) for k, v in weights(model).items())


def test_distilled_cell_retrains_a_fresh_student_of_the_pruned_teacher(
    tmp_path: Path, tiny_dict: dict
) -> None:
    tiny_dict["prune"]["distilled"] = ["contrast"]
    tiny_dict["distill"] = {"rollout_steps": 512, "epochs": 20}
    scenario = parse_scenario(tiny_dict)
    run = SeedRun(scenario, 0, tmp_path)
    run.shared()
    teacher, masks = run.pruned_model("contrast")
    student, none = run.pruned_model("contrast~distilled")
    assert none is None  # a fresh network has no pruned weights to hold
    report = (run.dir / "contrast~distilled" / "distillation.json").read_text()
    fresh = build_model(scenario, run.cooperative, 0)  # what the student started as
    assert l2_distance(policy_parameters(student), policy_parameters(fresh)) > 0
    assert l2_distance(policy_parameters(student), policy_parameters(teacher)) > 0
    assert '"greedy_agreement"' in report and '"kl"' in report
    cell = run.cell("contrast~distilled")
    assert cell["masks_held"] is False and cell["weights_pruned"] == sum(
        int((m == 0).sum()) for m in masks.values()
    )


def test_distillation_brings_the_student_close_to_its_teacher(tiny_dict: dict) -> None:
    from marlmod.config import DistillConfig
    from marlmod.distill import distill, policy_outputs, teacher_targets

    scenario = parse_scenario(tiny_dict)
    run = SeedRun(scenario, 0, Path("unused"))
    teacher = build_model(scenario, run.cooperative, 1)
    student = build_model(scenario, run.cooperative, 2)
    targets = teacher_targets(teacher, 512, 0)
    gap = torch.nn.functional.kl_div(
        policy_outputs(student, targets.obs)[0],
        targets.log_probs,
        log_target=True,
        reduction="batchmean",
    )
    report = distill(teacher, student, DistillConfig(rollout_steps=512, epochs=30), 0)
    assert report["kl"] < 0.2 * float(gap.detach())
    assert report["states"] == 512


def test_placebo_routes_as_many_random_steps_into_a_random_unit_set() -> None:
    rng = np.random.default_rng(0)
    trait = np.zeros(64, dtype=bool)
    trait[:5] = True
    chosen = placebo_steps(trait, rng)
    assert chosen.sum() == 5 and not np.array_equal(chosen, trait)
    assert designated_units(64, 0.25) == tuple(range(16))
    placebo = designated_units(64, 0.25, placebo_seed=3)
    assert len(placebo) == 16 and placebo != tuple(range(16))
    assert placebo == designated_units(64, 0.25, placebo_seed=3)  # reproducible


def test_placebo_needs_routing(tiny_dict: dict) -> None:
    tiny_dict["pretrain"] = {"method": "plain", "placebo": True}
    with pytest.raises(MarlmodError, match="placebo"):
        parse_scenario(tiny_dict)


def test_held_out_situations_are_measured_at_every_point(tmp_path: Path, tiny_dict: dict) -> None:
    tiny_dict["evaluation"]["held_out"] = {"bigger": {"grid_size": 6}}
    run_scenario(parse_scenario(tiny_dict), tmp_path)
    cells = pd.read_csv(tmp_path / "tiny" / "cells.csv")
    for column in ("trait_rate_before@bigger", "trait_rate_retrained@bigger"):
        assert cells[column].notna().all(), column
    curves = pd.read_csv(tmp_path / "tiny" / "curves.csv")
    assert curves["task_return@bigger"].notna().all()
    assert "## Held-out situations" in (tmp_path / "tiny" / "summary.md").read_text()


def test_a_bad_held_out_kwarg_fails_before_any_work(tmp_path: Path, tiny_dict: dict) -> None:
    tiny_dict["evaluation"]["held_out"] = {"broken": {"grid_size": -3}}
    with pytest.raises(MarlmodError, match="evaluation.held_out.broken"):
        run_scenario(parse_scenario(tiny_dict), tmp_path)
    assert not list((tmp_path / "tiny").glob("seed_*"))
    tiny_dict["evaluation"]["held_out"] = {"wider_view": {"view_radius": 1}}
    with pytest.raises(MarlmodError, match="wider_view changes the observation or action space"):
        run_scenario(parse_scenario(tiny_dict), tmp_path)


def test_probe_auroc_reads_linear_codes_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(2000) < 0.2
    coded = rng.normal(size=(2000, 8)) + 3.0 * labels[:, None] * np.eye(8)[0]
    assert probe_auroc(coded, labels, 0) > 0.95
    assert abs(probe_auroc(rng.normal(size=(2000, 8)), labels, 0) - 0.5) < 0.1
    assert np.isnan(probe_auroc(coded, np.arange(2000) < 3, 0))  # too rare to score


def test_straight_path_runs_from_the_pretrained_to_the_retrained_weights(
    tiny_dict: dict,
) -> None:
    scenario = parse_scenario(tiny_dict)
    run = SeedRun(scenario, 0, Path("unused"))
    start, end = (
        build_model(scenario, run.cooperative, 1),
        build_model(scenario, run.cooperative, 2),
    )
    before = weights(start)

    def total(m) -> Metrics:  # noqa: ANN001  (a stand-in measurement: the sum of the weights)
        return Metrics(float(sum(p.sum() for p in m.policy.parameters())), 0.0)

    result = straight_path(start, end, total)
    ends = [p["trait_rate"] for p in result["path"]]
    assert ends[0] == pytest.approx(total(build_model(scenario, run.cooperative, 1)).trait_rate)
    assert ends[-1] == pytest.approx(total(end).trait_rate, rel=1e-5)
    assert ends[2] == pytest.approx(0.5 * (ends[0] + ends[-1]), rel=1e-4)
    assert result["l2_to_pretrained"] > 0
    assert all(torch.equal(before[k], v) for k, v in weights(start).items())  # put back


def attack_rows(target: str, steps: list[float], aucs: list[float], lr: float) -> list[dict]:
    return [
        {
            "seed": seed,
            "target": target,
            "start": "retrained",
            "masks": "held",
            "learning_rate": lr,
            "budget": 100.0,
            "steps_to_half": s,
            "censored": bool(np.isnan(s)),
            "relearn_auc": a,
            "trait_rate_start": 0.0,
            "trait_rate_end": a,
        }
        for seed, (s, a) in enumerate(zip(steps, aucs, strict=True))
    ]


def test_worst_case_takes_the_fastest_rate_and_counts_censored_as_the_budget() -> None:
    nan = float("nan")
    attacks = pd.DataFrame(
        attack_rows("x", [50, nan, 80], [0.1, 0.0, 0.2], 0.001)
        + attack_rows("x", [30, nan, nan], [0.3, 0.05, 0.1], 0.01)
    )
    worst = worst_case(attacks).set_index("seed")
    assert worst.steps_bound.tolist() == [30, 100, 80]
    assert worst.censored.tolist() == [False, True, False]
    assert worst.fastest_lr.tolist() == [0.01, 0.001, 0.001]
    assert worst.relearn_auc.tolist() == [0.3, 0.05, 0.2]


def test_relearn_verdicts_compare_each_target_with_the_control_by_seed() -> None:
    control = attack_rows(CONTROL, [60, 70, 80, 65, 75], [0.05] * 5, 0.001)
    fast = attack_rows("fast", [10, 20, 15, 12, 18], [0.06, 0.05, 0.07, 0.06, 0.05], 0.001)
    slow = attack_rows("slow", [70, 60, 90, 60, 80], [0.05, 0.04, 0.06, 0.05, 0.05], 0.001)
    table = relearn_table(pd.DataFrame(control + fast + slow)).set_index("target")
    assert table.loc["fast", "verdict"].startswith("suppressed")
    assert table.loc["slow", "verdict"].startswith("not faster than the control")
    assert table.loc["control model (never paid)", "verdict"] == "reference"


def test_without_a_bonus_the_control_is_the_pretrained_model(
    tmp_path: Path, tiny_dict: dict
) -> None:
    """A trait that emerges from the game itself (env.bonus 0): the control would train exactly
    the pretrained model, so it is that model, trained once."""
    tiny_dict["env"]["bonus"] = 0.0
    scenario = parse_scenario(tiny_dict)
    assert scenario.control_is_pretrained
    run = SeedRun(scenario, 0, tmp_path)
    pretrain, before = run.pretrained("pretrain")
    control, metrics = run.pretrained("control")
    assert control.parent.name == "control_model" and control.read_bytes() == pretrain.read_bytes()
    assert metrics == before
    tiny_dict["relearn"] = {"steps": 64, "learning_rates": [0.001]}
    with pytest.raises(MarlmodError, match="set relearn.bonus"):
        parse_scenario(tiny_dict)


def test_a_target_relearning_in_half_the_controls_steps_is_suppressed_whatever_their_spread() -> (
    None
):
    """The control's spread across seeds can swamp the differences in steps; the per-seed ratio
    still shows a target that needs half the control's steps in every seed."""
    control_steps = [10_000, 90_000, 30_000, 95_000, 20_000]
    control = attack_rows(CONTROL, control_steps, [0.05] * 5, 0.001)
    half = attack_rows("half", [s / 2 for s in control_steps], [0.05] * 5, 0.001)
    table = relearn_table(pd.DataFrame(control + half)).set_index("target")
    upper = float(table.loc["half", "steps − control's (paired, t)"].split(",")[1].rstrip("]"))
    assert upper > 0  # the differences alone would not call it faster
    assert table.loc["half", "verdict"].startswith("suppressed")
    assert table.loc["half", "seeds faster than the control"] == "5/5"
