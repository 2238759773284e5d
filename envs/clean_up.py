"""Clean Up: DeepMind Lab2D's public-goods game (clean the river or eat apples) as a marlmod env.

MEASUREMENTS-PLACEHOLDER
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.lab2d import Lab2dEnv
from envs.lab2d_labels import cooldown_step, viewed_player

NOOP, FORWARD, BACKWARD, STRAFE_LEFT, STRAFE_RIGHT, TURN_LEFT, TURN_RIGHT, FIRE, CLEAN = range(9)
# clean_up/avatar.lua fires both beams with grid:hitBeam(piece, beam, 5, 1): not a setting.
BEAM_LENGTH, BEAM_RADIUS = 5, 1


class CleanUpEnv(Lab2dEnv):
    """Lab2D's ``clean_up`` level; see the module docstring for the specification."""

    metadata = {
        "name": "clean_up_v0",
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

    LEVEL = "clean_up"
    SPRITES = (
        "Apple",
        "BeamClean",
        "BeamFine",
        "Direction",
        "Mud",
        "OutOfBounds",
        "OutOfView",
        "Wall",
        "Water",
    )
    PLANES = (
        ("apple", ("Apple",)),
        ("mud", ("Mud",)),
        ("water", ("Water",)),
        ("wall", ("Wall",)),
        ("rival", ()),
        ("fine_beam", ("BeamFine",)),
        ("clean_beam", ("BeamClean",)),
        ("facing", ("Direction",)),
        ("outside", ("OutOfBounds", "OutOfView")),
    )
    ACTIONS = (
        ("noop", {}),
        ("forward", {"move": 1}),
        ("backward", {"move": 3}),
        ("strafe_left", {"move": 4}),
        ("strafe_right", {"move": 2}),
        ("turn_left", {"turn": -1}),
        ("turn_right", {"turn": 1}),
        ("fire", {"fireFine": 1}),
        ("clean", {"fireClean": 1}),
    )
    FIRE = FIRE
    FLAGS = ("ready_to_fire", "ready_to_clean")
    REQUIRED = {
        "avatars.bots": "0",  # bots would be players nobody controls
        "avatars.player.*.playerResetsAfterFined": "false",  # hits are read from the views
        "avatars.player.*.view.followPlayer": "true",
        "avatars.player.*.view.centered": "false",
        "avatars.player.*.view.otherPlayersLookSame": "false",
        "avatars.player.*.view.thisPlayerLooksBlue": "true",
        "avatars.player.*.view.left": "5",
        "avatars.player.*.view.right": "5",
        "avatars.player.*.view.forward": "9",
    }

    def _read_game_settings(self) -> None:
        self.beam_length, self.beam_radius = BEAM_LENGTH, BEAM_RADIUS
        self.reward_for_zapping = self.player_settings("rewardForFining")
        self.reward_for_being_zapped = self.player_settings("rewardForBeingFined")
        self.reward_for_contribution = self.player_settings("rewardForContribution")
        self.fine_wait = self.player_settings("fineWait").astype(int)
        self.clean_wait = self.player_settings("cleanWait").astype(int)

    def _start_clocks(self) -> None:
        self._cool_fine = np.zeros(self.n_players, np.int64)
        self._cool_clean = np.zeros(self.n_players, np.int64)

    def _ready(self) -> np.ndarray:
        fine = self._active & (self.fine_wait >= 0) & (self._cool_fine == 0)
        clean = self._active & (self.clean_wait >= 0) & (self._cool_clean == 0)
        return np.stack([fine, clean], axis=1)

    def _fire(self, acts: np.ndarray, active: np.ndarray, active_after: np.ndarray) -> np.ndarray:
        fine, clean = acts == FIRE, acts == CLEAN
        fired, self._cool_fine = cooldown_step(self._cool_fine, self.fine_wait, active, fine)
        _, self._cool_clean = cooldown_step(self._cool_clean, self.clean_wait, active, clean)
        return fired

    def _hit_matrix(self, lanes: np.ndarray, fired: np.ndarray) -> np.ndarray:
        """The level never fills ``WORLD.PLAYER_FINE_COUNT``, so hits are found the way the beam
        finds them: on each firer's view after the frame (moves happen before beams, and a fined
        player stays where it is), with Lab2D's beam rule (``lab2d_labels.beam_hits``)."""
        hits = np.zeros((self.n_players, self.n_players), dtype=np.int64)
        for zapper in np.flatnonzero(fired):
            for sprite_player in lanes[zapper][lanes[zapper] >= 0]:
                hits[viewed_player(int(sprite_player), zapper), zapper] += 1
        return hits

    def _check(self, task: np.ndarray) -> None:
        """Each player eats at most one apple a frame: anything else means the hits are wrong."""
        contribution = np.array([float(self._lab.observation(f"{i}.CONTRIB")) for i in self._ids()])
        apples = task - self.reward_for_contribution * contribution
        if not np.isin(apples, (0.0, 1.0)).all():
            raise RuntimeError(
                f"Lab2D clean_up: rewards {apples.tolist()} after the labelled fines are not apple "
                "counts; the adapter's beam geometry no longer matches the level"
            )


def parallel_env(**kwargs: Any) -> CleanUpEnv:
    """PettingZoo-style factory."""
    return CleanUpEnv(**kwargs)
