"""Ground-truth localisation: the ranking scores are right on hand cases, random sits at chance,
a graft makes its units carry the trait, and the experiment script turns finished runs (routed
and plain) into its table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from small_nets import policy_3_4_4_3

from marlmod.config import parse_scenario
from marlmod.errors import MarlmodError
from marlmod.experiment import prepare_run_dir
from marlmod.ground_truth import (
    Graft,
    apply_graft,
    auroc,
    fit_detector,
    precision_at_k,
    score_strategies,
)
from marlmod.locate import score_units
from marlmod.pipeline import SeedRun
from marlmod.record import activations_on
from marlmod.strategies.evidence import Evidence

ROOT = Path(__file__).resolve().parent.parent
LAST = "mlp_extractor.policy_net.3"


def test_auroc_and_precision_on_hand_cases() -> None:
    scores = np.array([0.9, 0.1, 0.8, 0.3, 0.2])
    assert auroc(scores, (0, 2)) == 1.0 and precision_at_k(scores, (0, 2)) == 1.0
    assert auroc(-scores, (0, 2)) == 0.0 and precision_at_k(-scores, (0, 2)) == 0.0
    assert auroc(scores, (0, 1)) == pytest.approx(0.5)  # 0.9 beats all three, 0.1 none
    flat = np.zeros(5)
    assert auroc(flat, (0, 1)) == 0.5  # ties count half
    assert precision_at_k(flat, (0, 1)) == pytest.approx(2 / 5)  # random order of the ties
    assert precision_at_k(np.array([1.0, 0.0, 0.0, 0.0]), (0, 3)) == pytest.approx(0.5 + 1 / 6)
    with pytest.raises(MarlmodError, match="needs known and other units"):
        auroc(scores, ())


def test_the_random_strategy_sits_at_chance() -> None:
    """Over many seeds the random ranking's AUROC averages 0.5 and its precision at k the share
    of known units, whatever the known units' indices (here the first 16 of 64, as routing's)."""
    gen = np.random.default_rng(0)
    ev = Evidence(acts=gen.random((50, 64)), trait=np.arange(50) % 2 == 0)
    known = tuple(range(16))
    results = np.array(
        [
            (auroc(s, known), precision_at_k(s, known))
            for s in (score_units("random", ev, np.random.default_rng(i)) for i in range(400))
        ]
    )
    assert results[:, 0].mean() == pytest.approx(0.5, abs=0.02)
    assert results[:, 1].mean() == pytest.approx(16 / 64, abs=0.025)


def test_a_graft_detects_the_feature_and_drives_only_the_trait_logit() -> None:
    torch.manual_seed(0)
    policy = policy_3_4_4_3()
    with torch.no_grad():  # the first layer passes the observation on (its inputs, for the graft)
        first = policy.mlp_extractor.policy_net[0]
        first.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0]]))
        first.bias.zero_()
    gen = np.random.default_rng(0)
    obs = gen.random((600, 3)).astype(np.float32)
    feature = obs[:, 0] + 0.5 * obs[:, 1] > 0.8
    x = activations_on(policy, "mlp_extractor.policy_net.1", obs)  # the grafted layer's inputs
    weights, bias = fit_detector(x, feature, seed=0)
    graft = Graft(LAST, (1, 3), action=2, weights=weights, bias=bias)
    before = policy.get_distribution(torch.as_tensor(obs)).distribution.logits.detach()
    apply_graft(policy, graft)
    after = policy.get_distribution(torch.as_tensor(obs)).distribution.logits.detach()
    units = activations_on(policy, LAST, obs)[:, [1, 3]]
    np.testing.assert_allclose(units[:, 0], units[:, 1])
    log_odds = x.astype(np.float64) @ weights + bias
    np.testing.assert_allclose(units[:, 0], np.maximum(log_odds, 0), rtol=1e-4, atol=1e-4)
    head = policy.action_net.weight.detach()
    assert (head[[0, 1]][:, [1, 3]] == 0).all() and (head[2, [1, 3]] == 1.0).all()
    assert ((units[:, 0] > 0) == feature).mean() > 0.95  # it detects the feature
    boost = (after - before)[:, 2] - (after - before)[:, 0]
    assert boost[feature].mean() > boost[~feature].mean() + 0.5  # and pushes the trait there
    ev = Evidence(acts=activations_on(policy, LAST, obs), trait=units[:, 0] > 0.5)
    assert score_strategies(ev, (1, 3), seed=0)[0]["strategy"] == "contrast"
    assert auroc(score_units("contrast", ev, None), (1, 3)) == 1.0
    with pytest.raises(MarlmodError, match="cannot be grafted"):
        fit_detector(x, np.ones(len(x), dtype=bool), seed=0)


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def finished_run(tiny_dict: dict, tmp_path: Path, **pretrain) -> Path:
    """A tiny run with its shared stages done (models, evidence, prunes), as the script reads."""
    tiny_dict["pretrain_steps"] = 512
    if pretrain:
        tiny_dict["pretrain"] = pretrain
        tiny_dict["prune"]["strategies"] = ["routed", "random"]
    scenario = parse_scenario(tiny_dict)
    run_dir = tmp_path / scenario.name
    prepare_run_dir(scenario, run_dir)
    SeedRun(scenario, 0, run_dir).shared()
    return run_dir


def test_the_script_scores_routed_and_grafted_nets_into_its_table(
    tiny_dict: dict, tmp_path: Path
) -> None:
    plain = finished_run(dict(tiny_dict, name="plain"), tmp_path)
    routed = finished_run(
        dict(tiny_dict, name="routed"), tmp_path, method="routing", label_coverage=1.0
    )
    out = tmp_path / "results"
    assert load_script("ground_truth").main([str(plain), str(routed), "--out", str(out)]) == 0
    rows = pd.read_csv(out / "ground_truth.csv")
    assert set(zip(rows.run, rows.construction, strict=True)) == {
        ("plain", "grafted"),
        ("routed", "grafted"),
        ("routed", "routed"),
    }
    assert "routed" not in set(rows.strategy)  # the answer is not scored
    assert {"contrast", "random", "attribution", "probe"} <= set(rows.strategy)
    scored = rows.dropna(subset=["auroc"])
    assert scored.auroc.between(0, 1).all() and scored.precision_at_k.between(0, 1).all()
    assert (rows[rows.construction == "routed"].known == 2).all()  # 25% of 8 routed units
    grafted = rows[rows.construction == "grafted"]
    assert (grafted.known == 2).all() and grafted.trait_rate_grafted.notna().all()
    assert "AUROC" in (out / "ground_truth.md").read_text()
    # the two runs' grafted rows may share a control net: summarised per run, never pooled
    summary = load_script("ground_truth").summary_table(rows)
    grafted_summary = summary[summary.construction == "grafted"]
    assert set(grafted_summary.run) == {"plain", "routed"} and (grafted_summary.seeds <= 1).all()


def test_a_run_whose_env_cannot_be_grafted_is_skipped_with_its_reason(
    tiny_dict: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signalling labels every step an opportunity, so no graft can detect one: that run is named
    as skipped in the table, and the other runs are still scored."""
    plain = finished_run(dict(tiny_dict, name="plain"), tmp_path)
    always = finished_run(dict(tiny_dict, name="always_opportunity"), tmp_path)
    script = load_script("ground_truth")
    real = script.grafted_truth

    def grafted_unless_always(seed, *args):
        if seed.dir.parent.name == "always_opportunity":
            raise MarlmodError("the opportunity label is 100% true on the recorded rows")
        return real(seed, *args)

    monkeypatch.setattr(script, "grafted_truth", grafted_unless_always)
    out = tmp_path / "results"
    assert script.main([str(plain), str(always), "--out", str(out)]) == 0
    assert set(pd.read_csv(out / "ground_truth.csv").run) == {"plain"}
    assert (
        "Skipped: always_opportunity: no grafted construction"
        in (out / "ground_truth.md").read_text()
    )
    assert script.main([str(always), "--out", str(out)]) == 2
