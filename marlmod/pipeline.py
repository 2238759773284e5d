"""The scenario pipeline for one seed: pretrain → record → locate → prune → retrain → score.

Every stage writes its output atomically under ``<run>/seed_<s>/`` and is skipped when that
output already exists, so an interrupted run resumes where it stopped. All strategies of a seed
branch from the same pretrained model, are evaluated on the same episodes (common random
numbers, so strategy differences are paired) and retrain with the same seed.

Layout of one seed's directory::

    pretrain/model.zip, metrics.json   trained with the misbehaviour bonus (timing.csv: its cost)
    control_model/model.zip, metrics…  same budget, bonus 0 (was the trait really learned?)
    scratch/curve.json, model.zip      fresh net, cooperative, retraining budget (capability bar)
    record/activations.npz             pretrained policy's activations of prune.layer (all_hidden:
                                       every hidden layer side by side) + trait labels
    record/layer_contrasts.json        signed contrast of every unit of every policy layer
    <strategy>/scores.json             the strategy's score for every unit of the layer
    <strategy>/prune.json, masks.pt    what was pruned ("none" = plain fine-tuning)
    <strategy>/cell.json, model.zip    before / pruned / retrained metrics, relapse curve, model
    <strategy>~released/…              the same prune retrained with masks released
    <strategy>~weights/…               the same number of individual weights pruned instead
    <strategy>~action_head/…           action logits ranked and masked (marked: not a module)
    <strategy>~distilled/…             the prune distilled into a fresh net (distillation.json)
    none~early_stopped/…               fine-tuning stopped when the trait stops falling
    <strategy>/sweep.json              trait and capability right after pruning, per fraction
    <strategy>/relocation.json         the trait re-located on the retrained model and pruned again
    clusterability.json                n-cut of pretrained and control nets vs shuffled copies
    random_policy/metrics.json         uniformly random actions, same episodes (capability floor)
    relearn/<model>/<start>_lr<r>.json a relearning attack on a cell, control_model or scratch
    <cell>/latent_probe.json           how well its hidden layers still encode the trait decision
    record/latent_probe_<model>.json   the same for the pretrained and control models
    <cell>/weight_space.json           distance from the pretrained weights, and the path between

The locate and prune stages live in ``marlmod.seed_locate``; the analyses beside the cells in
``marlmod.seed_extras``; the relearning attacks in ``marlmod.relearn``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

from marlmod.atomic import cached_json, read_json, write_json, write_with
from marlmod.cells import MODEL_STAGES, Cell
from marlmod.config import Scenario
from marlmod.distill import distill
from marlmod.environments import EnvFactory, ResolvedEnv, resolve_env
from marlmod.errors import MarlmodError, TraitNotObserved
from marlmod.metrics import Curve, Metrics, curve_from_json, curve_to_json, measure
from marlmod.modularity import WiringCost
from marlmod.prune import (
    HoldMasks,
    Masks,
    apply_masks,
    load_prune,
    zeroed,
)
from marlmod.random_policy import UniformPolicy
from marlmod.retrain import train_early_stopped, train_with_curve
from marlmod.routing import RoutedRolloutBuffer, RouteLabels, designated_units
from marlmod.seed_locate import LocateAndPrune
from marlmod.strategies.common import trait_groups
from marlmod.tasks import SeedTask, seed_tasks
from marlmod.timing import timed
from marlmod.train import build_model, learn, limit_threads, load_model, save_model

__all__ = ["SeedRun", "run_seed", "run_shared", "run_task", "seed_tasks"]
EVAL_SEED_OFFSET = 10_000
VALIDATION_SEED_OFFSET = 30_000  # early stopping watches these episodes, never scored


class SeedRun(LocateAndPrune):
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
        the same cache, which a filesystem shared by Ray nodes may not tolerate).

        No trait step on the recorded steps at all fails the whole seed (``TraitNotObserved``).
        Too few for one strategy (e.g. ``opportunity`` needs ten within opportunity rows) fails
        only that strategy's cells: their tasks raise the same error when they build the prune,
        and the seed's other cells go on."""
        limit_threads()
        self.pretrained("pretrain")
        self.pretrained("control")
        self.random_policy()
        model = self.pretrained_model()
        trait_groups(self.evidence(model).trait)
        for cell in self.scenario.cells:
            try:
                self.prune_for(cell.name, model)
            except TraitNotObserved:
                continue  # this cell's task re-raises it: the cell fails alone

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
