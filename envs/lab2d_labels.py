"""The label logic of the Lab2D adapters, as pure functions testable without Lab2D.

``envs/commons_harvest.py`` and ``envs/clean_up.py`` keep DeepMind Lab2D's levels as they are and
compute marlmod's labels on top. Each rule below re-states a piece of Lab2D's own source (dmlab2d
1.0.x: the C++ grid engine and the levels' Lua), cited in its docstring, so a label says what the
level did rather than what an adapter guessed. Everything here works on NumPy arrays and plain ints;
nothing imports ``dmlab2d``.

Conventions: players are numbered from 0 here (Lab2D numbers them from 1); a *view* is one
player's egocentric ``LAYER`` observation, rows going away from the player (row 0 farthest ahead)
and columns left to right, so "forward" is ``row - 1`` and the player's right is ``col + 1``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np

Cell = tuple[int, int]
ORIENTATIONS = 4  # N, E, S, W


# ---------------------------------------------------------------------------------- sprite ids
def sprite_lookup(
    names: Sequence[str], value_of: Mapping[str, int], default: int = -1
) -> np.ndarray:
    """An array ``lut`` with ``lut[sprite_id] == value_of[name]`` (``default`` for other names).

    A ``LAYER`` view holds sprite ids (``grid_view.h``, ``ToSpriteId``): 0 for an empty cell,
    else ``1 + 4 * index + orientation``, where ``index`` is the sprite's place in the level's
    sorted, de-duplicated sprite names (``world.cc``, ``MakeOrderedUnique``) and ``orientation``
    is the sprite's facing relative to the viewer. ``names`` must be that sorted list.
    """
    if list(names) != sorted(set(names)):
        raise ValueError("sprite names must be sorted and unique, as Lab2D orders them")
    lut = np.full(1 + ORIENTATIONS * len(names), default, dtype=np.int64)
    for index, name in enumerate(names):
        if name in value_of:
            lut[1 + ORIENTATIONS * index : 1 + ORIENTATIONS * (index + 1)] = value_of[name]
    return lut


def viewed_player(sprite_player: int, viewer: int) -> int:
    """The player (0-based) drawn with sprite ``Player.<sprite_player + 1>`` in ``viewer``'s view.

    The levels' ``avatar.lua`` (``thisPlayerLooksBlue``) draws the viewer with player 1's sprite
    and player 1 with the viewer's, so every player sees itself in the same colour.
    """
    if sprite_player == 0:
        return viewer
    if sprite_player == viewer:
        return 0
    return sprite_player


def encode_views(views: np.ndarray, plane_of: np.ndarray, n_planes: int) -> np.ndarray:
    """float32 [views, plane * row * col]: one-hot planes of ``LAYER`` views, plane-major.

    ``plane_of`` maps sprite ids to plane numbers (-1: not shown). Sprite ids are category codes
    whose size means nothing, so an MLP gets one binary plane per kind of sprite instead.
    """
    n, rows, cols = views.shape[:3]
    cells = rows * cols
    out = np.zeros((n, n_planes * cells), dtype=np.float32)
    planes = plane_of[views]  # [views, rows, cols, layers]
    view = np.arange(n).reshape(n, 1, 1, 1)
    cell = np.arange(cells).reshape(1, rows, cols, 1)
    shown = planes >= 0
    out[np.broadcast_to(view, planes.shape)[shown], (planes * cells + cell)[shown]] = 1.0
    return out


# ---------------------------------------------------------------------------------- the beam
def beam_lanes(origin: Cell, length: int, radius: int) -> list[tuple[int, list[Cell]]]:
    """The lanes of a beam fired from ``origin`` facing up the view, in Lab2D's firing order, each
    as ``(side, cells)``: side -1 (left) and +1 (right) lanes, then the centre lane (side 0).

    A re-statement of ``Grid::HitBeamActual`` (``grid.cc``): on each side, lanes ``r = 1 …
    radius`` start *beside* the player and run ``length - r + 1`` cells forward; the centre lane
    starts one cell ahead and runs ``length`` cells.
    """
    row, col = origin
    lanes = [
        (side, [(row - k, col + side * r) for k in range(length - r + 1)])
        for side in (-1, 1)
        for r in range(1, radius + 1)
    ]
    lanes.append((0, [(row - k, col) for k in range(1, length + 1)]))
    return [(side, cells) for side, cells in lanes if cells]


def beam_hits(
    player_at: np.ndarray, blocked: np.ndarray, origin: Cell, length: int, radius: int
) -> np.ndarray:
    """int [views, lanes]: the player each lane of a beam fired now would hit (-1: none).

    ``blocked[v, row, col]`` marks the cells of view ``v`` whose piece blocks a beam (walls and
    players: their hit callbacks return true); ``player_at`` holds the sprite-player number
    (``Player.<k + 1>`` -> ``k``) drawn in a cell, -1 elsewhere. As in ``CheckHitLineSegment``
    (``grid.cc``), every piece in a reached cell is hit, a lane stops at its first blocking cell,
    and a side lane blocked in its very first cell ends that side.
    """
    views = len(blocked)
    sides, rows, cols, real = _lane_cells(origin, length, radius, blocked.shape[1:])
    lane_blocked = blocked[:, rows, cols] & real  # [views, lanes, cells]
    first = lane_blocked.argmax(axis=2)  # [views, lanes]
    stops = lane_blocked.any(axis=2)
    lane = np.arange(len(sides))
    hit = player_at[np.arange(views)[:, None], rows[lane, first], cols[lane, first]]
    for side in (-1, 1):  # a side lane blocked in its first cell ends its side
        closed = np.zeros(views, bool)
        for j in np.flatnonzero(sides == side):
            stops[:, j] &= ~closed
            closed |= stops[:, j] & (first[:, j] == 0)
    return np.where(stops, hit, -1)


@lru_cache(maxsize=16)
def _lane_cells(
    origin: Cell, length: int, radius: int, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``beam_lanes`` as padded index arrays: sides [lanes], rows and cols [lanes, cells], and
    which entries are real cells (padding is never blocked)."""
    lanes = beam_lanes(origin, length, radius)
    if any(not (0 <= r < shape[0] and 0 <= c < shape[1]) for _, cells in lanes for r, c in cells):
        raise ValueError("the beam reaches outside the view; labels are read from the view")
    width = max(len(cells) for _, cells in lanes)
    rows = np.zeros((len(lanes), width), np.int64)
    cols = np.zeros((len(lanes), width), np.int64)
    real = np.zeros((len(lanes), width), bool)
    for j, (_, cells) in enumerate(lanes):
        rows[j, : len(cells)], cols[j, : len(cells)] = np.array(cells).T
        real[j, : len(cells)] = True
    return np.array([side for side, _ in lanes]), rows, cols, real


