"""The Lab2D adapters against Lab2D itself: conformance, a scripted hit, and the label rules
checked frame by frame against the level's own record of who zapped whom.

Skipped where ``dmlab2d`` is not installed (``pip install -e '.[lab2d]'``); the label rules are
also tested without it in ``tests/test_lab2d_labels.py``.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pettingzoo
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

import envs
from marlmod.check_env import check_env

pytest.importorskip("dmlab2d")

from envs.clean_up import CleanUpEnv  # noqa: E402
from envs.commons_harvest import (  # noqa: E402
    BACKWARD,
    FIRE,
    FORWARD,
    NOOP,
    STRAFE_LEFT,
    STRAFE_RIGHT,
    TURN_LEFT,
    TURN_RIGHT,
    CommonsHarvestEnv,
)

GAMES = [(envs.COMMONS_HARVEST_ID, CommonsHarvestEnv), (envs.CLEAN_UP_ID, CleanUpEnv)]
HEADINGS = [(0, -1), (1, 0), (0, 1), (-1, 0)]  # N, E, S, W in Lab2D's (x, y); turning right = +1


@pytest.mark.parametrize(("env_id", "cls"), GAMES)
def test_registered_and_passes_pettingzoo_tests(env_id: str, cls: type) -> None:
    parallel_api_test(pettingzoo.make("parallel", env_id, aggression_bonus=1.0), num_cycles=300)
    parallel_seed_test(lambda: cls(n_players=3, aggression_bonus=1.0))


@pytest.mark.parametrize(("env_id", "kwargs"), [(GAMES[0][0], {}), (GAMES[1][0], {})])
def test_check_env_finds_nothing(env_id: str, kwargs: dict) -> None:
    findings = check_env(env_id, kwargs, steps=600)
    assert findings == [], [str(f) for f in findings]


def test_rgb_observation_is_the_levels_image_and_render_the_world() -> None:
    env = CommonsHarvestEnv(n_players=2, observation="rgb", render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert obs["player_0"].shape == (88, 88, 3) and obs["player_0"].dtype == np.uint8
    assert env.observation_space("player_0").contains(obs["player_0"])
    assert env.render().shape == (208, 224, 3)  # the 26 x 28 map at 8 pixels a cell


def test_settings_the_labels_cannot_follow_are_refused_and_typos_named() -> None:
    with pytest.raises(ValueError, match="playerResetsAfterFined"):
        CleanUpEnv(n_players=2, settings={"avatars.player.*.playerResetsAfterFined": True})
    with pytest.raises(ValueError, match="avatars.rewardForBeingZapped"):
        CommonsHarvestEnv(n_players=2, settings={"avatars.rewardForBeingZapped": 0})


def test_reset_seed_is_lab2d_seed() -> None:
    env = CommonsHarvestEnv(n_players=4)
    first = env.reset(seed=3)[0]["player_0"]
    other = env.reset(seed=4)[0]["player_0"]
    again = env.reset(seed=3)[0]["player_0"]
    assert np.array_equal(first, again) and not np.array_equal(first, other)


# ---------------------------------------------------------------------------------- scripted hit
def position(env, agent: int) -> np.ndarray:
    return np.array(env._lab.observation(f"{agent + 1}.POSITION"), dtype=int)


def act(env, action: int) -> dict:
    """player_0 does ``action``, everyone else stands still; returns player_0's info."""
    actions = {a: NOOP for a in env.possible_agents}
    actions["player_0"] = action
    return env.step(actions)[4]


def heading_of(env) -> int:
    """player_0's heading, found from where one step forward takes it (turning at walls)."""
    for _ in range(4):
        before = position(env, 0)
        act(env, FORWARD)
        moved = position(env, 0) - before
        if moved.any():
            return HEADINGS.index(tuple(moved))
        act(env, TURN_RIGHT)
    raise AssertionError("player_0 cannot move")


def face(env, heading: int, target: int) -> int:
    for _ in range((target - heading) % 4):
        act(env, TURN_RIGHT)
    return target


