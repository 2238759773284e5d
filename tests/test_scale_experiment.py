"""experiments/scale.py on tiny fake runs: every metric per seed from the files a run leaves, the
families told apart by name, means with intervals, the table and the figure written; and the
configs/scale family resolves to the networks and prunes it promises."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from marlmod.config import load_scenario
from marlmod.config_files import resolve_file

ROOT = Path(__file__).resolve().parent.parent
SCALE = ROOT / "configs" / "scale"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_run(root: Path, config: str, base_trait: float, timing: bool = True) -> Path:
    """A finished run of ``configs/scale/<config>.yaml`` as the pipeline leaves it: run.json,
    cells.csv, and per seed clusterability.json and pretrain/timing.csv. Seed s's numbers are
    simple functions of s so the test can say what the summary must hold."""
    run = root / config
    (run).mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"config": resolve_file(SCALE / f"{config}.yaml")}))
    rows = []
    for seed in range(3):
        for strategy, pruned, retrained in (
            ("none", base_trait, 0.04),
            ("contrast", 0.01, 0.02),
            ("random", 0.05, 0.03),
        ):
            rows.append(
                {
                    "seed": seed,
                    "strategy": strategy,
                    "trait_rate_before": base_trait + 0.01 * seed,
                    "trait_rate_pruned": pruned,
                    "trait_rate_retrained": retrained,
                    "task_return_before": 40.0,
                    "task_return_pruned": 36.0,
                    "kept_vs_scratch": 1.0 + 0.01 * seed,
                    "control_trait_rate": 0.0,
                }
            )
        seed_dir = run / f"seed_{seed}"
        (seed_dir / "pretrain").mkdir(parents=True)
        z = {"pretrain": {"z_score": -float(seed)}, "control": {"z_score": 0.0}}
        (seed_dir / "clusterability.json").write_text(json.dumps(z))
        if timing:
            (seed_dir / "pretrain" / "timing.csv").write_text(
                "seconds,agent_steps,torch_threads\n50.0,500000,1\n"
            )
    pd.DataFrame(rows).to_csv(run / "cells.csv", index=False)
    return run


def test_scale_summary_from_fake_runs(tmp_path: Path) -> None:
    fake_run(tmp_path, "width_32", 0.10)
    fake_run(tmp_path, "width_64", 0.10)
    fake_run(tmp_path, "units16_width_128", 0.20)
    fake_run(tmp_path, "depth_3", 0.10, timing=False)
    (tmp_path / "cnn").mkdir()  # not a scale family: left out
    assert load_script("scale").main(["--runs", str(tmp_path)]) == 0
    seeds = pd.read_csv(tmp_path / "seeds.csv")
    assert set(seeds.setting) == {"width_32", "width_64", "units16_width_128", "depth_3"}
    families = seeds.groupby("setting").family.first().to_dict()
    assert families == {
        "width_32": "same fraction",
        "width_64": "same fraction",
        "units16_width_128": "same number",
        "depth_3": "depth",
    }
    units = seeds.groupby("setting").units_pruned.first().to_dict()
    assert units == {"width_32": 8, "width_64": 16, "units16_width_128": 16, "depth_3": 16}
    assert seeds.groupby("setting").depth.first()["depth_3"] == 3
    row = seeds[(seeds.setting == "width_32") & (seeds.seed == 2)].iloc[0]
    assert row.cut_contrast == pytest.approx(0.12 - 0.01)
    assert row.cut_random == pytest.approx(0.12 - 0.05)
    assert row.cut_advantage == pytest.approx(0.04)
    assert row.relapse_fraction == pytest.approx(0.02 / 0.12)
    assert (row.relapse_finetune, row.relapse_random) == (0.04, 0.03)
    assert row.kept_right_after == pytest.approx(0.9)
    assert row.clusterability_z == -2.0 and row.pretrain_seconds_per_100k == pytest.approx(10.0)
    assert seeds[seeds.setting == "depth_3"].pretrain_seconds_per_100k.isna().all()

    summary = pd.read_csv(tmp_path / "summary.csv")
    trait = summary[(summary.setting == "units16_width_128") & (summary.metric == "trait_learned")]
    assert trait["mean"].item() == pytest.approx(0.21) and trait.n.item() == 3
    assert trait.low.item() <= 0.21 <= trait.high.item()
    table = (tmp_path / "summary.md").read_text()
    assert "units16_width_128" in table and "clusterability z" in table and "—" in table
    assert (tmp_path / "scale.png").stat().st_size > 10_000


def test_no_finished_runs_is_an_error(tmp_path: Path) -> None:
    assert load_script("scale").main(["--runs", str(tmp_path)]) == 2


def test_a_missing_run_folder_is_one_line_not_a_traceback(tmp_path: Path, capsys) -> None:
    assert load_script("scale").main(["--runs", str(tmp_path / "absent")]) == 2
    assert capsys.readouterr().err.strip().endswith("absent: no such run folder")


@pytest.mark.parametrize(
    ("name", "hidden", "layer", "units"),
    [
        ("width_32", (32, 32), "mlp_extractor.policy_net.3", 8),
        ("width_512", (512, 512), "mlp_extractor.policy_net.3", 128),
        ("units16_width_256", (256, 256), "mlp_extractor.policy_net.3", 16),
        ("units16_width_32", (32, 32), "mlp_extractor.policy_net.3", 16),
        ("depth_4", (64, 64, 64, 64), "mlp_extractor.policy_net.7", 16),
    ],
)
def test_the_scale_family_is_what_it_says(name: str, hidden: tuple, layer: str, units: int) -> None:
    scenario = load_scenario(SCALE / f"{name}.yaml")
    assert scenario.name == name and scenario.network.hidden == hidden
    assert scenario.prune.layer == layer
    assert round(scenario.prune.fraction * hidden[-1]) == units
    assert len(scenario.seeds) >= 5 and scenario.prune.strategies == ("contrast", "random")


def test_depth_2_is_width_64_run_once() -> None:
    depth, width = load_scenario(SCALE / "depth_2.yaml"), load_scenario(SCALE / "width_64.yaml")
    assert depth.name == width.name and depth.digest == width.digest


def test_scale_throughput_quick_trains_the_cnn_on_both_routes() -> None:
    """The benchmark still runs (tiny budget): marlmod's route and the plain one, same network."""
    done = subprocess.run(
        [sys.executable, "benchmarks/scale_throughput.py", "--quick", "--settings", "cnn"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[1:] if line.strip()]
    assert [(r[0], r[1]) for r in rows] == [("cnn", "marlmod"), ("cnn", "plain")]
    assert rows[0][3] == rows[1][3]  # the same network (parameter count) on both routes