# ---------------------------------------------------------------------------------- cooldowns
class ZapClock(NamedTuple):
    """Commons Harvest's zap cooldown per player (``commons_harvest/avatar.lua``, ``onUpdate.zap``).

    The level fires when ``zap == 1 and framesOld >= canZapAfterFrames`` and then sets
    ``canZapAfterFrames = framesOld + minFramesBetweenZaps``; ``framesOld`` counts frames since
    the player's piece entered its current state (``grid.cc``, ``frame_created``), so it restarts
    at 0 when a zapped player respawns, while ``canZapAfterFrames`` does not.
    """

    frames_old: np.ndarray  # int [players]: framesOld the next zap update will see
    can_zap_after: np.ndarray  # int [players]

    @classmethod
    def start(cls, n_players: int) -> ZapClock:
        """After ``start``: Lab2D's first ``grid:update`` has run once, so the first step sees 1."""
        return cls(np.ones(n_players, np.int64), np.zeros(n_players, np.int64))

    def ready(self, active: np.ndarray, min_between: np.ndarray) -> np.ndarray:
        """Whether pressing zap now would fire a beam."""
        return active & (min_between >= 0) & (self.frames_old >= self.can_zap_after)

    def step(
        self,
        active: np.ndarray,
        pressed: np.ndarray,
        active_after: np.ndarray,
        min_between: np.ndarray,
    ) -> tuple[np.ndarray, ZapClock]:
        """(which players fired, the clock for the next frame).

        ``active``: the player was on the grid at the start of the frame (only active players'
        updaters run); ``active_after``: it is on the grid after the frame. A player that
        respawned this frame entered its state after this frame's updates: it sees 0 next frame.
        """
        fired = self.ready(active, min_between) & pressed
        can_zap_after = np.where(fired, self.frames_old + min_between, self.can_zap_after)
        frames_old = np.where(active_after, np.where(active, self.frames_old + 1, 0), 0)
        return fired, ZapClock(frames_old, can_zap_after)


def cooldown_step(
    cool: np.ndarray, wait: np.ndarray, active: np.ndarray, pressed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(fired, next cooldown) of a Clean Up beam (``clean_up/avatar.lua``, ``onUpdate.fire``).

    Each frame an active player's counter counts down if above 0 (pressing does nothing then);
    at 0, pressing fires and sets it to the wait (``fineWait`` or ``cleanWait``). A negative wait
    disables the beam. So a beam fires at most once every ``wait + 1`` frames.
    """
    enabled = active & (wait >= 0)
    fired = enabled & (cool == 0) & pressed
    cooling = enabled & (cool > 0)
    return fired, np.where(cooling, cool - 1, np.where(fired, wait, cool))


# ---------------------------------------------------------------------------------- hits, rewards
def hit_counts(zap_matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hits each player dealt, hits each player received) this frame.

    ``zap_matrix[victim, zapper]`` counts hits, as Commons Harvest's ``WORLD.ZAP_COUNT`` does
    (``avatar.lua``: ``playerState.hitByVector(zapperState.index):add(1)``, the victim's row);
    the level zeroes it at the start of every frame (``AvatarList:_startFrame``), so it holds this
    frame's hits only.
    """
    return zap_matrix.sum(axis=0).astype(np.int64), zap_matrix.sum(axis=1).astype(np.int64)


class RewardSplit(NamedTuple):
    """A player's level reward taken apart: ``level == task - zap_cost - zapped_cost``."""

    task: np.ndarray
    zap_cost: np.ndarray
    zapped_cost: np.ndarray


def split_reward(
    level_reward: np.ndarray,
    dealt: np.ndarray,
    received: np.ndarray,
    reward_for_zapping: np.ndarray,
    reward_for_being_zapped: np.ndarray,
) -> RewardSplit:
    """Separate the level's zap rewards (paid per hit, to the zapper and to the victim) from the
    rest of its reward, which is the task: apples (and Clean Up's contribution pseudo-reward).

    The costs are the negated zap rewards, so with the levels' defaults (-1 and -50) they are
    positive and ``task = level + zap_cost + zapped_cost``.
    """
    zap_cost = -reward_for_zapping * dealt
    zapped_cost = -reward_for_being_zapped * received
    return RewardSplit(level_reward + zap_cost + zapped_cost, zap_cost, zapped_cost)