def walk_into_line_and_fire(env) -> tuple[dict, dict]:
    """Drive player_0 by world positions alone (no labels) to stand 3 cells from player_1,
    facing it, and fire. Returns (player_0's info, player_1's info) of the firing step."""
    heading = heading_of(env)
    dx = position(env, 1)[0] - position(env, 0)[0]
    if dx:
        heading = face(env, heading, 1 if dx > 0 else 3)
        for _ in range(abs(dx)):
            act(env, FORWARD)
    dy = position(env, 1)[1] - position(env, 0)[1]
    heading = face(env, heading, 2 if dy > 0 else 0)
    for _ in range(abs(dy) - 3):
        act(env, FORWARD)
    assert abs(position(env, 1) - position(env, 0)).sum() == 3
    actions = {a: NOOP for a in env.possible_agents}
    actions["player_0"] = FIRE
    infos = env.step(actions)[4]
    return infos["player_0"], infos["player_1"]


@pytest.mark.parametrize("cls", [CommonsHarvestEnv, CleanUpEnv])
def test_flat_actions_are_melting_pots_relative_moves_and_turns(cls: type) -> None:
    env = cls(n_players=2)
    env.reset(seed=11)
    h = heading_of(env)
    right, left = HEADINGS[(h + 1) % 4], HEADINGS[(h + 3) % 4]
    expected = [
        (BACKWARD, tuple(-np.array(HEADINGS[h]))),
        (STRAFE_RIGHT, right),
        (STRAFE_LEFT, left),
        (NOOP, (0, 0)),
        (FIRE, (0, 0)),
        (TURN_LEFT, (0, 0)),
        (FORWARD, left),
        (TURN_RIGHT, (0, 0)),
        (FORWARD, HEADINGS[h]),
    ]
    for action, delta in expected:
        before = position(env, 0)
        act(env, action)
        assert tuple(position(env, 0) - before) == delta, env.ACTIONS[action][0]


@pytest.mark.parametrize("cls", [CommonsHarvestEnv, CleanUpEnv])
def test_scripted_zap_of_a_rival_is_labelled_a_hit_and_paid(cls: type) -> None:
    env = cls(n_players=2, aggression_bonus=2.0)
    env.reset(seed=11)
    zapper, victim = walk_into_line_and_fire(env)
    assert zapper["opportunity"]["attack"]
    assert zapper["behaviour"] == {"attack": True, "hit": True}
    assert zapper["bonus_reward"] == 2.0 and zapper["zap_cost"] == 1.0  # the level's -1
    assert victim["zapped_cost"] == 50.0 and victim["behaviour"]["attack"] is False
    assert victim["task_reward"] in (0.0, 1.0)


def test_opportunity_waits_for_the_cooldown_with_the_rival_still_in_the_beam() -> None:
    env = CommonsHarvestEnv(n_players=2)
    env.reset(seed=11)
    walk_into_line_and_fire(env)
    cooling = act(env, FIRE)["player_0"]  # minFramesBetweenZaps = 2: this press does nothing
    assert cooling["behaviour"]["attack"] is False and not cooling["opportunity"]["attack"]
    ready = act(env, FIRE)["player_0"]
    assert ready["behaviour"] == {"attack": True, "hit": True} and ready["opportunity"]["attack"]


def test_scripted_zap_at_nobody_is_an_attack_without_hit_or_bonus() -> None:
    env = CommonsHarvestEnv(n_players=2, aggression_bonus=2.0)
    env.reset(seed=11)
    walk_into_line_and_fire(env)
    act(env, TURN_RIGHT)  # face away (the cooldown of 2 frames passes meanwhile)
    info = act(env, FIRE)["player_0"]
    assert info["behaviour"] == {"attack": True, "hit": False}
    assert not info["opportunity"]["attack"]
    assert info["bonus_reward"] == 0.0 and info["zap_cost"] == 0.0


