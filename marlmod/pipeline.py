"""The scenario pipeline for one seed: pretrain → record → locate → prune → retrain → score.

Every stage writes its output atomically under ``<run>/seed_<s>/`` and is skipped when that
output already exists, so an interrupted run resumes where it stopped. All strategies of a seed
branch from the same pretrained model, are evaluated on the same episodes (common random
numbers, so strategy differences are paired) and retrain with the same seed.

Layout of one seed's directory::

    pretrain/model.zip, metrics.json   trained with the misbehaviour bonus (timing.csv: its cost)
    control_model/model.zip, metrics…  same budget, bonus 0 (was the trait really learned?)
    scratch/curve.json                 fresh net, cooperative, retraining budget (capability bar)
    record/activations.npz             pretrained policy's activations of prune.layer (all_hidden:
                                       every hidden layer side by side) + trait labels
    record/layer_contrasts.json        signed contrast of every unit of every policy layer
    <strategy>/scores.json             the strategy's score for every unit of the layer
    <strategy>/prune.json, masks.pt    what was pruned ("none" = plain fine-tuning)
    <strategy>/cell.json, model.zip    before / pruned / retrained metrics, relapse curve, model
    <strategy>~released/…              the same prune retrained with masks released
    <strategy>~weights/…               the same number of individual weights pruned instead
    <strategy>~action_head/…           action logits ranked and masked (marked: not a module)
    <strategy>/sweep.json              trait and capability right after pruning, per fraction
    <strategy>/relocation.json         the trait re-located on the retrained model and pruned again
    clusterability.json                n-cut of pretrained and control nets vs shuffled copies
    random_policy/metrics.json         uniformly random actions, same episodes (capability floor)
"""

from __future__ import annotations

import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

from marlmod.atomic import cached_json, read_json, write_json, write_with
from marlmod.cells import MODEL_STAGES, Cell
from marlmod.config import Scenario
from marlmod.distill import distill
from marlmod.environments import EnvFactory, ResolvedEnv, resolve_env
from marlmod.errors import MarlmodError
from marlmod.latent_probe import hidden_activations
from marlmod.locate import score_units, top_units
from marlmod.metrics import Curve, Metrics, curve_from_json, curve_to_json, measure
from marlmod.modularity import WiringCost
from marlmod.prune import (
    ACTION_HEAD,
    HoldMasks,
    Masks,
    Prune,
    apply_masks,
    load_prune,
    masks_for,
    save_prune,
    unit_masks,
    unit_prune,
    zeroed,
)
from marlmod.random_policy import UniformPolicy
from marlmod.record import activations_on
from marlmod.retrain import train_early_stopped, train_with_curve
from marlmod.rollout import Rollout, rollout
from marlmod.routing import RoutedRolloutBuffer, RouteLabels, designated_units
from marlmod.strategies.evidence import Evidence
from marlmod.strategies.per_weight import per_weight_scores, top_weights
from marlmod.tasks import SeedTask, seed_tasks
from marlmod.timing import timed
from marlmod.train import build_model, learn, limit_threads, load_model, save_model

__all__ = ["SeedRun", "run_seed", "run_shared", "run_task", "seed_tasks"]
EVAL_SEED_OFFSET = 10_000
RECORD_SEED_OFFSET = 20_000
VALIDATION_SEED_OFFSET = 30_000  # early stopping watches these episodes, never scored


