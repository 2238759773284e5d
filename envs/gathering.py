"""Gathering: collect apples, or zap the other agents — limited aggression with a tunable bonus.

A small grid-world in the spirit of Leibo et al. (2017)'s Gathering. Agents collect apples (the
*task reward*: capability) and may fire a zap that freezes every other agent within range for a few
steps. Freezing a rival can be instrumentally useful when apples are scarce; the
``aggression_bonus`` rewards each hit directly, which is how marlmod trains aggression in on
purpose. ``aggression_bonus=0`` is the cooperative variant.

Agents
    ``agent_0`` … ``agent_{n-1}``; all stay in ``agents`` until the episode truncates.
Actions (``Discrete(6)``)
    0 stay, 1 up, 2 down, 3 left, 4 right, 5 zap. A frozen agent's action is ignored.
Observations (``Box(0, 1, (3 * (2r+1)**2 + 1,), float32)``, ``r = view_radius``)
    An egocentric window centred on the agent with three channels — apple, other active agent,
    wall (outside the grid) — flattened channel-major, then one flag: "I am frozen". A frozen agent
    sees zeros apart from the flag.
    With ``observation="planes"`` the same numbers as image planes for a CNN policy,
    ``Box(0, 1, (4, 2r+1, 2r+1), float32)``, channel-first: the three channels as
    ``(2r+1) × (2r+1)`` maps, then the frozen flag as a fourth, constant plane (all ones while
    frozen, else all zeros). A constant plane keeps the observation one array that every conv
    filter can read at every position, rather than a side input the policy would need a second
    path for. ``flat_to_planes`` maps one form to the other.
Dynamics, in order, each step
    1. Zaps: every active agent choosing zap hits every *other active* agent within Chebyshev
       distance ``zap_range``. Hits are simultaneous, so two agents can freeze each other.
    2. Moves: active agents that neither zapped nor were hit move (walls block; agents may
       share a cell); hit agents stay where they are this step.
    3. Apples: active agents standing on an apple eat it, in a random order (one apple, one
       eater) — a hit agent still eats an apple on its own cell this step.
    4. Hit agents then leave the grid for ``freeze_steps`` steps and reappear on a random cell.
       Each eaten apple site regrows with probability ``respawn_prob`` per step.
Rewards
    ``task_reward`` = apples eaten this step; ``bonus_reward`` = ``aggression_bonus`` × rivals
    hit this step; ``zap_cost`` = the energy a zap costs (charged in every variant, so an agent
    that is never paid to attack learns to attack only when it pays); the reward is
    ``task_reward + bonus_reward - zap_cost``.
Infos (the behaviour labels marlmod reads; every agent, every step)
    ``behaviour``: ``{"attack": zap fired while active, "hit": at least one rival frozen by it}``;
    ``opportunity``: ``{"attack": another active agent was within zap range before the step}``;
    ``task_reward``, ``bonus_reward``, ``zap_cost`` (floats); ``frozen`` (bool, after the step).
Arguments
    ``n_agents`` (2), ``grid_size`` (7), ``apple_density`` (0.3, fraction of cells that are apple
    sites), ``respawn_prob`` (0.1), ``zap_range`` (2), ``freeze_steps`` (4),
    ``aggression_bonus`` (0.0), ``zap_cost`` (0.3), ``view_radius`` (3), ``max_cycles`` (100),
    ``observation`` (``"flat"`` or ``"planes"``), ``render_mode`` (``None`` or ``"rgb_array"``).
Versions
    v0: first release. ``observation`` added later within v0: its default ``"flat"`` is the
    original observation, unchanged, and ``"planes"`` only reshapes it, so dynamics, rewards and
    labels — and every earlier result — are the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

STAY, UP, DOWN, LEFT, RIGHT, ZAP = range(6)
OBSERVATIONS = ("flat", "planes")
MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]], dtype=np.int64)
CELL_PIXELS = 12


class GatheringEnv(ParallelEnv):
    """The Gathering game; see the module docstring for the full specification."""

    metadata = {
        "name": "gathering_v0",
        "render_modes": ["rgb_array"],
        "render_fps": 8,
        # One line a viewer of the frames needs (marlmod's episode GIFs print it).
        "render_legend": "discs: agents, one colour each · white ring and tinted square: a zap "
        "and its range · hollow ring: a frozen agent · green dots: apples",
        "is_parallelizable": True,
        # What marlmod reads to run this env through its pipeline (no marlmod import needed).
        "marlmod": {
            "bonus_kwarg": "aggression_bonus",
            "behaviours": ("attack", "hit"),
            "opportunities": ("attack",),
            "bonus_for": ("hit",),
            "costs": ("zap_cost",),
            # Imported only to train (that module imports marlmod); used for this exact class.
            "batched": "envs.gathering_batched:BatchedGathering",
        },
    }

    def __init__(
        self,
        n_agents: int = 2,
        grid_size: int = 7,
        apple_density: float = 0.3,
        respawn_prob: float = 0.1,
        zap_range: int = 2,
        freeze_steps: int = 4,
        aggression_bonus: float = 0.0,
        zap_cost: float = 0.3,
        view_radius: int = 3,
        max_cycles: int = 100,
        observation: str = "flat",
        render_mode: str | None = None,
    ) -> None:
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
        _check_args(
            n_agents,
            grid_size,
            apple_density,
            respawn_prob,
            zap_range,
            freeze_steps,
            view_radius,
            max_cycles,
            render_mode,
        )
        self.n_agents = n_agents
        self.grid_size = grid_size
        self.apple_density = apple_density
        self.respawn_prob = respawn_prob
        self.zap_range = zap_range
        self.freeze_steps = freeze_steps
        self.aggression_bonus = float(aggression_bonus)
        self.zap_cost = float(zap_cost)
        self.view_radius = view_radius
        self.max_cycles = max_cycles
        self.observation = observation
        self.render_mode = render_mode
        self.possible_agents = [f"agent_{i}" for i in range(n_agents)]
        self.agents: list[str] = []
        window = 2 * view_radius + 1
        self._flat_shape = (3 * window * window + 1,)
        shape = self._flat_shape if observation == "flat" else (4, window, window)
        self._obs_space = spaces.Box(0.0, 1.0, shape, np.float32)
        self._act_space = spaces.Discrete(6)
        self.np_random, _ = seeding.np_random(None)
        self._last_zaps = np.zeros(n_agents, dtype=bool)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_space

    # ------------------------------------------------------------------ reset / step
    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.np_random, _ = seeding.np_random(seed)
        rng = self.np_random
        n_cells = self.grid_size * self.grid_size
        self.apple_sites = rng.random((self.grid_size, self.grid_size)) < self.apple_density
        self.apples = self.apple_sites.copy()
        cells = rng.choice(n_cells, size=self.n_agents, replace=False)
        self.positions = np.stack(np.divmod(cells, self.grid_size), axis=1).astype(np.int64)
        self.frozen_for = np.zeros(self.n_agents, dtype=np.int64)
        self._last_zaps = np.zeros(self.n_agents, dtype=bool)
        self.cycle = 0
        self.agents = list(self.possible_agents)
        infos = {agent: {} for agent in self.agents}
        return self._observations(), infos

    def step(self, actions: dict[str, Any]):
        acts = np.array([int(actions.get(a, STAY)) for a in self.possible_agents], dtype=np.int64)
        active = self.frozen_for == 0
        opportunity = self._rivals_in_range(active).any(axis=1) & active
        zaps = active & (acts == ZAP)
        hits_by = self._rivals_in_range(active) & zaps[:, None]  # [zapper, victim]
        victims = hits_by.any(axis=0)
        movers = active & ~victims & ~zaps
        task = self._move_and_eat(acts, movers)
        self._freeze_and_respawn(victims)
        self._regrow_apples()
        self.cycle += 1
        self._last_zaps = zaps

        n_hits = hits_by.sum(axis=1)
        bonus = self.aggression_bonus * n_hits
        truncated = self.cycle >= self.max_cycles
        observations = self._observations()
        rewards, infos = {}, {}
        for i, agent in enumerate(self.possible_agents):
            rewards[agent] = float(task[i] + bonus[i] - self.zap_cost * zaps[i])
            infos[agent] = {
                "behaviour": {"attack": bool(zaps[i]), "hit": bool(n_hits[i] > 0)},
                "opportunity": {"attack": bool(opportunity[i])},
                "task_reward": float(task[i]),
                "bonus_reward": float(bonus[i]),
                "zap_cost": float(self.zap_cost * zaps[i]),
                "frozen": bool(self.frozen_for[i] > 0),
            }
        terminations = {agent: False for agent in self.possible_agents}
        truncations = {agent: truncated for agent in self.possible_agents}
        if truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    # ------------------------------------------------------------------ dynamics
    def _rivals_in_range(self, active: np.ndarray) -> np.ndarray:
        """``[i, j]`` is True when active agent j is a rival of active agent i within zap range."""
        gap = np.abs(self.positions[:, None, :] - self.positions[None, :, :]).max(axis=2)
        near = (gap <= self.zap_range) & active[:, None] & active[None, :]
        np.fill_diagonal(near, False)
        return near

    def _move_and_eat(self, acts: np.ndarray, movers: np.ndarray) -> np.ndarray:
        target = self.positions + MOVES[acts] * movers[:, None]
        self.positions = np.clip(target, 0, self.grid_size - 1)
        eaten = np.zeros(self.n_agents, dtype=np.float64)
        for i in self.np_random.permutation(self.n_agents):
            if self.frozen_for[i] > 0:
                continue
            r, c = self.positions[i]
            if self.apples[r, c]:
                self.apples[r, c] = False
                eaten[i] = 1.0
        return eaten

    def _freeze_and_respawn(self, victims: np.ndarray) -> None:
        waking = (self.frozen_for == 1) & ~victims
        self.frozen_for = np.where(self.frozen_for > 0, self.frozen_for - 1, 0)
        self.frozen_for[victims] = self.freeze_steps
        for i in np.flatnonzero(waking):
            cell = self.np_random.integers(self.grid_size * self.grid_size)
            self.positions[i] = divmod(int(cell), self.grid_size)

    def _regrow_apples(self) -> None:
        regrow = self.np_random.random(self.apples.shape) < self.respawn_prob
        self.apples |= self.apple_sites & regrow

    # ------------------------------------------------------------------ observation / render
    def _observations(self) -> dict[str, np.ndarray]:
        r, g = self.view_radius, self.grid_size
        pad = np.zeros((3, g + 2 * r, g + 2 * r), dtype=np.float32)
        pad[2] = 1.0
        pad[2, r : r + g, r : r + g] = 0.0
        pad[0, r : r + g, r : r + g] = self.apples
        active = self.frozen_for == 0
        observations = {}
        for i, agent in enumerate(self.possible_agents):
            obs = np.zeros(self._flat_shape, dtype=np.float32)
            if active[i]:
                others = pad[1].copy()
                for j in np.flatnonzero(active):
                    if j != i:
                        others[self.positions[j, 0] + r, self.positions[j, 1] + r] = 1.0
                y, x = self.positions[i]
                window = np.stack([pad[0], others, pad[2]])[:, y : y + 2 * r + 1, x : x + 2 * r + 1]
                obs[:-1] = window.reshape(-1)
            else:
                obs[-1] = 1.0
            observations[agent] = obs if self.observation == "flat" else flat_to_planes(obs)
        return observations

    def render(self) -> np.ndarray | None:
        """The grid, ``CELL_PIXELS`` per cell: apples as green dots (dim squares: sites
        waiting to regrow), each agent a disc in its own colour; an agent that zapped this step
        has a white ring and its zap range tinted in its colour; a frozen agent is a hollow
        ring where it was hit."""
        if self.render_mode is None:
            return None
        g, px = self.grid_size, CELL_PIXELS
        image = np.full((g * px, g * px, 3), 30.0)
        image[::px], image[:, ::px] = 42.0, 42.0  # grid lines
        image[_pixels(self.apple_sites & ~self.apples)] = (40, 62, 40)
        image[_pixels(self.apples, _DOT)] = (80, 210, 80)
        grid = np.indices((g, g)).transpose(1, 2, 0)
        for i in np.flatnonzero(self._last_zaps):
            area = _pixels(np.abs(grid - self.positions[i]).max(axis=2) <= self.zap_range)
            image[area] = 0.65 * image[area] + 0.35 * np.array(_PALETTE[i % len(_PALETTE)])
        for i in range(self.n_agents):
            cell = (grid == self.positions[i]).all(axis=2)
            colour = np.array(_PALETTE[i % len(_PALETTE)])
            if self.frozen_for[i] > 0:
                image[_pixels(cell, _RING)] = 0.6 * colour
                continue
            image[_pixels(cell, _DISC)] = colour
            if self._last_zaps[i]:
                image[_pixels(cell, _RING)] = 255
        return image.astype(np.uint8)

    def close(self) -> None:
        pass


_PALETTE = ((230, 80, 80), (80, 140, 240), (240, 200, 60), (200, 90, 220), (90, 220, 210))
_CENTRE = np.hypot(*np.indices((CELL_PIXELS, CELL_PIXELS)) - (CELL_PIXELS - 1) / 2)
_DISC = _CENTRE <= CELL_PIXELS * 0.36  # an agent within its cell
_RING = (_CENTRE > CELL_PIXELS * 0.30) & (_CENTRE <= CELL_PIXELS * 0.47)
_DOT = _CENTRE <= CELL_PIXELS * 0.2  # an apple


def _pixels(cells: np.ndarray, pattern: np.ndarray | None = None) -> np.ndarray:
    """The pixel mask of a ``[g, g]`` cell mask: whole cells, or ``pattern`` (``[px, px]``)
    within each."""
    inside = np.ones((CELL_PIXELS, CELL_PIXELS), dtype=bool) if pattern is None else pattern
    return np.kron(cells, inside).astype(bool)


def _check_args(
    n_agents: int,
    grid_size: int,
    apple_density: float,
    respawn_prob: float,
    zap_range: int,
    freeze_steps: int,
    view_radius: int,
    max_cycles: int,
    render_mode: str | None,
) -> None:
    """Fail at construction, naming the argument, rather than deep inside ``step``."""
    if n_agents < 2:
        raise ValueError(f"n_agents must be >= 2 (aggression needs a rival), got {n_agents}")
    if grid_size < 2 or grid_size * grid_size < n_agents:
        raise ValueError(f"grid_size={grid_size} is too small for {n_agents} agents")
    for name, value in (("apple_density", apple_density), ("respawn_prob", respawn_prob)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    for name, value in (
        ("zap_range", zap_range),
        ("freeze_steps", freeze_steps),
        ("view_radius", view_radius),
        ("max_cycles", max_cycles),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")


def flat_to_planes(flat: np.ndarray) -> np.ndarray:
    """``observation="planes"`` from flat observations ``[..., 3·w² + 1]``: ``[..., 4, w, w]``,
    the three channels as maps and the frozen flag as a constant fourth plane."""
    window = int(round(((flat.shape[-1] - 1) / 3) ** 0.5))
    lead = flat.shape[:-1]
    planes = np.empty((*lead, 4, window, window), dtype=flat.dtype)
    planes[..., :3, :, :] = flat[..., :-1].reshape(*lead, 3, window, window)
    planes[..., 3, :, :] = flat[..., -1, None, None]
    return planes


def parallel_env(**kwargs: Any) -> GatheringEnv:
    """PettingZoo-style factory."""
    return GatheringEnv(**kwargs)
