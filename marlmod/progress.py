"""Progress of a run in agent-steps, so that the bar's rate and ETA mean something.

A run's tasks differ in size by orders of magnitude: a seed's shared stages train two models for
``pretrain_steps`` each, a cell retrains for ``retrain.steps``, a sweep only evaluates. Counting
tasks gives an ETA that is wrong by as much. Each task is given instead the agent-steps it plays,
estimated from the scenario alone: training (rounded up to whole rollouts, as SB3 trains, chunk
by chunk along a curve) plus every evaluation and recording episode (``agents × episode length``
each, when the env's episode length is known; else evaluation counts nothing). The bar advances
by a task's estimate when the task finishes and shows agent-steps per second and the time left.
Work that plays no env steps (clusterability, probes on stored states) counts nothing.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tqdm import tqdm

from marlmod.cells import Cell
from marlmod.retrain import chunk_sizes
from marlmod.tasks import (
    CellTask,
    LayerContrastsTask,
    RelearnTask,
    ScratchTask,
    SeedTask,
    SweepTask,
    WeightSpaceTask,
    seed_tasks,
)
from marlmod.weight_space import ALPHAS

if TYPE_CHECKING:
    from marlmod.config import Scenario


@dataclass(frozen=True)
class EpisodeSize:
    """How many agents act in the env, and for how many steps an episode runs (None: unknown)."""

    agents: int
    length: int | None

    @property
    def agent_steps(self) -> int:
        return 0 if self.length is None else self.agents * self.length


def episode_size(scenario: Scenario) -> EpisodeSize:
    """The env's agent count and episode length, read from one env built from the scenario: its
    ``max_cycles`` (or ``episode_length``) attribute, else the constructor's ``max_cycles``."""
    from marlmod.environments import resolve_env

    resolved = resolve_env(scenario.env)
    env = resolved.factory(0.0)()
    agents = len(env.possible_agents)
    length = None
    for holder in (env, getattr(env, "unwrapped", env)):
        for attribute in ("max_cycles", "episode_length"):
            value = getattr(holder, attribute, None)
            if isinstance(value, int) and length is None:
                length = value
    env.close()
    if length is None:
        default = inspect.signature(resolved.constructor).parameters.get("max_cycles")
        if default is not None and isinstance(default.default, int):
            length = scenario.env.kwargs.get("max_cycles", default.default)
    return EpisodeSize(agents, length)


class TaskCosts:
    """Estimated agent-steps of each of a scenario's tasks (``None``: a seed's shared stages)."""

    def __init__(self, scenario: Scenario, size: EpisodeSize) -> None:
        self.scenario = scenario
        self.size = size
        ppo = scenario.ppo
        self.rollout = ppo.n_copies * size.agents * ppo.n_steps  # agent-steps per PPO rollout
        situations = 1 + len(scenario.evaluation.held_out)
        self.evaluation = scenario.evaluation.episodes * size.agent_steps * situations
        self.recording = scenario.record_episodes * size.agent_steps

    def trained(self, steps: int) -> int:
        """Agent-steps SB3 plays to train ``steps``: whole rollouts."""
        return math.ceil(steps / self.rollout) * self.rollout

    def curve(self, steps: int, points: int, spacing: str) -> int:
        """Training in ``points`` chunks with an evaluation before the first and after each."""
        chunks = chunk_sizes(steps, points, spacing)  # type: ignore[arg-type]
        return sum(self.trained(c) for c in chunks) + (points + 1) * self.evaluation

    def shared(self) -> int:
        """Pretraining and the control, each evaluated; the recording episodes; the uniformly
        random policy's evaluation."""
        pretrain = self.trained(self.scenario.pretrain_steps) + self.evaluation
        return 2 * pretrain + self.recording + self.evaluation

    def of(self, task: SeedTask | None) -> int:
        """The estimated agent-steps of ``task`` (``None``: the seed's shared stages)."""
        s = self.scenario
        retrain = self.curve(s.retrain.steps, s.retrain.eval_points, s.retrain.spacing)
        if task is None:
            return self.shared()
        if isinstance(task, CellTask):
            cell = Cell.parse(task.cell)
            cost = retrain
            if cell.distilled:
                cost += s.distill.rollout_steps
            if cell.early_stopped:  # the validation episodes beside every evaluation
                cost += (s.retrain.eval_points + 1) * s.evaluation.episodes * self.size.agent_steps
            if task.cell in s.prune.relocate:
                cost += self.recording + self.evaluation
            return cost
        if isinstance(task, ScratchTask):
            return retrain
        if isinstance(task, SweepTask):
            return len(s.prune.sweep) * self.evaluation
        if isinstance(task, LayerContrastsTask):
            return self.recording
        if isinstance(task, RelearnTask) and s.relearn is not None:
            cfg = s.relearn
            return self.curve(cfg.steps, cfg.eval_points, cfg.spacing)
        if isinstance(task, WeightSpaceTask):
            return len(ALPHAS) * self.evaluation
        return 0  # clusterability, latent probes: no env steps

    def per_seed(self) -> int:
        return self.of(None) + sum(self.of(task) for task in seed_tasks(self.scenario))

    def total(self) -> int:
        return len(self.scenario.seeds) * self.per_seed()


def progress_bar(scenario: Scenario, costs: TaskCosts) -> tqdm:
    """A bar over the run's estimated agent-steps, with their rate and the time left."""
    return tqdm(
        total=costs.total(),
        desc=f"{scenario.name}: agent-steps",
        unit=" agent-steps",
        unit_scale=True,
        smoothing=0.1,
    )
