"""What the Lab2D games look like under uniformly random play: how often the attack beam fires,
hits, has a rival in it, what the task pays, how long episodes are, how fast the env steps.

Run (from the repository root, venv active, ``pip install -e '.[lab2d]'``)::

    python benchmarks/lab2d_random_play.py                      # both games, 2/4/5/7 players
    python benchmarks/lab2d_random_play.py --games clean_up --players 5 --episodes 4
    python benchmarks/lab2d_random_play.py --quick

The numbers in the games' docstrings (``envs/commons_harvest.py``, ``envs/clean_up.py``) come
from the default run. Each row plays ``--episodes`` full episodes per setting (seeds 0, 1, …)
with every player choosing uniformly among the flat actions. Rates are per agent-step:
``press`` = the fire action chosen; ``attack`` = the beam fired (the ``attack`` label: the level's
cooldown lets a press through only when ready); ``opp`` = a rival in the beam of a ready player
(the ``opportunity.attack`` label); ``hit`` = the beam hit at least one rival (the ``hit`` label);
``hit|opp`` = hits per opportunity step on which the beam fired. Per player and episode:
``task`` = task return (apples), ``zapped`` = times hit. ``frames`` = episode length;
``env-steps/cpu-s`` = parallel env steps per CPU second of this process (one core).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

GAMES = ("commons_harvest", "clean_up")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", default=",".join(GAMES))
    parser.add_argument("--players", default="2,4,5,7", help="comma-separated player counts")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--settings", default="{}", help="Lab2D settings overrides as JSON")
    parser.add_argument("--quick", action="store_true", help="200 frames of one episode")
    return parser.parse_args(argv)


def env_class(game: str) -> type:
    if game == "commons_harvest":
        from envs.commons_harvest import CommonsHarvestEnv

        return CommonsHarvestEnv
    from envs.clean_up import CleanUpEnv

    return CleanUpEnv


def play(game: str, players: int, episodes: int, settings: dict, max_frames: int | None) -> dict:
    env = env_class(game)(n_players=players, settings=settings)
    rng = np.random.default_rng(0)
    counts = dict.fromkeys(("press", "attack", "opp", "hit", "opp_fired", "opp_hit"), 0)
    agent_steps = frames = 0
    task, zapped = [], []
    cpu = time.process_time()
    for episode in range(episodes):
        env.reset(seed=episode)
        ep_task, ep_zapped = np.zeros(players), np.zeros(players)
        while env.agents and (max_frames is None or frames < max_frames * (episode + 1)):
            actions = {a: int(rng.integers(env.action_space(a).n)) for a in env.agents}
            _, _, _, _, infos = env.step(actions)
            frames += 1
            for i, info in enumerate(infos.values()):
                fired, opp, hit = (
                    info["behaviour"]["attack"],
                    info["opportunity"]["attack"],
                    info["behaviour"]["hit"],
                )
                counts["press"] += info["fire_pressed"]
                counts["attack"] += fired
                counts["opp"] += opp
                counts["hit"] += hit
                counts["opp_fired"] += opp and fired
                counts["opp_hit"] += opp and fired and hit
                ep_task[i] += info["task_reward"]
                ep_zapped[i] += info["times_hit"]
                agent_steps += 1
        task.append(ep_task.mean())
        zapped.append(ep_zapped.mean())
    cpu = time.process_time() - cpu
    rates = {k: counts[k] / agent_steps for k in ("press", "attack", "opp", "hit")}
    rates["hit|opp"] = counts["opp_hit"] / max(1, counts["opp_fired"])
    return {
        **rates,
        "task": float(np.mean(task)),
        "zapped": float(np.mean(zapped)),
        "frames": frames / episodes,
        "env-steps/cpu-s": frames / cpu,
    }


def main(argv: list[str] | None = None) -> None:
    import json

    args = parse_args(argv)
    settings = json.loads(args.settings)
    episodes, max_frames = (1, 200) if args.quick else (args.episodes, None)
    columns = ("press", "attack", "opp", "hit", "hit|opp", "task", "zapped", "frames")
    print(f"{'game':<16}{'players':>8}" + "".join(f"{c:>9}" for c in columns) + "  env-steps/cpu-s")
    for game in args.games.split(","):
        for players in (int(p) for p in args.players.split(",")):
            row = play(game, players, episodes, settings, max_frames)
            cells = "".join(f"{row[c]:>9.4f}" if row[c] < 1 else f"{row[c]:>9.1f}" for c in columns)
            print(f"{game:<16}{players:>8}{cells}  {row['env-steps/cpu-s']:,.0f}", flush=True)


if __name__ == "__main__":
    main()
