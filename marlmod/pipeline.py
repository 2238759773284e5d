"""The scenario pipeline for one seed: pretrain → record → locate → prune → retrain → score.

Every stage writes its output atomically under ``<run>/seed_<s>/`` and is skipped when that
output already exists, so an interrupted run resumes where it stopped. All strategies of a seed
branch from the same pretrained model, are evaluated on the same episodes (common random
numbers, so strategy differences are paired) and retrain with the same seed.

Layout of one seed's directory::

    pretrain/model.zip, metrics.json   trained with the misbehaviour bonus
    control_model/model.zip, metrics…  same budget, bonus 0 (was the trait really learned?)
    scratch/curve.json                 fresh net, cooperative, retraining budget (capability bar)
    record/activations.npz             pretrained policy's hidden activations + trait labels
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
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

from marlmod.atomic import read_json, write_json, write_with
from marlmod.cells import MODEL_STAGES, NO_PRUNE, Cell, scenario_cells
from marlmod.clusterability import clusterability, policy_weights
from marlmod.config import Scenario
from marlmod.environments import ResolvedEnv, resolve_env
from marlmod.errors import MarlmodError
from marlmod.locate import score_units, top_units
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
    zeroed,
)
from marlmod.record import activations_on
from marlmod.rollout import Rollout, rollout
from marlmod.routing import RoutedRolloutBuffer, RouteLabels, designated_units
from marlmod.strategies.evidence import Evidence
from marlmod.strategies.per_weight import per_weight_scores, top_weights
from marlmod.train import build_model, learn, limit_threads, load_model, save_model

# NO_PRUNE is re-exported: older imports name it here.
__all__ = ["NO_PRUNE", "SeedRun", "run_seed", "run_shared", "run_task", "seed_tasks"]
EVAL_SEED_OFFSET = 10_000
RECORD_SEED_OFFSET = 20_000


@dataclass(frozen=True)
class Metrics:
    trait_rate: float
    task_return: float
    role_returns: dict[str, float] = field(default_factory=dict)  # task return per role


@dataclass(frozen=True)
class CurvePoint:
    steps: int
    trait_rate: float
    task_return: float
    role_returns: dict[str, float] = field(default_factory=dict)


class SeedRun:
    """All stages of one seed, each cached on disk."""

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

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, model: PPO) -> Metrics:
        ev = self.scenario.evaluation
        result = rollout(
            model.policy,
            self.cooperative,
            ev.episodes,
            EVAL_SEED_OFFSET + self.seed,
            self.trait,
            ev.deterministic,
        )
        return Metrics(
            result.trait_rate(self.scenario.env.trait_role),
            result.task_return,
            result.task_return_by_role(),
        )

    # ---------------------------------------------------------------- pretraining
    def pretrained(self, name: str) -> tuple[Path, Metrics]:
        """Train (or reuse) the ``pretrain`` (bonus on) or ``control`` (bonus off) model."""
        stage = self.dir / MODEL_STAGES[name]
        path, metrics_path = stage / "model.zip", stage / "metrics.json"
        if name == "control" and not metrics_path.is_file():
            self.migrate_legacy_control(stage)
        if not metrics_path.is_file():
            make_env = self.aggressive if name == "pretrain" else self.cooperative
            method = self.scenario.pretrain.method if name == "pretrain" else "plain"
            buffer = RoutedRolloutBuffer if method == "routing" else None
            model = build_model(self.scenario, make_env, self.seed, rollout_buffer_class=buffer)
            callback = self.pretrain_callback(method)
            learn(self.logged(model), self.scenario.pretrain_steps, callback, log_name=name)
            save_model(model, path)
            write_json(metrics_path, asdict(self.evaluate(model)))
        return path, Metrics(**read_json(metrics_path))

    def migrate_legacy_control(self, stage: Path) -> None:
        """Runs made before the ``control_model/`` stage kept the control model in ``control/``,
        the ``control`` strategy's cell directory, whose retrained model then overwrote it.

        An intact legacy model is copied over; an overwritten one is left for ``pretrained`` to
        retrain (training is deterministic, so it is the same model) and the clusterability
        computed from the overwritten file is dropped so it is recomputed from the right net.
        """
        legacy = self.dir / "control"
        if not (legacy / "metrics.json").is_file():
            return
        if (legacy / "cell.json").is_file() or (legacy / "prune.json").is_file():
            (self.dir / "clusterability.json").unlink(missing_ok=True)
            return
        model_bytes = (legacy / "model.zip").read_bytes()
        write_with(stage / "model.zip", lambda tmp: tmp.write_bytes(model_bytes))
        write_json(stage / "metrics.json", read_json(legacy / "metrics.json"))

    def control_model(self) -> PPO:
        """The bonus-0 control, trained if needed, loaded onto cooperative envs."""
        path, _ = self.pretrained("control")
        return load_model(path, self.scenario, self.cooperative, self.seed)

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
        return designated_units(width, self.scenario.pretrain.routed_fraction)

    def scratch_curve(self) -> list[CurvePoint]:
        """A fresh network trained cooperatively on the retraining budget: the capability bar."""
        path = self.dir / "scratch" / "curve.json"
        if not path.is_file():
            model = build_model(self.scenario, self.cooperative, self.seed)
            curve = self._train_with_curve(model, None, "scratch")
            write_json(path, [asdict(p) for p in curve])
        return [CurvePoint(**p) for p in read_json(path)]

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
            rec, rows = self.record(model, [layer])
            control = self.control_model()
            write_with(
                path,
                lambda tmp: np.savez_compressed(
                    tmp,
                    activations=rec.activations[layer][rows],
                    trait=rec.trait[rows],
                    opportunity=rec.opportunity[rows],
                    obs=rec.obs[rows],
                    actions=rec.actions[rows],
                    control_activations=activations_on(control.policy, layer, rec.obs[rows]),
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
        path = self.dir / name / "scores.json"
        if not path.is_file():
            rng = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
            ev = self.head_evidence(model) if cell.action_head else self.evidence(model)
            write_json(path, score_units(cell.strategy, ev, rng).tolist())
        return np.asarray(read_json(path), dtype=np.float64)

    def build_prune(self, cell: Cell, model: PPO, fraction: float) -> Prune:
        """What ``cell`` removes at ``fraction``: the top units (or logits) by its strategy's
        scores, or as many individual weights as that unit prune zeroes, the top by
        ``per_weight_scores`` (equal size, so the granularities compare fairly)."""
        layer = ACTION_HEAD if cell.action_head else self.scenario.prune.layer
        scores = self.scores(cell.name, model)
        prune = Prune(
            cell.strategy, layer, fraction, tuple(int(u) for u in top_units(scores, fraction))
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

    def sweep(self, strategy: str) -> list[dict]:
        """Trait rate and task return right after pruning at each ``prune.sweep`` fraction."""
        path = self.dir / strategy / "sweep.json"
        if not path.is_file():
            model_path, _ = self.pretrained("pretrain")
            points = []
            for fraction in self.scenario.prune.sweep:
                model = load_model(model_path, self.scenario, self.cooperative, self.seed)
                apply_masks(model.policy, self.prune_for(strategy, model, fraction))
                metrics = self.evaluate(model)
                points.append({"fraction": fraction, **asdict(metrics)})
            write_json(path, points)
        return read_json(path)

    def clusterability(self) -> dict:
        """Filan et al.'s n-cut of the pretrained and control policy nets vs their shuffles."""
        path = self.dir / "clusterability.json"
        if not path.is_file():
            out = {}
            for name in ("pretrain", "control"):
                model_path, _ = self.pretrained(name)
                policy = load_model(model_path, self.scenario, self.cooperative, self.seed).policy
                result = clusterability(
                    policy_weights(policy),
                    np.random.default_rng(self.seed),
                    n_shuffles=self.scenario.clusterability_shuffles,
                )
                out[name] = {
                    "ncut": result.ncut,
                    "shuffled_ncuts": result.shuffled_ncuts.tolist(),
                    "percentile": result.percentile,
                    "z_score": result.z_score,
                }
            write_json(path, out)
        return read_json(path)

    # ---------------------------------------------------------------- retrain
    def logged(self, model: PPO) -> PPO:
        """Point the model's TensorBoard log at this seed's folder when the scenario asks."""
        if self.scenario.tensorboard:
            model.tensorboard_log = str(self.dir.parent / "tensorboard" / self.dir.name)
        return model

    def _train_with_curve(self, model: PPO, masks: Masks | None, name: str) -> list[CurvePoint]:
        """Cooperative training in equal chunks, evaluating before and after each chunk."""
        cfg = self.scenario.retrain
        chunk = max(1, cfg.steps // cfg.eval_points)
        first = self.evaluate(model)
        curve = [CurvePoint(0, first.trait_rate, first.task_return, first.role_returns)]
        callback = HoldMasks(masks) if masks is not None else None
        for i in range(cfg.eval_points):
            learn(self.logged(model), chunk, callback, continue_run=i > 0, log_name=name)
            metrics = self.evaluate(model)
            curve.append(
                CurvePoint(
                    model.num_timesteps,
                    metrics.trait_rate,
                    metrics.task_return,
                    metrics.role_returns,
                )
            )
        return curve

    def _retrain(self, name: str) -> tuple[PPO, list[CurvePoint]]:
        """Prune the pretrained model as cell ``name`` says and retrain it cooperatively."""
        model_path, _ = self.pretrained("pretrain")
        model = load_model(model_path, self.scenario, self.cooperative, self.seed)
        masks = self.prune_for(name, model)
        if masks is not None:
            apply_masks(model.policy, masks)
        hold = Cell.parse(name).hold
        curve = self._train_with_curve(model, masks if hold else None, f"retrain_{name}")
        return model, curve

    def cell(self, name: str) -> dict:
        """Prune as cell ``name`` says (``<strategy>`` or ``<strategy>~<variant>``, see
        ``marlmod.cells``), retrain cooperatively and score — one results cell. The retrained
        model is kept beside it."""
        spec = Cell.parse(name)
        path = self.dir / spec.name / "cell.json"
        if path.is_file():
            return read_json(path)
        _, before = self.pretrained("pretrain")
        model, curve = self._retrain(spec.name)
        save_model(model, self.dir / spec.name / "model.zip")
        prune = load_prune(self.dir / spec.prune_cell.name) if spec.pruned else None
        cell = {
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
            "curve": [asdict(p) for p in curve],
        }
        write_json(path, cell)
        return cell

    def retrained_model(self, strategy: str) -> PPO:
        """The retrained model of a finished (held-mask) cell. Cells finished before marlmod kept
        these are retrained again — deterministic, and checked against the stored curve."""
        path = self.dir / strategy / "model.zip"
        if not path.is_file():
            stored = self.cell(strategy)["curve"]
            model, curve = self._retrain(strategy)
            if [asdict(p) for p in curve] != stored:
                raise MarlmodError(
                    f"retraining {strategy!r} for seed {self.seed} again did not "
                    "reproduce its stored relapse curve; delete the cell to redo it"
                )
            save_model(model, path)
        return load_model(path, self.scenario, self.cooperative, self.seed)

    def layer_contrasts(self) -> dict[str, list[float]]:
        """Signed contrast of every unit of every policy hidden layer (for the heatmap)."""
        path = self.dir / "record" / "layer_contrasts.json"
        if not path.is_file():
            model_path, _ = self.pretrained("pretrain")
            model = load_model(model_path, self.scenario, self.cooperative, self.seed)
            layers = list(self.scenario.network.policy_layers)
            rec, rows = self.record(model, layers)
            out = {}
            for layer in layers:
                ev = Evidence(acts=rec.activations[layer][rows], trait=rec.trait[rows])
                out[layer] = score_units("contrast", ev, np.random.default_rng(0)).tolist()
            write_json(path, out)
        return read_json(path)

    # ---------------------------------------------------------------- relocation
    def relocation(self, strategy: str) -> dict:
        """Did the trait move to other units during retraining? Re-locate it on the retrained
        model (``contrast`` on fresh recordings, pruned units excluded), prune that many more
        units, and measure the trait again."""
        path = self.dir / strategy / "relocation.json"
        if path.is_file():
            return read_json(path)
        prune, _ = load_prune(self.dir / strategy)
        model = self.retrained_model(strategy)
        rec, rows = self.record(model, [prune.layer])
        result: dict = {"strategy": strategy, "trait_steps": int(rec.trait[rows].sum())}
        if 2 <= result["trait_steps"] < rows.sum() - 1:
            ev = Evidence(acts=rec.activations[prune.layer][rows], trait=rec.trait[rows])
            d = score_units("contrast", ev, np.random.default_rng(self.seed))
            d[list(prune.units)] = -np.inf
            units = top_units(d, prune.fraction)
            again = Prune("relocated", prune.layer, prune.fraction, tuple(int(u) for u in units))
            apply_masks(model.policy, unit_masks(model.policy, again))
            metrics = self.evaluate(model)
            result.update(
                new_units=list(again.units),
                new_units_max_d=float(d[units].max()),
                trait_rate_second_prune=metrics.trait_rate,
                task_return_second_prune=metrics.task_return,
            )
        write_json(path, result)
        return result

    # ---------------------------------------------------------------- everything
    def shared(self) -> None:
        """What the seed's tasks read: both pretrained models, the recorded evidence and every
        cell's prune (its strategy's scores and the masks). Run once before the seed's tasks fan
        out, so that each task then writes only files of its own (no two workers race to write
        the same cache, which a filesystem shared by Ray nodes may not tolerate)."""
        limit_threads()
        model_path, _ = self.pretrained("pretrain")
        self.pretrained("control")
        model = load_model(model_path, self.scenario, self.cooperative, self.seed)
        self.evidence(model)
        for cell in scenario_cells(self.scenario.prune):
            self.prune_for(cell.name, model)

    def task(self, name: str) -> None:
        """One independent piece of this seed's work (see ``seed_tasks``), after ``shared``."""
        limit_threads()
        kind, _, arg = name.partition(":")
        if kind == "cell":
            self.cell(arg)
            if arg in self.scenario.prune.relocate:  # reads the cell's retrained model
                self.relocation(arg)
        elif kind == "sweep":
            self.sweep(arg)
        elif kind == "scratch":
            self.scratch_curve()
        elif kind == "layer_contrasts":
            self.layer_contrasts()
        elif kind == "clusterability":
            self.clusterability()
        else:
            raise MarlmodError(f"unknown seed task {name!r}")

    def run(self) -> dict:
        """Every stage for this seed, one after another; returns the seed's cells and
        references."""
        self.shared()
        for name in seed_tasks(self.scenario):
            self.task(name)
        _, control = self.pretrained("control")
        return {
            "seed": self.seed,
            "cells": [self.cell(cell.name) for cell in scenario_cells(self.scenario.prune)],
            "control": asdict(control),
            "scratch": [asdict(p) for p in self.scratch_curve()],
        }


def seed_tasks(scenario: Scenario) -> list[str]:
    """The work of one seed after its shared stages, as tasks that may run in any order and in
    parallel: each reads what ``SeedRun.shared`` stored and writes only files of its own."""
    prune = scenario.prune
    tasks = [f"cell:{cell.name}" for cell in scenario_cells(prune)]
    tasks += [f"sweep:{strategy}" for strategy in prune.strategies if prune.sweep]
    tasks += ["scratch", "layer_contrasts"]
    if scenario.clusterability_shuffles:
        tasks.append("clusterability")
    return tasks


def run_shared(scenario: Scenario, seed: int, run_dir: Path) -> None:
    """Picklable entry point: a seed's shared stages."""
    SeedRun(scenario, seed, run_dir).shared()


def run_task(scenario: Scenario, seed: int, run_dir: Path, name: str) -> None:
    """Picklable entry point: one of ``seed_tasks`` for ``seed``."""
    SeedRun(scenario, seed, run_dir).task(name)


def run_seed(scenario: Scenario, seed: int, run_dir: Path) -> dict:
    """Picklable entry point: a whole seed in one process."""
    return SeedRun(scenario, seed, run_dir).run()
