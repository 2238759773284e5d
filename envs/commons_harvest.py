"""Commons Harvest: DeepMind Lab2D's apple-orchard commons with a zap beam, as a marlmod env.

MEASUREMENTS-PLACEHOLDER
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.lab2d import Lab2dEnv
from envs.lab2d_labels import ZapClock

NOOP, FORWARD, BACKWARD, STRAFE_LEFT, STRAFE_RIGHT, TURN_LEFT, TURN_RIGHT, FIRE = range(8)


class CommonsHarvestEnv(Lab2dEnv):
    """Lab2D's ``commons_harvest`` level; see the module docstring for the specification."""

    metadata = {
        "name": "commons_harvest_v0",
        "render_modes": ["rgb_array"],
        "render_fps": 8,
        "is_parallelizable": True,
        "marlmod": {
            "bonus_kwarg": "aggression_bonus",
            "behaviours": ("attack", "hit"),
            "opportunities": ("attack",),
            "bonus_for": ("hit",),
            "costs": ("zap_cost", "zapped_cost"),
        },
    }

    LEVEL = "commons_harvest"
    SPRITES = ("Apple", "BeamZap", "Direction", "OutOfBounds", "OutOfView", "Wall")
    PLANES = (
        ("apple", ("Apple",)),
        ("wall", ("Wall",)),
        ("rival", ()),
        ("beam", ("BeamZap",)),
        ("facing", ("Direction",)),
        ("outside", ("OutOfBounds", "OutOfView")),
    )
    # Lab2D's move is relative to the facing: 1 forward, 2 right, 3 back, 4 left (moveRel).
    ACTIONS = (
        ("noop", {}),
        ("forward", {"move": 1}),
        ("backward", {"move": 3}),
        ("strafe_left", {"move": 4}),
        ("strafe_right", {"move": 2}),
        ("turn_left", {"turn": -1}),
        ("turn_right", {"turn": 1}),
        ("fire", {"zap": 1}),
    )
    FIRE = FIRE
    FLAGS = ("ready_to_fire",)
    REQUIRED = {
        "simulation.showRespawnProbability": "false",  # it would add sprites to the table
        "avatars.player.*.view.followPlayer": "true",
        "avatars.player.*.view.centered": "false",
        "avatars.player.*.view.otherPlayersLookSame": "false",
        "avatars.player.*.view.thisPlayerLooksBlue": "true",
    }

    def _read_game_settings(self) -> None:
        self.beam_length = int(self.setting("avatars.player.1.zap.length"))
        self.beam_radius = int(self.setting("avatars.player.1.zap.radius"))
        for key in ("zap.length", "zap.radius", "view.left", "view.right", "view.forward"):
            if len(set(self.player_settings(key))) != 1:
                raise ValueError(f"avatars.player.*.{key} must be the same for every player")
        view = {k: int(self.setting(f"avatars.player.1.view.{k}")) for k in ("left", "right")}
        forward = int(self.setting("avatars.player.1.view.forward"))
        if forward < self.beam_length or min(view.values()) < self.beam_radius:
            raise ValueError("the players' view must cover the zap beam (labels are read from it)")
        self.reward_for_zapping = self.player_settings("rewardForZapping")
        self.reward_for_being_zapped = self.player_settings("rewardForBeingZapped")
        self.min_frames_between_zaps = self.player_settings("minFramesBetweenZaps").astype(int)

    def _start_clocks(self) -> None:
        self._clock = ZapClock.start(self.n_players)

    def _ready(self) -> np.ndarray:
        return self._clock.ready(self._active, self.min_frames_between_zaps)[:, None]

    def _fire(self, acts: np.ndarray, active: np.ndarray, active_after: np.ndarray) -> np.ndarray:
        fired, self._clock = self._clock.step(
            active, acts == FIRE, active_after, self.min_frames_between_zaps
        )
        return fired

    def _hit_matrix(self, lanes: np.ndarray, fired: np.ndarray) -> np.ndarray:
        """The level's own record, ``WORLD.ZAP_COUNT`` (``[victim, zapper]``, this frame only)."""
        hits = np.array(self._lab.observation("WORLD.ZAP_COUNT"), dtype=np.int64)
        if (hits.sum(axis=0)[~fired] > 0).any():
            raise RuntimeError(
                "Lab2D commons_harvest: a player hit a rival on a frame its zap was not labelled "
                "as fired; the adapter's zap cooldown no longer matches the level"
            )
        return hits


def parallel_env(**kwargs: Any) -> CommonsHarvestEnv:
    """PettingZoo-style factory."""
    return CommonsHarvestEnv(**kwargs)
