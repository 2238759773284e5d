"""The Lab2D adapters' label rules on hand-made scenes: no Lab2D needed, so these always run.

The scenes are egocentric views as the adapters see them: the firing player at ``ORIGIN``
facing up (row 0 is farthest ahead), Commons Harvest's default beam (length 5, radius 1) unless a
test says otherwise. ``tests/test_lab2d_envs.py`` checks the same rules against Lab2D itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from envs.lab2d import lab2d_settings
from envs.lab2d_labels import (
    ZapClock,
    beam_hits,
    beam_lanes,
    cooldown_step,
    encode_views,
    hit_counts,
    split_reward,
    sprite_lookup,
    viewed_player,
)

ROWS = COLS = 11
ORIGIN = (9, 5)  # view.forward = 9 rows ahead, view.left = 5 columns to the left
WALL = -2


def scene(**cells: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(player_at, blocked) of one view: ``p<k>=(row, col)`` puts sprite-player k there,
    ``wall<n>=(row, col)`` a wall. The firer itself (sprite-player 0) sits at ORIGIN."""
    player_at = np.full((1, ROWS, COLS), -1)
    blocked = np.zeros((1, ROWS, COLS), bool)
    player_at[0][ORIGIN] = 0
    blocked[0][ORIGIN] = True
    for name, (r, c) in cells.items():
        blocked[0, r, c] = True
        if name.startswith("p"):
            player_at[0, r, c] = int(name[1:])
    return player_at, blocked


def hit(length: int = 5, radius: int = 1, **cells: tuple[int, int]) -> list[int]:
    player_at, blocked = scene(**cells)
    lanes = beam_hits(player_at, blocked, ORIGIN, length, radius)[0]
    return sorted(int(p) for p in lanes[lanes >= 0])


# ---------------------------------------------------------------------------------- beam shape
def test_beam_lanes_follow_lab2d_side_lanes_start_beside_the_firer_centre_one_ahead() -> None:
    lanes = beam_lanes(ORIGIN, length=5, radius=1)
    assert lanes == [
        (-1, [(9, 4), (8, 4), (7, 4), (6, 4), (5, 4)]),
        (1, [(9, 6), (8, 6), (7, 6), (6, 6), (5, 6)]),
        (0, [(8, 5), (7, 5), (6, 5), (5, 5), (4, 5)]),
    ]
    assert [len(cells) for _, cells in beam_lanes(ORIGIN, 5, 2)] == [5, 4, 5, 4, 5]


def test_rival_ahead_within_length_is_hit_beyond_it_is_not() -> None:
    assert hit(p2=(4, 5)) == [2]  # 5 cells ahead: the last cell of the centre lane
    assert hit(p2=(3, 5)) == []  # 6 ahead


def test_rival_beside_the_firer_is_hit_and_side_lanes_are_one_shorter_per_step_out() -> None:
    assert hit(p3=(9, 4)) == [3]  # directly left: the first cell of the left lane
    assert hit(p3=(5, 6)) == [3]  # 4 ahead on the right lane: its last cell
    assert hit(p3=(4, 6)) == []  # 5 ahead on a side lane is past its end


def test_walls_and_nearer_players_stop_a_lane() -> None:
    assert hit(wall=(6, 5), p2=(5, 5)) == []
    assert hit(p1=(7, 5), p2=(5, 5)) == [1]  # only the nearer player of a lane is hit
    assert hit(p1=(7, 5), p2=(7, 4), p3=(7, 6)) == [1, 2, 3]  # one per lane


def test_players_behind_or_outside_the_beam_are_not_hit() -> None:
    assert hit(p1=(10, 5), p2=(10, 4), p3=(9, 7), p4=(6, 3)) == []


def test_side_blocked_in_its_first_cell_ends_that_side_only() -> None:
    # radius 2: a wall right beside the firer on the left stops the left r=2 lane too ...
    assert hit(radius=2, wall=(9, 4), p2=(8, 3)) == []
    # ... but a wall further along the r=1 lane does not, and the right side is unaffected.
    assert hit(radius=2, wall=(8, 4), p2=(8, 3)) == [2]
    assert hit(radius=2, wall=(9, 4), p2=(8, 7)) == [2]
    # a player right beside is hit and, being a blocker, also ends its side
    assert hit(radius=2, p1=(9, 4), p2=(8, 3)) == [1]


def test_beam_reaching_outside_the_view_is_refused() -> None:
    player_at, blocked = scene()
    with pytest.raises(ValueError, match="outside the view"):
        beam_hits(player_at, blocked, ORIGIN, length=10, radius=1)


def test_beam_hits_each_view_separately() -> None:
    a, blocked_a = scene(p1=(6, 5))
    b, blocked_b = scene(wall=(7, 5), p2=(6, 5))
    lanes = beam_hits(np.concatenate([a, b]), np.concatenate([blocked_a, blocked_b]), ORIGIN, 5, 1)
    assert (lanes[0] >= 0).any() and not (lanes[1] >= 0).any()


# ---------------------------------------------------------------------------------- sprites
def test_sprite_ids_encode_sorted_name_index_and_orientation() -> None:
    names = ["Apple", "Player.1", "Player.2", "Wall"]
    lut = sprite_lookup(names, {"Player.2": 7, "Wall": 3})
    assert lut[0] == -1  # 0 is an empty cell
    assert list(lut[1 + 4 * 2 : 1 + 4 * 3]) == [7, 7, 7, 7]  # Player.2, facing N, E, S, W
    assert lut[1 + 4 * 3 + 2] == 3 and lut[1 + 4 * 1] == -1
    with pytest.raises(ValueError, match="sorted"):
        sprite_lookup(["Wall", "Apple"], {})


