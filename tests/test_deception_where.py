"""experiments/deception_where.py on tiny fake runs: the sweep of a same-layer run and of an
all_hidden run side by side, the share of the lie removed measured from the control's floor,
and the per-layer split of a joint ranking read from the strategy's scores."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from marlmod.config_files import resolve_file

ROOT = Path(__file__).resolve().parent.parent


def load_script():
    spec = importlib.util.spec_from_file_location(
        "deception_where", ROOT / "experiments" / "deception_where.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_run(root: Path, config: str, pruned: dict[float, float], scores: list[float] | None):
    """A finished run of ``configs/<config>.yaml``: run.json, cells.csv, sweep.csv and (if given)
    contrast's scores.json per seed. Pretrained lie rate 0.3, control 0.1."""
    run = root / config
    run.mkdir(parents=True)
    (run / "run.json").write_text(
        json.dumps({"config": resolve_file(ROOT / f"configs/{config}.yaml")})
    )
    cells, sweep = [], []
    for seed in range(2):
        cells.append(
            {
                "seed": seed,
                "strategy": "contrast",
                "trait_rate_before": 0.3,
                "control_trait_rate": 0.1,
            }
        )
        for fraction, rate in pruned.items():
            sweep.append(
                {
                    "seed": seed,
                    "strategy": "contrast",
                    "fraction": fraction,
                    "trait_rate": rate,
                    "task_return": 30.0,
                }
            )
        if scores is not None:
            (run / f"seed_{seed}" / "contrast").mkdir(parents=True)
            (run / f"seed_{seed}" / "contrast" / "scores.json").write_text(json.dumps(scores))
    pd.DataFrame(cells).to_csv(run / "cells.csv", index=False)
    pd.DataFrame(sweep).to_csv(run / "sweep.csv", index=False)
    return run


def test_where_table_from_fake_runs(tmp_path: Path) -> None:
    same_layer = fake_run(tmp_path, "deception", {0.25: 0.2}, None)
    # all_hidden over 64 + 64 units: the first layer's units score 1, the second's 0 except its
    # last 8, which score 2 -- so the top 10% (13 units) are those 8 and 5 of the first layer.
    scores = [1.0] * 64 + [0.0] * 56 + [2.0] * 8
    joint = fake_run(tmp_path, "deception_where", {0.1: 0.1, 0.5: 0.3}, scores)
    out = tmp_path / "out"
    assert load_script().main([str(same_layer), str(joint), "--out", str(out)]) == 0
    rows = pd.read_csv(out / "deception_layers.csv")
    by = rows.set_index(["run", "fraction"]).sort_index()
    assert by.loc[("deception", 0.25)].removed.tolist() == pytest.approx([0.5, 0.5])
    assert by.loc[("deception_where", 0.1)].removed.tolist() == pytest.approx([1.0, 1.0])
    assert by.loc[("deception_where", 0.5)].removed.tolist() == pytest.approx([0.0, 0.0])
    assert by.loc[("deception_where", 0.1)].units.tolist() == [13, 13]
    first, second = "units_mlp_extractor.policy_net.1", "units_mlp_extractor.policy_net.3"
    assert by.loc[("deception_where", 0.1)][first].tolist() == [5.0, 5.0]
    assert by.loc[("deception_where", 0.1)][second].tolist() == [8.0, 8.0]
    assert by.loc[("deception", 0.25)][first].isna().all()  # not a joint ranking
    table = (out / "deception_layers.md").read_text()
    assert "| deception_where | `all_hidden` | contrast | 0.1 | 13 | 2 |" in table


def test_a_run_without_a_sweep_is_refused(tmp_path: Path, capsys) -> None:
    run = tmp_path / "deception"
    run.mkdir()
    (run / "run.json").write_text("{}")
    assert load_script().main([str(run), "--out", str(tmp_path)]) == 2
    assert "no cells.csv, sweep.csv" in capsys.readouterr().err


def test_decision_table_reads_the_policies_on_recorded_sender_states(tmp_path: Path) -> None:
    """A tiny real Signalling run pruned across both hidden layers: the decision table has the
    control, the pretrained model and every strategy × sweep fraction per seed, each a
    probability, and the pretrained row matches the model's own action probabilities."""
    from marlmod.config import parse_scenario
    from marlmod.experiment import run_scenario
    from marlmod.layers import ACTION_HEAD
    from marlmod.pipeline import SeedRun
    from marlmod.record import activations_on
    from tests.test_signalling_scenario import TINY_DECEPTION

    config = {
        **TINY_DECEPTION,
        "name": "deception_where",
        "prune": {
            "layer": "all_hidden",
            "fraction": 0.25,
            "strategies": ["contrast", "random"],
            "sweep": [0.25, 0.5],
        },
    }
    scenario = parse_scenario(config)
    run_scenario(scenario, tmp_path, workers=1)
    run = tmp_path / "deception_where"
    out = tmp_path / "out"
    script = load_script()
    assert script.main([str(run), "--out", str(out), "--decisions", "contrast,random"]) == 0
    decisions = pd.read_csv(out / "deception_layers_decisions.csv")
    assert list(decisions.model) == ["control", "pretrained"] + ["contrast"] * 2 + ["random"] * 2
    assert set(decisions.run) == {"deception_where"}
    probabilities = decisions[[c for c, _ in script.DECISION_COLUMNS]].to_numpy()
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    seed = SeedRun(scenario, 0, run)
    with np.load(seed.dir / "record" / "activations.npz") as data:
        obs = data["obs"]
    logits = activations_on(seed.pretrained_model().policy, ACTION_HEAD, obs)
    expected = 1 - torch.softmax(torch.as_tensor(logits, dtype=torch.float64), 1)[:, 0].numpy()
    low = obs[:, 6] > 0.5  # 4 sites: the value's "low" field
    pretrained = decisions[decisions.model == "pretrained"].iloc[0]
    assert pretrained.p_lie_low == pytest.approx(expected[low].mean())
    assert "How the surviving lies look" in (out / "deception_layers.md").read_text()
