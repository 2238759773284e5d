"""Slow end-to-end science check: on a reduced aggression scenario the trait is really learned
(≥ 10× the control's rate) and contrast pruning cuts it more than random units of equal size."""

from __future__ import annotations

from pathlib import Path

import pytest

from marlmod.config import parse_scenario
from marlmod.pipeline import SeedRun

pytestmark = pytest.mark.slow


def test_aggression_is_learned_and_contrast_pruning_beats_random(tmp_path: Path) -> None:
    scenario = parse_scenario(
        {
            "name": "learning_check",
            "env": {"id": "marlmod/gathering-v0", "bonus": 1.0, "trait": "attack"},
            "seeds": [0],
            "network": {"hidden": [64, 64], "activation": "relu"},
            "pretrain_steps": 300_000,
            "retrain": {"steps": 4096, "eval_points": 1},
            "evaluation": {"episodes": 32},
            "record_episodes": 32,
            "prune": {
                "layer": "mlp_extractor.policy_net.3",
                "fraction": 0.25,
                "strategies": ["contrast", "random"],
            },
        }
    )
    run = SeedRun(scenario, 0, tmp_path)
    run.run()
    _, pretrained = run.pretrained("pretrain")
    _, control = run.pretrained("control")
    assert pretrained.trait_rate >= 10 * max(control.trait_rate, 1e-3)
    contrast, random = run.cell("contrast"), run.cell("random")
    cut = {
        c["strategy"]: c["trait_rate_before"] - c["trait_rate_pruned"] for c in (contrast, random)
    }
    assert cut["contrast"] > 0.5 * pretrained.trait_rate
    assert cut["contrast"] >= 2 * max(cut["random"], 0.0)