def test_every_player_sees_itself_as_player_1() -> None:
    # viewer 2 (0-based) is drawn with sprite 0 and player 0 with sprite 2; others as themselves
    assert [viewed_player(k, viewer=2) for k in range(4)] == [2, 1, 0, 3]
    assert [viewed_player(k, viewer=0) for k in range(3)] == [0, 1, 2]


def test_encode_views_one_plane_per_sprite_kind_across_layers() -> None:
    views = np.zeros((2, 2, 3, 2), np.int64)  # 2 views of 2x3 cells, 2 layers
    views[0, 0, 1, 0] = 5  # plane 1 in layer 0
    views[1, 1, 2, 1] = 9  # plane 0 in layer 1
    plane_of = np.full(16, -1)
    plane_of[5], plane_of[9] = 1, 0
    out = encode_views(views, plane_of, n_planes=2)
    assert out.shape == (2, 12) and out.dtype == np.float32
    assert np.flatnonzero(out[0]).tolist() == [6 + 1]  # plane 1, cell (0, 1)
    assert np.flatnonzero(out[1]).tolist() == [5]  # plane 0, cell (1, 2)


# ---------------------------------------------------------------------------------- cooldowns
def run_clock(pressed: list[bool], min_between: int = 2, active: list[bool] | None = None):
    clock, fired = ZapClock.start(1), []
    active = active or [True] * (len(pressed) + 1)
    for t, press in enumerate(pressed):
        f, clock = clock.step(
            np.array([active[t]]),
            np.array([press]),
            np.array([active[t + 1]]),
            np.array([min_between]),
        )
        fired.append(bool(f[0]))
    return fired


def test_zap_fires_at_most_every_min_frames() -> None:
    assert run_clock([True] * 6) == [True, False, True, False, True, False]
    assert run_clock([True] * 4, min_between=3) == [True, False, False, True]
    assert run_clock([False, True, True, False, True]) == [False, True, False, False, True]


def test_zap_disabled_by_negative_min_and_never_fires_while_waiting() -> None:
    assert run_clock([True] * 3, min_between=-1) == [False] * 3
    assert run_clock([True] * 3, active=[False] * 4) == [False] * 3


def test_respawned_player_must_wait_out_its_old_cooldown() -> None:
    # Zaps at frame 9 (framesOld 10 → canZapAfter 12), is zapped away, respawns: framesOld
    # restarts at 0 while canZapAfterFrames stays 12, so 12 more frames pass before it can fire.
    pressed = [False] * 9 + [True] + [False] * 5 + [True] * 14
    active = [True] * 11 + [False] * 4 + [True] * 15
    fired = run_clock(pressed, active=active)
    assert fired[9] and not any(fired[10:27]) and fired[27]


def test_clean_up_cooldown_counts_down_wait_frames_after_firing() -> None:
    cool, fired = np.zeros(1, np.int64), []
    for press in [True] * 8 + [False, True]:
        f, cool = cooldown_step(cool, np.array([3]), np.array([True]), np.array([press]))
        fired.append(bool(f[0]))
    assert fired == [True, False, False, False, True, False, False, False, False, True]
    f, cool = cooldown_step(np.array([2]), np.array([3]), np.array([False]), np.array([True]))
    assert not f[0] and cool[0] == 2  # a waiting player's counter does not run
    f, _ = cooldown_step(np.array([0]), np.array([-1]), np.array([True]), np.array([True]))
    assert not f[0]


# ---------------------------------------------------------------------------------- hits, reward
def test_hit_counts_read_victim_rows_and_zapper_columns() -> None:
    zap = np.array([[0, 1, 0], [0, 0, 0], [2, 1, 0]])  # [victim, zapper]
    dealt, received = hit_counts(zap)
    assert dealt.tolist() == [2, 2, 0] and received.tolist() == [1, 0, 3]


def test_split_reward_moves_the_zap_rewards_into_costs_and_closes() -> None:
    level = np.array([-1.0 + 1, -50.0, 0.0])  # zapper ate an apple, victim, bystander
    split = split_reward(
        level, np.array([1, 0, 0]), np.array([0, 1, 0]), np.full(3, -1.0), np.full(3, -50.0)
    )
    assert split.task.tolist() == [1.0, 0.0, 0.0]
    assert split.zap_cost.tolist() == [1.0, 0.0, 0.0]
    assert split.zapped_cost.tolist() == [0.0, 50.0, 0.0]
    np.testing.assert_array_equal(split.task - split.zap_cost - split.zapped_cost, level)


def test_settings_star_expands_to_every_player_and_bools_become_lua() -> None:
    settings = lab2d_settings(
        "clean_up", 2, {"avatars.player.*.playerResetsAfterFined": True, "episodeLengthFrames": 9}
    )
    assert settings == {
        "levelName": "clean_up",
        "numPlayers": "2",
        "avatars.player.1.playerResetsAfterFined": "true",
        "avatars.player.2.playerResetsAfterFined": "true",
        "episodeLengthFrames": "9",
    }
