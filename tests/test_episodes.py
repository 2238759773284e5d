"""Episode GIFs a person can follow: stages side by side with captions and a step counter, and
Gathering's frames show who zapped (and how far) and who is frozen."""

from __future__ import annotations

import numpy as np

from envs.gathering import CELL_PIXELS, ZAP, GatheringEnv
from marlmod.episodes import Episode, Panel, side_by_side


def episode(length: int, shade: int) -> Episode:
    frames = [np.full((10, 20, 3), shade + t, dtype=np.uint8) for t in range(length)]
    return Episode(frames, [0] + [1] * (length - 1))


def test_panels_play_side_by_side_and_an_ended_episode_holds_its_last_frame() -> None:
    panels = [Panel("before", "a", episode(3, 10)), Panel("after", "b", episode(5, 100))]
    frames = side_by_side(panels, "title", "what the colours mean", "attack")
    assert len(frames) == 5 and len({f.shape for f in frames}) == 1
    height, width = frames[0].shape[:2]
    assert width > 2 * 260 and height > 130  # both panels, scaled up, with text around them
    first = frames[0][:, : width // 2]
    assert (frames[3][:, : width // 2] != first).any()  # the step counter moved on
    # the shorter episode's picture holds its last frame (shade 12) while the other plays on
    assert (frames[4] == 12).all(axis=2).sum() == (frames[2] == 12).all(axis=2).sum() > 0
    assert (frames[4] == 104).all(axis=2).any()


def cell(frame: np.ndarray, position: np.ndarray) -> np.ndarray:
    y, x = position * CELL_PIXELS
    return frame[y : y + CELL_PIXELS, x : x + CELL_PIXELS]


def test_gathering_frames_show_the_zap_its_range_and_the_frozen_agent() -> None:
    env = GatheringEnv(render_mode="rgb_array", grid_size=7, apple_density=0.0)
    env.reset(seed=0)
    env.positions[:] = [[3, 3], [3, 4]]
    colours = [
        tuple(cell(env.render(), p)[CELL_PIXELS // 2, CELL_PIXELS // 2]) for p in env.positions
    ]
    assert colours[0] != colours[1]  # distinct colours

    env.step({"agent_0": ZAP, "agent_1": 0})
    frame = env.render()
    zapper, frozen = cell(frame, env.positions[0]), cell(frame, env.positions[1])
    assert (zapper == 255).all(axis=2).any()  # the white ring of a zap
    corner = cell(frame, np.array([1, 1]))  # empty, within Chebyshev range 2 of (3, 3)
    far = cell(frame, np.array([6, 6]))
    assert (
        corner[CELL_PIXELS // 2, CELL_PIXELS // 2, 0] > far[CELL_PIXELS // 2, CELL_PIXELS // 2, 0]
    )
    middle = frozen[CELL_PIXELS // 2, CELL_PIXELS // 2]
    assert tuple(middle) != colours[1]  # no disc: hollow
    assert (frozen[..., 2] > 120).any()  # but its ring, in its own (blue) colour, is there
