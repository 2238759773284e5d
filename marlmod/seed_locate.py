"""The locate and prune stages of one seed: recordings, evidence, unit scores and stored prunes.

A mixin of ``marlmod.pipeline.SeedRun``, kept apart so that each file holds one part of the
pipeline: this one turns the pretrained policy into the evidence a locating strategy reads
(``Evidence``), each strategy's cached unit scores, and each cell's prune with its masks. It
reads the seed's models and settings through the attributes ``SeedRun`` sets.
"""

from __future__ import annotations

import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
from stable_baselines3 import PPO

from marlmod.atomic import cached_json, write_with
from marlmod.cells import Cell
from marlmod.config import Scenario
from marlmod.environments import EnvFactory
from marlmod.latent_probe import hidden_activations
from marlmod.locate import score_units, top_units
from marlmod.prune import (
    ACTION_HEAD,
    Masks,
    Prune,
    load_prune,
    masks_for,
    save_prune,
    unit_masks,
    unit_prune,
    zeroed,
)
from marlmod.record import activations_on
from marlmod.rollout import Rollout, rollout
from marlmod.strategies.evidence import Evidence
from marlmod.strategies.per_weight import per_weight_scores, top_weights

RECORD_SEED_OFFSET = 20_000


class LocateAndPrune:
    """Recording, evidence, scores and prunes of one seed (mixed into ``SeedRun``)."""

    scenario: Scenario
    seed: int
    dir: Path
    trait: str
    aggressive: EnvFactory

    def control_model(self) -> PPO:
        raise NotImplementedError

    def routed_units(self) -> tuple[int, ...] | None:
        raise NotImplementedError

    def record(self, model: PPO, layers: list[str]) -> tuple[Rollout, np.ndarray]:
        """Activations of ``layers`` on the misbehaving env's recording episodes, and the rows of
        agents that can show the trait (``env.trait_role``)."""
        rec = rollout(
            model.policy,
            self.aggressive,
            self.scenario.record_episodes,
            RECORD_SEED_OFFSET + self.seed,
            self.trait,
            self.scenario.evaluation.deterministic,
            record=layers,
        )
        return rec, rec.rows_of(self.scenario.env.trait_role)

    def evidence(self, model: PPO) -> Evidence:
        """Activations of the pruned layer on the pretrained policy's own rollouts, with labels,
        inputs, actions and the control policy's activations on the same inputs."""
        path = self.dir / "record" / "activations.npz"
        layer = self.scenario.prune.layer
        if not path.is_file():
            layers = [name for name, _ in self.scenario.network.units(layer)]  # all_hidden: all
            rec, rows = self.record(model, layers)
            control = self.control_model()
            write_with(
                path,
                lambda tmp: np.savez_compressed(
                    tmp,
                    activations=np.concatenate([rec.activations[p][rows] for p in layers], 1),
                    trait=rec.trait[rows],
                    opportunity=rec.opportunity[rows],
                    obs=rec.obs[rows],
                    actions=rec.actions[rows],
                    control_activations=hidden_activations(control.policy, layers, rec.obs[rows]),
                ),
            )
        with np.load(path) as data:
            return Evidence(
                acts=data["activations"],
                trait=data["trait"],
                opportunity=data["opportunity"],
                obs=data["obs"],
                actions=data["actions"],
                control_acts=data["control_activations"],
                policy=model.policy,
                layer=layer,
                routed_units=self.routed_units(),
            )

    def head_evidence(self, model: PPO) -> Evidence:
        """Evidence about the action head: the pretrained and the control policy's logits on the
        recorded states (recomputed from the stored observations: the same forward pass)."""
        ev = self.evidence(model)
        control = self.control_model()
        return replace(
            ev,
            acts=activations_on(model.policy, ACTION_HEAD, ev.obs),
            control_acts=activations_on(control.policy, ACTION_HEAD, ev.obs),
            layer=ACTION_HEAD,
            routed_units=None,
        )

    def scores(self, name: str, model: PPO) -> np.ndarray:
        """Unit scores of cell ``name``'s strategy (cached): the prune and the sweep read them.
        An action-head cell scores the logits; every other cell the hidden layer's units."""
        cell = Cell.parse(name)
        name = cell.name if cell.action_head else cell.strategy

        def score() -> list[float]:
            rng = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
            ev = self.head_evidence(model) if cell.action_head else self.evidence(model)
            return score_units(cell.strategy, ev, rng).tolist()

        return np.asarray(cached_json(self.dir / name / "scores.json", score), dtype=np.float64)

    def build_prune(self, cell: Cell, model: PPO, fraction: float) -> Prune:
        """What ``cell`` removes at ``fraction``: the top units (or logits) by its strategy's
        scores, or as many individual weights as that unit prune zeroes, the top by
        ``per_weight_scores`` (equal size, so the granularities compare fairly)."""
        layer = ACTION_HEAD if cell.action_head else self.scenario.prune.layer
        scores = self.scores(cell.name, model)
        units = top_units(scores, fraction)
        if cell.action_head:
            prune = Prune(cell.strategy, layer, fraction, tuple(int(u) for u in units))
        else:  # an all_hidden prune also stores its units per layer
            prune = unit_prune(
                cell.strategy, layer, fraction, units, self.scenario.network.units(layer)
            )
        if cell.granularity != "weights":
            return prune
        count = zeroed(unit_masks(model.policy, prune))
        rng = np.random.default_rng([self.seed, zlib.crc32(cell.name.encode())])
        weights = per_weight_scores(cell.strategy, self.evidence(model), scores, rng)
        return Prune(cell.strategy, layer, fraction, (), "weights", top_weights(weights, count))

    def prune_for(self, name: str, model: PPO, fraction: float | None = None) -> Masks | None:
        """Masks of cell ``name`` at the scenario's fraction (stored), or at ``fraction``."""
        cell = Cell.parse(name).prune_cell
        if not cell.pruned:
            return None
        if fraction is not None:
            return masks_for(model.policy, self.build_prune(cell, model, fraction))
        stage = self.dir / cell.name
        if not (stage / "prune.json").is_file():
            prune = self.build_prune(cell, model, self.scenario.prune.fraction)
            save_prune(prune, masks_for(model.policy, prune), stage)
        return load_prune(stage)[1]
