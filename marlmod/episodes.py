"""Episode animations a person can follow: one episode before pruning, right after, and after
cooperative retraining, side by side in one GIF.

Frames come from the environment's own ``render_mode="rgb_array"``, so any marlmod env that can
render can be watched; an env may declare one line explaining its frames as
``metadata["render_legend"]`` (Gathering does), printed under the panels. Each panel is captioned
with the model it shows and its measured trait rate; under each, the step and how often the
trait has occurred so far. All three play the same episode (same env seed, cooperative variant),
so differences are the models'. GIFs are written with imageio, text drawn with Pillow.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from stable_baselines3.common.policies import BasePolicy

from marlmod.atomic import read_json, write_with
from marlmod.cells import NO_PRUNE, Cell
from marlmod.environments import EnvFactory
from marlmod.errors import MarlmodError
from marlmod.experiment import stored_scenario
from marlmod.migrate import check_layout
from marlmod.pipeline import EVAL_SEED_OFFSET, SeedRun
from marlmod.prune import load_prune, zeroed

PANEL_WIDTH = 260  # small env frames are scaled up by whole pixels to at least this width
MAX_PANEL_WIDTH = 360  # larger ones are scaled down to this
GAP, TITLE, HEADER, FOOTER = 12, 26, 40, 22
BACKGROUND, TEXT, DIM = (250, 250, 250), (20, 20, 20), (110, 110, 110)


@dataclass(frozen=True)
class Episode:
    """One played episode: its frames (the reset frame first) and, per frame, how many agents
    showed the trait on the step that led to it."""

    frames: list[np.ndarray]
    trait: list[int]


def play_episode(
    policy: BasePolicy, make_env: EnvFactory, seed: int, trait: str, deterministic: bool = False
) -> Episode:
    """Play one episode with the shared policy acting for every agent."""
    env = make_env()
    observations, _ = env.reset(seed=seed)
    torch.manual_seed(seed)
    frames, counts = [env.render()], [0]
    while env.agents:
        agents = list(env.agents)
        actions, _ = policy.predict(
            np.stack([observations[a] for a in agents]), deterministic=deterministic
        )
        observations, _, _, _, infos = env.step(dict(zip(agents, actions.tolist(), strict=True)))
        frames.append(env.render())
        counts.append(sum(bool(i.get("behaviour", {}).get(trait)) for i in infos.values()))
    env.close()
    if any(frame is None for frame in frames):
        raise MarlmodError("the environment returned no frame; does it support rgb_array?")
    return Episode(frames, counts)


@dataclass(frozen=True)
class Panel:
    """One model's episode and what to say above it."""

    title: str
    caption: str
    episode: Episode


def side_by_side(panels: list[Panel], title: str, legend: str, trait: str) -> list[np.ndarray]:
    """The panels' episodes as one animation: per time step a frame with every panel's env
    frame under its caption, the step and the trait count so far under each. An episode that
    ended earlier holds its last frame."""
    height, width = panels[0].episode.frames[0].shape[:2]
    scale = max(1, -(-PANEL_WIDTH // width))
    pw, ph = width * scale, height * scale
    if pw > MAX_PANEL_WIDTH:
        pw, ph = MAX_PANEL_WIDTH, round(height * MAX_PANEL_WIDTH / width)
    # whole-pixel scaling keeps a grid world's cells sharp; smoothing a large frame down
    resample = Image.Resampling.NEAREST if pw >= width else Image.Resampling.BILINEAR
    font, small = ImageFont.load_default(size=13), ImageFont.load_default(size=11)
    legend_lines = (
        textwrap.wrap(legend, width=int(len(panels) * (pw + GAP) / 6.2)) if legend else []
    )
    size = (
        GAP + len(panels) * (pw + GAP),
        TITLE + HEADER + ph + FOOTER + 14 * len(legend_lines) + GAP,
    )
    steps = max(len(p.episode.frames) for p in panels)
    out = []
    for t in range(steps):
        canvas = Image.new("RGB", size, BACKGROUND)
        draw = ImageDraw.Draw(canvas)
        draw.text((GAP, 6), title, fill=TEXT, font=font)
        for k, panel in enumerate(panels):
            x = GAP + k * (pw + GAP)
            frames, counts = panel.episode.frames, panel.episode.trait
            i = min(t, len(frames) - 1)
            draw.text((x, TITLE), panel.title, fill=TEXT, font=font)
            draw.text((x, TITLE + 18), panel.caption, fill=DIM, font=small)
            image = Image.fromarray(frames[i][..., :3]).resize((pw, ph), resample)
            canvas.paste(image, (x, TITLE + HEADER))
            ended = " (ended)" if t >= len(frames) else ""
            footer = f"step {i}/{len(frames) - 1}{ended} · {trait} so far: {sum(counts[: i + 1])}"
            draw.text((x, TITLE + HEADER + ph + 4), footer, fill=TEXT, font=small)
        for n, line in enumerate(legend_lines):
            y = TITLE + HEADER + ph + FOOTER + 14 * n
            draw.text((GAP, y), line, fill=DIM, font=small)
        out.append(np.asarray(canvas))
    return out


def stage_panels(run: SeedRun, strategy: str) -> list[Panel]:
    """The cell's three models (two for fine-tuning alone), each with its episode."""
    cell = read_json(run.dir / strategy / "cell.json")
    scenario, spec = run.scenario, Cell.parse(strategy)
    models = [
        ("before pruning", "pretrained with the bonus", "before", run.pretrained_model()),
    ]
    if spec.pruned:
        prune, masks = load_prune(run.dir / spec.prune_cell.name)
        what = f"{len(prune.units)} units" if prune.units else f"{zeroed(masks):,} weights"
        pruned = run.pruned_model(spec.prune_cell.name)[0]
        models.append((f"pruned: {strategy}", f"{what} of {prune.layer} zeroed", "pruned", pruned))
    held = "masks held" if spec.hold else "no masks held"
    models.append(
        (
            "after cooperative retraining",
            f"{scenario.retrain.steps:,} agent-steps, bonus 0, {held}",
            "retrained",
            run.load(run.dir / strategy / "model.zip"),
        )
    )
    render_env = run.env.factory(0.0, render_mode="rgb_array")
    seed = EVAL_SEED_OFFSET + run.seed
    panels = []
    for title, caption, stage, model in models:
        episode = play_episode(
            model.policy, render_env, seed, scenario.env.trait, scenario.evaluation.deterministic
        )
        rate = cell[f"trait_rate_{stage}"]
        panels.append(Panel(title, f"{caption} · trait rate {rate:.3g}", episode))
    return panels


def write_episode_gif(run_dir: Path, seed: int, strategy: str, out_dir: Path, fps: int = 6) -> Path:
    """One GIF of the same episode at the stages of one strategy's cell, side by side."""
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
    probe = run.env.factory(0.0)()
    legend = probe.metadata.get("render_legend", "")
    probe.close()
    title = (
        f"{scenario.name} · seed {seed} · cell {strategy} · one evaluation episode "
        f"(env seed {EVAL_SEED_OFFSET + seed}, bonus 0), sampled actions"
    )
    if strategy == NO_PRUNE:
        title = title.replace(f"cell {strategy}", "fine-tuning only")
    frames = side_by_side(stage_panels(run, strategy), title, legend, scenario.env.trait)
    target = out_dir / f"seed{seed}_{strategy}.gif"
    write_with(
        target,
        lambda tmp: imageio.mimsave(tmp, frames, format="GIF", duration=1000 / fps, loop=0),
    )
    return target
