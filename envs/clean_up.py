"""Clean Up: DeepMind Lab2D's public-goods game (clean the river, or eat the apples others grow)
as a marlmod env.

The ``clean_up`` level of DeepMind Lab2D (``pip install 'marlmod[lab2d]'``), unchanged: on a
21 x 30 map, apples grow in an orchard only while the river is clean enough, and the river
silts up on its own, so someone must leave the apples to clean it. Players may fire a *fine*
beam at each other (the level pays the firer -1 and the victim -50 per hit) and a *clean* beam
at the river. ``aggression_bonus`` adds a bonus per fine that hits, which is how marlmod trains
aggression in on purpose; ``aggression_bonus=0`` is the cooperative variant. The shared adapter
is ``envs/lab2d.py``; the label rules, each citing the Lab2D source it re-states, are in
``envs/lab2d_labels.py``.

Agents
    ``player_0`` … ``player_{n-1}`` (Lab2D's players 1 … n); all stay until the episode ends.
Actions (``Discrete(9)``, Melting Pot's)
    0 no-op, 1 forward, 2 backward, 3 strafe left, 4 strafe right, 5 turn left, 6 turn right, 7 fire
    (the fine beam, Lab2D's ``fireFine``), 8 clean (``fireClean``). Moves are relative to the
    facing; one Lab2D action per step, nothing combined.
Observations
    ``observation="layer"`` (default), ``Box(0, 1, (9 * 11 * 11 + 2,), float32)``: the player's
    egocentric ``LAYER`` view (11 x 11 cells: 9 ahead, 1 behind, 5 to each side, rotated with the
    player) as nine one-hot planes, plane-major — apple, mud, water (river and stream), wall, rival,
    fine beam, clean beam (this frame's beams), facing (the cell in front of each player), outside
    the map — then two flags: ``ready_to_fire`` and ``ready_to_clean`` (each beam's cooldown has
    passed). ``observation="planes"``: the same numbers as image planes for a CNN, ``Box(0, 1,
    (11, 11, 11), float32)``: the nine planes as maps, then each flag as a constant plane.
    ``observation="rgb"``: the level's own ``N.RGB`` image of the same view, ``Box(0, 255,
    (176, 176, 3), uint8)`` (16-pixel sprites), for a CNN.
Dynamics (the level's, each frame)
    Every player's turn and move, then its beams: fine and clean beams are three lanes (length 5,
    radius 1, fixed in the level's ``avatar.lua``), the fine beam stopped by walls and by the first
    player in each lane (who is fined), the clean beam (which passes players) by walls and the first
    mud cell in each lane (which it turns to water). After firing, the fine beam waits ``fineWait``
    = 10 frames and the clean beam ``cleanWait`` = 2. Fined players stay where they are. Apples are
    eaten on entering their cell. From frame 50, each frame one random water cell silts to mud with
    probability 0.5; eaten apples regrow with probability 0.05 x (1 - mud fraction / 0.4) per frame,
    so not at all while 40% or more of the river is mud. The river starts 53% mud (79 of 148 cells)
    and all 125 apple sites empty: nothing grows until players clean. The episode is truncated after
    3600 frames.
Rewards
    ``task_reward`` = the level's reward minus its fine rewards: apples eaten (1 each; plus
    ``rewardForContribution`` per mud cell cleaned, 0 by default). ``zap_cost`` =
    ``-rewardForFining`` per rival fined (1 by default) and ``zapped_cost`` =
    ``-rewardForBeingFined`` per fine taken (50), both the level's own, declared as costs.
    ``bonus_reward`` = ``aggression_bonus`` per rival fined. The reward is the level's plus the
    bonus, ``task_reward + bonus_reward - zap_cost - zapped_cost``. A fine that hits nobody costs
    nothing.
Infos (every player, every step)
    ``behaviour``: ``{"attack": the fine beam fired this frame (pressed while ready), "hit": it
    fined at least one rival}``. The level declares ``WORLD.PLAYER_FINE_COUNT`` but never fills it,
    so hits are found as the beam finds them: the beam rule (``lab2d_labels.beam_hits``) on the
    firer's view after the frame (moves come before beams and a fined player stays put); the same
    rule reproduces Commons Harvest's own hit record exactly (tests/test_lab2d_envs.py), and the
    adapter raises if a reward is then not an apple count. ``opportunity``: ``{"attack": the fine
    beam was ready and a rival stood in it before the step}``. ``task_reward``, ``bonus_reward``,
    ``zap_cost``, ``zapped_cost``; ``fire_pressed``, ``hits``, ``times_hit`` and ``cleaned`` (mud
    cells this player cleaned this frame) as ints; ``active``.
Arguments
    ``n_players`` (5), ``aggression_bonus`` (0.0), ``observation`` (``"layer"``, ``"planes"``
    or ``"rgb"``),
    ``settings`` (Lab2D level settings by their Lab2D names, ``*`` for every player, e.g.
    ``{"episodeLengthFrames": 1000}``; settings the labels cannot follow — bots,
    ``playerResetsAfterFined``, other view shapes — are refused), ``render_mode`` (``None`` or
    ``"rgb_array"``: the whole map, ``WORLD.RGB``).
Deviations from the level's defaults
    Only ``numPlayers``: the level's default is 1 (no dilemma); 5 as in the sequential
    social-dilemma literature (e.g. Hughes et al. 2018). Nothing else.
Random play (``python benchmarks/lab2d_random_play.py``, 3 episodes, 5 players)
    fire pressed 0.110 and fired 0.052 per agent-step (the 11-frame cycle), rival in a ready beam
    0.045, a rival fined 0.0049; no apple at all in 3600 frames (random cleaning never gets the
    river under 40% mud; with 7 players, 10.9 apples per player); 18 fines taken per player per
    episode; about 6,100 env steps (30,000 agent-steps) per CPU second.
Versions
    v0: first release, on dmlab2d 1.0.x. ``observation="planes"`` added later within v0: the
    ``"layer"`` numbers reshaped, so the game and every earlier result are unchanged.
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

    def _infos(
        self, acts: np.ndarray, fired: np.ndarray, hits: np.ndarray, level: np.ndarray
    ) -> dict[str, dict[str, Any]]:
        """Also ``cleaned``: the mud cells this player's clean beam turned to water this frame."""
        contrib = [float(self._lab.observation(f"{i}.CONTRIB")) for i in self._ids()]
        self._cleaned = np.array(contrib)
        infos = super()._infos(acts, fired, hits, level)
        for agent, cleaned in zip(self.possible_agents, self._cleaned, strict=True):
            infos[agent]["cleaned"] = int(cleaned)
        return infos

    def _check(self, task: np.ndarray) -> None:
        """Each player eats at most one apple a frame: anything else means the hits are wrong."""
        apples = task - self.reward_for_contribution * self._cleaned
        if not np.isin(apples, (0.0, 1.0)).all():
            raise RuntimeError(
                f"Lab2D clean_up: rewards {apples.tolist()} after the labelled fines are not apple "
                "counts; the adapter's beam geometry no longer matches the level"
            )


def parallel_env(**kwargs: Any) -> CleanUpEnv:
    """PettingZoo-style factory."""
    return CleanUpEnv(**kwargs)
