"""The shared adapter behind marlmod's DeepMind Lab2D games (``commons_harvest``, ``clean_up``).

Lab2D (``pip install 'marlmod[lab2d]'``, Apache-2.0) ships its levels inside the wheel, so nothing
is downloaded. This module turns a level into a PettingZoo ``ParallelEnv`` without changing its
dynamics: a flat ``Discrete`` action set (Melting Pot's), an observation per player, marlmod's
labels and a reward split. What differs between the games (sprites, beams, cooldowns, where hits
are read from) lives in the game's own module, whose docstring is its specification; the label
rules themselves are pure functions in ``envs/lab2d_labels.py``. ``dmlab2d`` is imported only when
an env is built, so ``import envs`` works (and stays torch-free) without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from envs.lab2d_labels import beam_hits, encode_views, hit_counts, split_reward, sprite_lookup

OBSERVATIONS = ("layer", "planes", "rgb")
PIECES_LAYER = 1  # LAYER channels follow the level's renderOrder: {'logic', 'pieces', …}
MAX_PLAYERS = 20  # the levels name 20 player colours (avatar.lua, _PLAYER_NAMES)
SettingValue = str | int | float | bool


def import_dmlab2d() -> Any:
    """``dmlab2d``, or an ImportError that says how to install it."""
    try:
        import dmlab2d
        import dmlab2d.runfiles_helper  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "the Lab2D games need DeepMind Lab2D: pip install 'marlmod[lab2d]' (or dmlab2d)"
        ) from err
    return dmlab2d


def lab2d_settings(
    level: str, n_players: int, overrides: Mapping[str, SettingValue]
) -> dict[str, str]:
    """The settings dict ``dmlab2d.Lab2d`` takes; ``avatars.player.*.X`` sets X for every player."""
    settings = {"levelName": level, "numPlayers": str(n_players)}
    for key, value in overrides.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if key.startswith("avatars.player.*."):
            rest = key.removeprefix("avatars.player.*.")
            settings.update({f"avatars.player.{i}.{rest}": text for i in range(1, n_players + 1)})
        else:
            settings[key] = text
    return settings


class Lab2dEnv(ParallelEnv):
    """A Lab2D level as a marlmod env; subclasses fill in the game facts (class attributes) and
    the three hooks ``_read_game_settings``, ``_fire`` and ``_hit_matrix``."""

    LEVEL: ClassVar[str]
    SPRITES: ClassVar[tuple[str, ...]]  # the level's sprite names, players excluded
    PLANES: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]]  # plane name -> sprite names
    ACTIONS: ClassVar[tuple[tuple[str, dict[str, int]], ...]]  # flat action -> Lab2D fields
    FIRE: ClassVar[int]  # the flat action that fires the attack beam
    FLAGS: ClassVar[tuple[str, ...]]  # readiness flags appended to the "layer" observation
    REQUIRED: ClassVar[dict[str, str]]  # settings the label logic relies on, with their values

    def __init__(
        self,
        n_players: int = 5,
        aggression_bonus: float = 0.0,
        observation: str = "layer",
        settings: Mapping[str, SettingValue] | None = None,
        render_mode: str | None = None,
    ) -> None:
        if not 2 <= n_players <= MAX_PLAYERS:
            raise ValueError(f"n_players must be in [2, {MAX_PLAYERS}], got {n_players}")
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.n_players = n_players
        self.aggression_bonus = float(aggression_bonus)
        self.observation = observation
        self.settings = dict(settings or {})
        self.render_mode = render_mode
        self._lab = self._build_lab()
        self._check_required_settings()
        self._read_settings()
        self._read_game_settings()
        self._build_tables()
        self.possible_agents = [f"player_{i}" for i in range(n_players)]
        self.agents: list[str] = []
        self._obs_space = self._observation_space()
        self._act_space = spaces.Discrete(len(self.ACTIONS))
        self.np_random, _ = seeding.np_random(None)
        self._episode = 0

    # ------------------------------------------------------------------ construction
    def _build_lab(self) -> Any:
        dmlab2d = import_dmlab2d()
        settings = lab2d_settings(self.LEVEL, self.n_players, self.settings)
        try:
            self._running = dmlab2d.RUNNING
            return dmlab2d.Lab2d(dmlab2d.runfiles_helper.find(), settings)
        except ValueError as err:
            lines = [line for line in str(err).splitlines() if "Invalid setting" in line]
            detail = lines[0].split("Invalid setting:")[1].split(",")[0] if lines else str(err)
            raise ValueError(f"Lab2D level {self.LEVEL!r} rejected the settings: {detail}") from err

    def setting(self, key: str) -> str:
        """The level's live value of a setting (after overrides), read back from Lab2D."""
        return self._lab.read_property(f"settings.{key}")

    def player_settings(self, key: str) -> np.ndarray:
        """``avatars.player.<i>.<key>`` for every player, as floats."""
        return np.array(
            [float(self.setting(f"avatars.player.{i}.{key}")) for i in range(1, self.n_players + 1)]
        )

    def _check_required_settings(self) -> None:
        """Refuse settings under which the labels would be wrong rather than label wrongly."""
        for key, wanted in self.REQUIRED.items():
            keys = (
                [key.replace("*", str(i)) for i in range(1, self.n_players + 1)]
                if "*" in key
                else [key]
            )
            for k in keys:
                if self.setting(k) != wanted:
                    raise ValueError(
                        f"setting {k}={self.setting(k)} is not supported by marlmod's "
                        f"{self.LEVEL} adapter (its labels assume {wanted})"
                    )

    def _read_settings(self) -> None:
        view = {k: int(self.setting(f"avatars.player.1.view.{k}")) for k in ("left", "forward")}
        self._origin = (view["forward"], view["left"])
        self.episode_length = int(self.setting("episodeLengthFrames"))

    def _read_game_settings(self) -> None:
        """Set ``beam_length``, ``beam_radius`` and the per-player ``reward_for_zapping`` and
        ``reward_for_being_zapped`` from the level (subclass hook)."""
        raise NotImplementedError

    def _build_tables(self) -> None:
        players = [f"Player.{k}" for k in range(1, self.n_players + 1)]
        names = sorted(set(self.SPRITES) | set(players))
        self._player_of = sprite_lookup(names, {p: k for k, p in enumerate(players)})
        plane_of = {s: p for p, (_, sprites) in enumerate(self.PLANES) for s in sprites}
        plane_of.update({p: self._rival_plane() for p in players[1:]})
        self._plane_of = sprite_lookup(names, plane_of)
        fields = [n.split(".", 1)[1] for n in self._lab.action_discrete_names()]
        per_player = fields[: len(fields) // self.n_players]
        self._action_table = np.array(
            [[action.get(f, 0) for f in per_player] for _, action in self.ACTIONS], dtype=np.int32
        )
        self._self_id = 1 + 4 * names.index("Player.1")  # the viewer, facing up its own view

    def _rival_plane(self) -> int:
        return [name for name, _ in self.PLANES].index("rival")

    def _observation_space(self) -> spaces.Box:
        if self.observation == "rgb":
            shape = tuple(self._lab.observation_spec("1.RGB")["shape"])
            return spaces.Box(0, 255, shape, np.uint8)
        rows, cols, _ = self._lab.observation_spec("1.LAYER")["shape"]
        if self.observation == "planes":
            depth = len(self.PLANES) + len(self.FLAGS)
            return spaces.Box(0.0, 1.0, (depth, rows, cols), np.float32)
        size = len(self.PLANES) * rows * cols + len(self.FLAGS)
        return spaces.Box(0.0, 1.0, (size,), np.float32)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_space

    # ------------------------------------------------------------------ reset / step
    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.np_random, _ = seeding.np_random(seed)
        self._lab.start(self._episode, int(self.np_random.integers(2**31 - 1)))
        self._episode += 1
        self.agents = list(self.possible_agents)
        self._views = self._read_views()
        self._active = self._on_grid(self._views)
        if not self._active.all():
            raise RuntimeError(
                f"Lab2D {self.LEVEL}: a player's own view does not show it as 'Player.1' facing "
                "up; the sprite table in the adapter no longer matches the level"
            )
        self._start_clocks()
        self._opportunity = self._rivals_in_beam(self.beam_hits(self._views)) & self._ready()[:, 0]
        return self._observations(), {agent: {} for agent in self.agents}

    def step(self, actions: dict[str, Any]):
        acts = np.array([int(actions.get(a, 0)) for a in self.possible_agents], dtype=np.int64)
        self._lab.act_discrete(self._action_table[acts].reshape(-1))
        status, _ = self._lab.advance()
        views = self._read_views()
        active_after = self._on_grid(views)
        fired = self._fire(acts, self._active, active_after)
        lanes = self.beam_hits(views)
        hits = self._hit_matrix(lanes, fired)  # [victim, zapper]
        level = np.array([float(self._lab.observation(f"{i}.REWARD")) for i in self._ids()])
        infos = self._infos(acts, fired, hits, level)
        rewards = {
            agent: float(level[i] + infos[agent]["bonus_reward"])
            for i, agent in enumerate(self.possible_agents)
        }
        self._views, self._active = views, active_after
        self._opportunity = self._rivals_in_beam(lanes) & self._ready()[:, 0]
        over = status != self._running  # the level's frame limit: a truncation
        terminations = {agent: False for agent in self.possible_agents}
        truncations = {agent: over for agent in self.possible_agents}
        if over:
            self.agents = []
        return self._observations(), rewards, terminations, truncations, infos

    def _infos(
        self, acts: np.ndarray, fired: np.ndarray, hits: np.ndarray, level: np.ndarray
    ) -> dict[str, dict[str, Any]]:
        """Labels and reward parts; the reward is the level's plus the bonus."""
        dealt, received = hit_counts(hits)
        split = split_reward(
            level, dealt, received, self.reward_for_zapping, self.reward_for_being_zapped
        )
        self._check(split.task)
        bonus = self.aggression_bonus * dealt
        infos = {}
        for i, agent in enumerate(self.possible_agents):
            infos[agent] = {
                "behaviour": {"attack": bool(fired[i]), "hit": bool(dealt[i] > 0)},
                "opportunity": {"attack": bool(self._opportunity[i])},
                "task_reward": float(split.task[i]),
                "bonus_reward": float(bonus[i]),
                "zap_cost": float(split.zap_cost[i]),
                "zapped_cost": float(split.zapped_cost[i]),
                "fire_pressed": bool(acts[i] == self.FIRE),
                "hits": int(dealt[i]),
                "times_hit": int(received[i]),
                "active": bool(self._active[i]),
            }
        return infos

    # ------------------------------------------------------------------ game hooks
    def _start_clocks(self) -> None:
        raise NotImplementedError

    def _ready(self) -> np.ndarray:
        """bool [players, len(FLAGS)]: can each beam fire now? Column 0 is the attack beam."""
        raise NotImplementedError

    def _fire(self, acts: np.ndarray, active: np.ndarray, active_after: np.ndarray) -> np.ndarray:
        """bool [players]: whose attack beam fired this frame (advances the cooldowns)."""
        raise NotImplementedError

    def _hit_matrix(self, lanes: np.ndarray, fired: np.ndarray) -> np.ndarray:
        """int [victim, zapper]: the attack beam's hits this frame; ``lanes`` is ``beam_hits`` of
        the views after the frame."""
        raise NotImplementedError

    def _check(self, task: np.ndarray) -> None:
        """Raise if the task rewards show the labels disagree with the level (subclass hook)."""

    # ------------------------------------------------------------------ views
    def _ids(self) -> range:
        return range(1, self.n_players + 1)

    def _read_views(self) -> np.ndarray:
        """int [players, rows, cols, layers]: every player's LAYER view after the last frame."""
        return np.stack([np.asarray(self._lab.observation(f"{i}.LAYER")) for i in self._ids()])

    def _on_grid(self, views: np.ndarray) -> np.ndarray:
        """Each player is drawn at its own view's origin unless it is waiting to respawn."""
        row, col = self._origin
        return views[:, row, col, PIECES_LAYER] == self._self_id

    def beam_hits(self, views: np.ndarray) -> np.ndarray:
        """int [players, lanes]: the sprite-player (``Player.<k+1>`` -> k) each lane of the
        attack beam would hit from each view, -1 for none (``lab2d_labels.beam_hits``)."""
        pieces = views[..., PIECES_LAYER]
        return beam_hits(
            self._player_of[pieces], pieces != 0, self._origin, self.beam_length, self.beam_radius
        )

    def _rivals_in_beam(self, lanes: np.ndarray) -> np.ndarray:
        return (lanes >= 0).any(axis=1) & self._active

    def _observations(self) -> dict[str, np.ndarray]:
        if self.observation == "rgb":
            return {
                agent: np.array(self._lab.observation(f"{i}.RGB"), dtype=np.uint8)
                for agent, i in zip(self.possible_agents, self._ids(), strict=True)
            }
        planes = encode_views(self._views, self._plane_of, len(self.PLANES))
        flags = self._ready().astype(np.float32)
        if self.observation == "planes":  # the same numbers as maps, each flag a constant plane
            n, rows, cols = self._views.shape[:3]
            maps = planes.reshape(n, len(self.PLANES), rows, cols)
            constant = np.broadcast_to(flags[:, :, None, None], (n, flags.shape[1], rows, cols))
            obs = np.concatenate([maps, constant], axis=1)
        else:
            obs = np.concatenate([planes, flags], axis=1)
        return dict(zip(self.possible_agents, obs, strict=True))

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        return np.array(self._lab.observation("WORLD.RGB"), dtype=np.uint8)

    def close(self) -> None:
        pass