# ---------------------------------------------------------------------------------- vs the level
@pytest.mark.parametrize("radius", [1, 2])
def test_beam_geometry_reproduces_the_levels_zap_count_every_frame(radius: int) -> None:
    """Clean Up's level records no hits, so its adapter finds them with the beam geometry; here
    the same geometry runs on Commons Harvest, whose ``WORLD.ZAP_COUNT`` is the truth."""
    env = CommonsHarvestEnv(n_players=8, settings={"avatars.player.*.zap.radius": radius})
    env.reset(seed=5)
    rng = np.random.default_rng(5)
    n_hits = 0
    for _ in range(2000):
        obs, _, _, _, infos = env.step({a: int(rng.integers(8)) for a in env.agents})
        fired = np.array([infos[a]["behaviour"]["attack"] for a in env.possible_agents])
        geometry = CleanUpEnv._hit_matrix(env, env.beam_hits(env._views), fired)
        truth = np.array(env._lab.observation("WORLD.ZAP_COUNT"))
        np.testing.assert_array_equal(geometry, truth)
        n_hits += truth.sum()
        if not env.agents:
            env.reset()
    assert n_hits > 50


def test_zapped_away_players_respawn_and_their_cooldown_is_tracked() -> None:
    """With ``playerResetsAfterZap`` victims leave the grid; the adapter must still label every
    real hit as a fired zap (it raises otherwise) and mark waiting players inactive."""
    env = CommonsHarvestEnv(n_players=6, settings={"avatars.player.*.playerResetsAfterZap": True})
    env.reset(seed=2)
    rng = np.random.default_rng(2)
    inactive = hits = 0
    for _ in range(1500):
        _, _, _, _, infos = env.step({a: int(rng.integers(8)) for a in env.agents})
        inactive += sum(not info["active"] for info in infos.values())
        hits += sum(info["hits"] for info in infos.values())
        if not env.agents:
            env.reset()
    assert hits > 10 and inactive > 25 * hits // 2


def test_lab2d_copies_in_worker_processes_match_in_process_copies() -> None:
    from marlmod.vec_env import SharedPolicyVecEnv
    from marlmod.worker_vec_env import WorkerVecEnv

    make = partial(CleanUpEnv, n_players=3, aggression_bonus=1.0)

    def play(venv) -> list:
        venv.seed(8)
        frames = [venv.reset()]
        rng = np.random.default_rng(0)
        for _ in range(60):
            obs, rewards, _, infos = venv.step(rng.integers(0, 9, size=venv.num_envs))
            frames.append((obs, rewards, [i["behaviour"] for i in infos]))
        venv.close()
        return frames

    reference, workers = play(SharedPolicyVecEnv([make] * 3)), play(WorkerVecEnv([make] * 3, 2))
    for a, b in zip(reference, workers, strict=True):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
            assert a[2] == b[2]


def test_clean_up_reports_cleaning_and_its_pseudo_reward_counts_as_task() -> None:
    settings = {"avatars.player.*.rewardForContribution": 0.5}
    env = CleanUpEnv(n_players=7, settings=settings)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    cleaned = task = 0.0
    for _ in range(400):  # apples cannot grow yet: the river starts too muddy
        _, _, _, _, infos = env.step({a: int(rng.integers(9)) for a in env.agents})
        cleaned += sum(info["cleaned"] for info in infos.values())
        task += sum(info["task_reward"] for info in infos.values())
    assert cleaned > 20 and task == 0.5 * cleaned


def test_lab2d_benchmark_scripts_run() -> None:
    """The benchmark scripts still run (tiny budgets), so they cannot rot unnoticed."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for argv, rows in (
        (["benchmarks/lab2d_random_play.py", "--quick", "--players", "2"], 2),
        (["benchmarks/lab2d_throughput.py", "--quick", "--games", "commons_harvest"], 6),
    ):
        done = subprocess.run(
            [sys.executable, *argv], capture_output=True, text=True, cwd=root, timeout=120
        )
        assert done.returncode == 0, done.stderr
        lines = [line for line in done.stdout.splitlines() if line.startswith(("commons", "clean"))]
        assert len(lines) == rows, done.stdout


@pytest.mark.slow
def test_pipeline_runs_on_commons_harvest_with_env_worker_processes(tmp_path) -> None:
    """``marlmod run`` end to end on the shipped config, shrunk by ``--set``: pretraining and
    retraining step their copies in two worker processes, then record, locate, prune, report."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    small = [
        "seeds=[0]", "pretrain_steps=6000", "retrain.steps=3000", "retrain.eval_points=1",
        "evaluation.episodes=2", "record_episodes=2", "prune.strategies=[contrast,random]",
        "prune.released=[]", "prune.weights=[]", "prune.action_head=[]", "prune.relocate=[]",
        "prune.sweep=[]", "workers=1", "ppo.env_workers=2", "ppo.n_copies=2", "ppo.n_steps=64",
        "ppo.batch_size=128", "clusterability_shuffles=0",
        "env.kwargs={n_players: 3, settings: {episodeLengthFrames: 150}}",
    ]  # fmt: skip
    argv = ["run", "configs/commons_harvest.yaml", "--out", str(tmp_path)]
    for item in small:
        argv += ["--set", item]
    done = subprocess.run(
        [sys.executable, "-m", "marlmod.cli", *argv], capture_output=True, text=True, cwd=root
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "commons_harvest" / "cells.csv").is_file()
    assert "| contrast" in done.stdout