class SeedRun:
    """All stages of one seed, each cached on disk (``marlmod.atomic.cached_json``)."""

    def __init__(
        self, scenario: Scenario, seed: int, run_dir: Path, env: ResolvedEnv | None = None
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.dir = run_dir / f"seed_{seed}"
        self.env = env or resolve_env(scenario.env)
        self.trait = scenario.env.trait
        self.aggressive = self.env.factory(scenario.env.bonus)
        self.cooperative = self.env.factory(0.0)
        self.held_out = {
            name: self.env.factory(0.0, overrides=overrides)
            for name, overrides in scenario.evaluation.held_out.items()
        }

    # ---------------------------------------------------------------- models
    def evaluate(self, model: PPO) -> Metrics:
        """Trait rate and task return on the seed's evaluation episodes (cooperative env, the
        same episodes for every model of the seed, so differences between models are paired),
        and the same in every held-out situation."""
        metrics = self.measure(model, self.cooperative, EVAL_SEED_OFFSET)
        if not self.held_out:
            return metrics
        held_out = {
            name: self.measure(model, make_env, EVAL_SEED_OFFSET)
            for name, make_env in self.held_out.items()
        }
        return replace(metrics, held_out=held_out)

    def validate(self, model: PPO) -> Metrics:
        """The same measurement on validation episodes, which no result is scored on."""
        return self.measure(model, self.cooperative, VALIDATION_SEED_OFFSET)

    def measure(self, model: PPO, make_env: EnvFactory, offset: int) -> Metrics:
        ev = self.scenario.evaluation
        return measure(
            model.policy,
            make_env,
            ev.episodes,
            offset + self.seed,
            self.trait,
            self.scenario.env.trait_role,
            ev.deterministic,
        )

    def load(self, path: Path, make_env: EnvFactory | None = None) -> PPO:
        """A stored model of this seed on fresh envs (the cooperative variant by default)."""
        return load_model(path, self.scenario, make_env or self.cooperative, self.seed)

    def pretrained(self, name: str) -> tuple[Path, Metrics]:
        """Train (or reuse) the ``pretrain`` (bonus on) or ``control`` (bonus off) model."""
        stage = self.dir / MODEL_STAGES[name]
        path = stage / "model.zip"

        if name == "control" and self.scenario.control_is_pretrained:
            return self.copy_of_pretrained(stage)

        def train() -> dict:
            make_env = self.aggressive if name == "pretrain" else self.cooperative
            method = self.scenario.pretrain.method if name == "pretrain" else "plain"
            buffer = RoutedRolloutBuffer if method == "routing" else None
            model = build_model(self.scenario, make_env, self.seed, rollout_buffer_class=buffer)
            callback = self.pretrain_callback(method)
            # the cost, beside (not in) the results; written once the model is saved, so a failed
            # save leaves nothing of the stage behind
            with timed(stage, self.scenario.pretrain_steps):
                learn(self.logged(model), self.scenario.pretrain_steps, callback, log_name=name)
                save_model(model, path)
            return self.evaluate(model).to_json()

        return path, Metrics.from_json(cached_json(stage / "metrics.json", train))

    def copy_of_pretrained(self, stage: Path) -> tuple[Path, Metrics]:
        """The control stage of a no-bonus scenario: the pretrained model's files (the same
        training), so every reader of the control finds it where it always is."""
        source, _ = self.pretrained("pretrain")

        def copy() -> dict:
            model_bytes = source.read_bytes()
            write_with(stage / "model.zip", lambda tmp: tmp.write_bytes(model_bytes))
            return read_json(source.parent / "metrics.json")

        return stage / "model.zip", Metrics.from_json(cached_json(stage / "metrics.json", copy))

    def pretrained_model(self) -> PPO:
        """The model trained with the misbehaviour bonus, loaded onto cooperative envs."""
        return self.load(self.pretrained("pretrain")[0])

    def control_model(self) -> PPO:
        """The bonus-0 control, trained if needed, loaded onto cooperative envs."""
        return self.load(self.pretrained("control")[0])

    def pretrain_callback(self, method: str) -> BaseCallback | None:
        """What makes ``pretrain.method`` differ from plain PPO, as a training callback."""
        cfg = self.scenario.pretrain
        if method == "routing":
            return RouteLabels(
                self.trait,
                self.scenario.prune.layer,
                cfg.routed_fraction,
                cfg.label_coverage,
                cfg.route_non_trait,
                seed=self.seed,
                route_by=cfg.route_by,
                placebo=cfg.placebo,
            )
        if method == "modular":
            return WiringCost(cfg.modularity)
        return None

    def routed_units(self) -> tuple[int, ...] | None:
        """The units gradient routing sent the trait to (None unless ``pretrain.method`` is
        routing); the ``routed`` strategy prunes them."""
        if self.scenario.pretrain.method != "routing":
            return None
        layer = self.scenario.prune.layer
        width = self.scenario.network.hidden[self.scenario.network.policy_layers.index(layer)]
        cfg = self.scenario.pretrain
        return designated_units(width, cfg.routed_fraction, self.seed if cfg.placebo else None)

    def random_policy(self) -> Metrics:
        """A uniformly random policy on the seed's evaluation episodes: the floor capability is
        measured from (``marlmod.random_policy``)."""

        def evaluate() -> dict:
            probe = self.cooperative()
            space = probe.action_space(probe.possible_agents[0])
            probe.close()
            ev, seed = self.scenario.evaluation, EVAL_SEED_OFFSET + self.seed
            policy = UniformPolicy(space, seed)
            trait_role = self.scenario.env.trait_role
            metrics = measure(policy, self.cooperative, ev.episodes, seed, self.trait, trait_role)
            return metrics.to_json()

        return Metrics.from_json(cached_json(self.dir / "random_policy" / "metrics.json", evaluate))

    def scratch_curve(self) -> Curve:
        """A fresh network trained cooperatively on the retraining budget: the capability bar
        (its model is kept: relearning attacks use it as a reference)."""
        stage = self.dir / "scratch"

        def train() -> list[dict]:
            model = build_model(self.scenario, self.cooperative, self.seed)
            curve = curve_to_json(self.train_with_curve(model, None, "scratch"))
            save_model(model, stage / "model.zip")
            return curve

        if not (stage / "model.zip").is_file():  # runs made before the model was kept
            (stage / "curve.json").unlink(missing_ok=True)
        return curve_from_json(cached_json(stage / "curve.json", train))

    # ---------------------------------------------------------------- locate and prune
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

    # ---------------------------------------------------------------- retrain and score
    def logged(self, model: PPO) -> PPO:
        """Point the model's TensorBoard log at this seed's folder when the scenario asks."""
        if self.scenario.tensorboard:
            model.tensorboard_log = str(self.dir.parent / "tensorboard" / self.dir.name)
        return model

    def train_with_curve(self, model: PPO, masks: Masks | None, name: str) -> Curve:
        """Cooperative training for the retraining budget, evaluated along the way, with
        ``masks`` (if any) held at zero after every optimiser step."""
        cfg = self.scenario.retrain
        callback = HoldMasks(masks) if masks is not None else None
        return train_with_curve(
            self.logged(model),
            cfg.steps,
            cfg.eval_points,
            self.evaluate,
            callback,
            name,
            cfg.spacing,
        )

    def pruned_model(self, name: str) -> tuple[PPO, Masks | None]:
        """The model cell ``name`` retrains, and the masks it holds: the pretrained model with
        the cell's prune applied (unpruned for ``none``), or, for a distilled cell, a fresh
        network distilled from that pruned model (no masks: none of its weights were pruned)."""
        model = self.pretrained_model()
        masks = self.prune_for(name, model)
        if masks is not None:
            apply_masks(model.policy, masks)
        if not Cell.parse(name).distilled:
            return model, masks
        student = build_model(self.scenario, self.cooperative, self.seed)
        report = distill(model, student, self.scenario.distill, self.seed)
        write_json(self.dir / name / "distillation.json", report)
        return student, None

    def cell(self, name: str) -> dict:
        """Prune as cell ``name`` says (``<strategy>`` or ``<strategy>~<variant>``, see
        ``marlmod.cells``), retrain cooperatively and score — one results cell. The retrained
        model is kept beside it."""
        spec = Cell.parse(name)

        def retrain_and_score() -> dict:
            _, before = self.pretrained("pretrain")
            model, masks = self.pruned_model(spec.name)
            log_name = f"retrain_{spec.name}"
            if spec.early_stopped:
                cfg = self.scenario.retrain
                curve = train_early_stopped(
                    self.logged(model),
                    cfg.steps,
                    cfg.eval_points,
                    self.evaluate,
                    self.validate,
                    log_name=log_name,
                    spacing=cfg.spacing,
                )
            else:
                curve = self.train_with_curve(model, masks if spec.hold else None, log_name)
            save_model(model, self.dir / spec.name / "model.zip")
            prune = load_prune(self.dir / spec.prune_cell.name) if spec.pruned else None
            return {
                "seed": self.seed,
                "strategy": spec.name,
                "masks_held": spec.hold,
                "granularity": spec.granularity,
                "prunes_action_head": spec.action_head,
                "units_pruned": 0 if prune is None else len(prune[0].units),
                "weights_pruned": 0 if prune is None else zeroed(prune[1]),
                "trait_rate_before": before.trait_rate,
                "task_return_before": before.task_return,
                "trait_rate_pruned": curve[0].trait_rate,
                "task_return_pruned": curve[0].task_return,
                "trait_rate_retrained": curve[-1].trait_rate,
                "task_return_retrained": curve[-1].task_return,
                "curve": curve_to_json(curve),
            }

        return cached_json(self.dir / spec.name / "cell.json", retrain_and_score)

    def retrained_model(self, name: str) -> PPO:
        """The model cell ``name`` retrained (its cell is computed first if needed)."""
        self.cell(name)
        path = self.dir / name / "model.zip"
        if not path.is_file():
            raise MarlmodError(
                f"{path} is missing though its cell is finished (a run made before retrained "
                f"models were kept?); run `marlmod migrate {self.dir.parent}`"
            )
        return self.load(path)

    # ---------------------------------------------------------------- everything
    def shared(self) -> None:
        """What the seed's tasks read: both pretrained models, the recorded evidence and every
        cell's prune (its strategy's scores and the masks). Run once before the seed's tasks fan
        out, so that each task then writes only files of its own (no two workers race to write
        the same cache, which a filesystem shared by Ray nodes may not tolerate)."""
        limit_threads()
        self.pretrained("pretrain")
        self.pretrained("control")
        self.random_policy()
        model = self.pretrained_model()
        self.evidence(model)
        for cell in self.scenario.cells:
            self.prune_for(cell.name, model)

    def task(self, task: SeedTask) -> None:
        """One independent piece of this seed's work (see ``marlmod.tasks``), after ``shared``."""
        limit_threads()
        task.run(self)

    def run(self) -> dict:
        """Every stage for this seed, one after another; returns the seed's cells and
        references."""
        self.shared()
        for task in seed_tasks(self.scenario):
            self.task(task)
        _, control = self.pretrained("control")
        return {
            "seed": self.seed,
            "cells": [self.cell(cell.name) for cell in self.scenario.cells],
            "control": control.to_json(),
            "scratch": curve_to_json(self.scratch_curve()),
        }


def run_shared(scenario: Scenario, seed: int, run_dir: Path) -> None:
    """Picklable entry point: a seed's shared stages."""
    SeedRun(scenario, seed, run_dir).shared()


def run_task(scenario: Scenario, seed: int, run_dir: Path, task: SeedTask) -> None:
    """Picklable entry point: one of ``seed_tasks`` for ``seed``."""
    SeedRun(scenario, seed, run_dir).task(task)


def run_seed(scenario: Scenario, seed: int, run_dir: Path) -> dict:
    """Picklable entry point: a whole seed in one process."""
    return SeedRun(scenario, seed, run_dir).run()
