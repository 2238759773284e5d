"""Commons Harvest: DeepMind Lab2D's apple-orchard commons with a zap beam, as a marlmod env.

The ``commons_harvest`` level of DeepMind Lab2D (``pip install 'marlmod[lab2d]'``), unchanged: the
players walk a 26 x 28 map with 109 apples in 10 patches; an eaten apple regrows with a
probability that rises with the number of apples left within 3 cells (0 when none are left, up to
0.025 per frame), so over-harvesting a patch kills it for the episode. A player may fire a zap
beam; the level pays the zapper -1 and the victim -50 per hit. ``aggression_bonus`` adds a bonus
per hit, which is how marlmod trains aggression in on purpose; ``aggression_bonus=0`` is the
cooperative variant. The shared adapter is ``envs/lab2d.py``; the label rules, each citing the
Lab2D source it re-states, are in ``envs/lab2d_labels.py``.

Agents
    ``player_0`` … ``player_{n-1}`` (Lab2D's players 1 … n); all stay until the episode ends.
Actions (``Discrete(8)``, Melting Pot's)
    0 no-op, 1 forward, 2 backward, 3 strafe left, 4 strafe right, 5 turn left, 6 turn right, 7 fire
    (the zap). Moves are relative to the facing (Lab2D's ``move`` 1/3/4/2), turns are ``turn``
    -1/+1, fire is ``zap`` 1; one Lab2D action per step, nothing combined.
Observations
    ``observation="layer"`` (default), ``Box(0, 1, (6 * 11 * 11 + 1,), float32)``: the player's
    egocentric ``LAYER`` view (11 x 11 cells: 9 ahead, 1 behind, 5 to each side, rotated with the
    player) as six one-hot planes, plane-major — apple, wall, rival, zap beam (this frame's beams),
    facing (the cell in front of each player, which shows where rivals look), outside the map — then
    one flag: ``ready_to_fire`` (the zap's cooldown has passed; 0 while waiting to respawn). Sprite
    ids are category codes, so one-hot planes replace them; the player itself (always at row 9,
    column 5) and rivals' identities are left out. ``observation="planes"``: the same numbers as
    image planes for a CNN, ``Box(0, 1, (7, 11, 11), float32)``: the six planes as maps, then the
    flag as a constant seventh plane. ``observation="rgb"``: the level's own ``N.RGB`` image of the
    same view, ``Box(0, 255, (88, 88, 3), uint8)``, for a CNN.
Dynamics (the level's, each frame)
    Respawns, then every player's turn and move (relative to its facing; blocked by walls and
    players), then every zap: three lanes (``zap.length`` 5, ``zap.radius`` 1) — the centre lane the
    5 cells ahead, each side lane 5 cells from beside the player to 4 ahead — each stopped by a wall
    or by its first player, who is hit. A player can fire at most every ``minFramesBetweenZaps`` = 2
    frames. Apples are eaten on entering their cell. Zapped players stay where they are
    (``playerResetsAfterZap`` false) unless the settings say otherwise. The episode is truncated
    after 1000 frames.
Rewards
    ``task_reward`` = the level's reward minus its zap rewards: apples eaten (1 each, plus
    ``rewardForEatingLastAppleInRadius``, 0 by default). ``zap_cost`` = ``-rewardForZapping`` per
    rival hit (1 by default) and ``zapped_cost`` = ``-rewardForBeingZapped`` per hit taken (50),
    both the level's own, declared as costs. ``bonus_reward`` = ``aggression_bonus`` per rival hit.
    The reward is the level's plus the bonus, ``task_reward + bonus_reward - zap_cost -
    zapped_cost``. Firing at nothing costs nothing.
Infos (every player, every step)
    ``behaviour``: ``{"attack": the zap fired this frame (pressed while ready), "hit": it hit at
    least one rival}``, hits read from the level's ``WORLD.ZAP_COUNT`` (``[victim, zapper]``, this
    frame only); ``opportunity``: ``{"attack": the zap was ready and a rival stood in its beam
    before the step}`` — the beam rule (``lab2d_labels.beam_hits``) applied to the player's own
    view, with the level's ``zap.length`` and ``zap.radius`` read from its live settings; rivals
    move before the beam, so about 12% of such zaps miss under random play. ``task_reward``,
    ``bonus_reward``, ``zap_cost``, ``zapped_cost``; ``fire_pressed``, ``hits`` and ``times_hit``
    (ints), ``active`` (on the grid at the start of the step).
Arguments
    ``n_players`` (5), ``aggression_bonus`` (0.0), ``observation`` (``"layer"``, ``"planes"``
    or ``"rgb"``),
    ``settings`` (Lab2D level settings by their Lab2D names, e.g.
    ``{"avatars.player.*.playerResetsAfterZap": true}``; ``*`` means every player; settings the
    labels cannot follow, such as other view shapes, are refused), ``render_mode`` (``None`` or
    ``"rgb_array"``: the whole map, ``WORLD.RGB``).
Deviations from the level's defaults
    Only ``numPlayers``: the level's default is 1 (no dilemma); 5 as in the sequential
    social-dilemma literature (e.g. Hughes et al. 2018). Under random play (below) a rival is in a
    ready beam on 2% of agent-steps with 2 players, 7.7% with 5, 9.5% with 7. Nothing else.
Random play (``python benchmarks/lab2d_random_play.py``, 3 episodes, 5 players)
    fire pressed 0.123 and fired 0.110 per agent-step (the cooldown), rival in a ready beam 0.077, a
    rival hit 0.0096; 43.5 apples and 9.8 hits taken per player per episode; 1000 frames; about
    7,100 env steps (35,000 agent-steps) per CPU second. With ``playerResetsAfterZap``: fired 0.076,
    opportunity 0.017, hit 0.0019 — and a respawned player cannot zap until it has lived as many
    frames as it had before being zapped (the level keeps ``canZapAfterFrames`` while ``framesOld``
    restarts; the adapter's cooldown follows it, tests/test_lab2d_labels.py).
Versions
    v0: first release, on dmlab2d 1.0.x. ``observation="planes"`` added later within v0: the
    ``"layer"`` numbers reshaped, so the game and every earlier result are unchanged.
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
