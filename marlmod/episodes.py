"""Episode animations of a run's agents: before pruning, right after, and after retraining.

Frames come from the environment's own ``render_mode="rgb_array"``, so any marlmod env that can
render can be watched; GIFs are written with imageio.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import torch
from stable_baselines3.common.policies import BasePolicy

from marlmod.atomic import read_json, write_with
from marlmod.cells import NO_PRUNE
from marlmod.environments import EnvFactory
from marlmod.errors import MarlmodError
from marlmod.experiment import stored_scenario
from marlmod.migrate import check_layout
from marlmod.pipeline import EVAL_SEED_OFFSET, SeedRun

SCALE = 3  # pixels per env pixel: Gathering's frames are small


def episode_frames(
    policy: BasePolicy, make_env: EnvFactory, seed: int, deterministic: bool = False
) -> list[np.ndarray]:
    """Play one episode with the shared policy acting for every agent; return its frames."""
    env = make_env()
    observations, _ = env.reset(seed=seed)
    torch.manual_seed(seed)
    frames = [env.render()]
    while env.agents:
        agents = list(env.agents)
        actions, _ = policy.predict(
            np.stack([observations[a] for a in agents]), deterministic=deterministic
        )
        observations, *_ = env.step(dict(zip(agents, actions.tolist(), strict=True)))
        frames.append(env.render())
    env.close()
    if any(frame is None for frame in frames):
        raise MarlmodError("the environment returned no frame; does it support rgb_array?")
    return [np.kron(f, np.ones((SCALE, SCALE, 1), dtype=f.dtype)) for f in frames]


def write_episode_gifs(
    run_dir: Path, seed: int, strategy: str, out_dir: Path, fps: int = 8
) -> list[Path]:
    """GIFs of the same episode (same env seed) at the three stages of one strategy's cell."""
    info = run_dir / "run.json"
    if not info.is_file():
        raise MarlmodError(f"{run_dir} is not a run directory (no run.json)")
    scenario = stored_scenario(read_json(info), info)
    check_layout(run_dir)
    run = SeedRun(scenario, seed, run_dir)
    if not (run.dir / strategy / "model.zip").is_file():
        raise MarlmodError(
            f"no retrained model for strategy {strategy!r} in {run.dir}; run the scenario first"
        )
    render_env = run.env.factory(0.0, render_mode="rgb_array")
    stages = {"before": run.pretrained_model()}
    if strategy != NO_PRUNE:
        stages["pruned"] = run.pruned_model(strategy)[0]
    stages["retrained"] = run.load(run.dir / strategy / "model.zip")
    written = []
    for stage, model in stages.items():
        frames = episode_frames(
            model.policy, render_env, EVAL_SEED_OFFSET + seed, scenario.evaluation.deterministic
        )
        target = out_dir / f"seed{seed}_{strategy}_{stage}.gif"
        write_with(
            target,
            lambda tmp, frames=frames: imageio.mimsave(
                tmp, frames, format="GIF", duration=1000 / fps, loop=0
            ),
        )
        written.append(target)
    return written