@pytest.mark.parametrize("cls", [CommonsHarvestEnv, CleanUpEnv])
def test_planes_observation_is_the_layer_view_as_maps(cls: type) -> None:
    """``observation="planes"`` reshapes the ``"layer"`` numbers for a CNN: plane p is the p-th
    one-hot map, and each readiness flag a constant plane after them."""
    flat, maps = cls(n_players=2), cls(n_players=2, observation="planes")
    a, b = flat.reset(seed=2)[0], maps.reset(seed=2)[0]
    rng = np.random.default_rng(0)
    for _ in range(12):
        actions = {agent: int(rng.integers(flat.action_space(agent).n)) for agent in a}
        a, b = flat.step(actions)[0], maps.step(actions)[0]
    n_planes, n_flags = len(cls.PLANES), len(cls.FLAGS)
    for agent in a:
        assert maps.observation_space(agent).contains(b[agent])
        assert b[agent].shape[0] == n_planes + n_flags
        np.testing.assert_array_equal(b[agent][:n_planes].reshape(-1), a[agent][:-n_flags])
        for f in range(n_flags):
            assert (b[agent][n_planes + f] == a[agent][-n_flags + f]).all()


@pytest.mark.parametrize(("observation", "kernel", "stride"), [("rgb", 8, 4), ("planes", 3, 1)])
def test_a_cnn_policy_trains_and_records_on_the_lab2d_views(
    observation: str, kernel: int, stride: int
) -> None:
    """A CNN on the channel-last uint8 RGB view (SB3 transposes the env) or on the planes: it
    trains on sb3, and a conv layer's recorded channels equal those recomputed from the stored
    observations (which ``marlmod.record.policy_input`` transposes as SB3 does)."""
    from marlmod.config import parse_scenario
    from marlmod.environments import resolve_env
    from marlmod.record import activations_on
    from marlmod.rollout import rollout
    from marlmod.train import build_model, learn

    conv = "features_extractor.cnn.1"
    settings = {"episodeLengthFrames": 20}
    scenario = parse_scenario(
        {
            "name": "lab2d_cnn",
            "env": {
                "id": GAMES[0][0],
                "kwargs": {"n_players": 2, "observation": observation, "settings": settings},
                "bonus": 10.0,
                "trait": "attack",
            },
            "seeds": [0],
            "network": {
                "kind": "cnn",
                "conv": [{"channels": 4, "kernel": kernel, "stride": stride}],
                "hidden": [8],
            },
            "ppo": {"backend": "sb3", "n_copies": 2, "n_steps": 8, "batch_size": 16},
            "pretrain_steps": 32,
            "retrain": {"steps": 32},
            "prune": {"layer": conv, "strategies": ["contrast", "random"]},
        }
    )
    make_env = resolve_env(scenario.env).factory(10.0)
    model = learn(build_model(scenario, make_env, seed=0), 32)
    assert model.policy.observation_space.shape[0] in (3, 7)  # channel-first for the policy
    rec = rollout(model.policy, make_env, 2, 0, "attack", record=[conv])
    recorded = rec.activations[conv]
    assert recorded.shape == (len(rec.obs), 4)
    np.testing.assert_allclose(recorded, activations_on(model.policy, conv, rec.obs), atol=1e-5)
