"""Analyses of one seed beside its cells: fraction sweep, clusterability, layer contrasts,
relocation, latent-trait probes and weight-space paths. Each reads the seed's cached models and
prunes and stores one JSON file of its own."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from marlmod.atomic import cached_json
from marlmod.clusterability import clusterability as ncut_vs_shuffles
from marlmod.clusterability import policy_weights
from marlmod.latent_probe import latent_trait
from marlmod.locate import score_units, top_units
from marlmod.prune import apply_masks, load_prune, unit_masks, unit_prune
from marlmod.strategies.evidence import Evidence
from marlmod.weight_space import straight_path

if TYPE_CHECKING:
    from marlmod.pipeline import SeedRun


def sweep(seed: SeedRun, strategy: str) -> list[dict]:
    """Trait rate and task return right after pruning at each ``prune.sweep`` fraction."""

    def compute() -> list[dict]:
        points = []
        for fraction in seed.scenario.prune.sweep:
            model = seed.pretrained_model()
            apply_masks(model.policy, seed.prune_for(strategy, model, fraction))
            points.append({"fraction": fraction, **seed.evaluate(model).to_json()})
        return points

    return cached_json(seed.dir / strategy / "sweep.json", compute)


def clusterability(seed: SeedRun) -> dict:
    """Filan et al.'s n-cut of the pretrained and control policy nets vs their shuffles."""

    def compute() -> dict:
        out = {}
        for name in ("pretrain", "control"):
            policy = seed.load(seed.pretrained(name)[0]).policy
            result = ncut_vs_shuffles(
                policy_weights(policy),
                np.random.default_rng(seed.seed),
                n_shuffles=seed.scenario.clusterability_shuffles,
            )
            out[name] = {
                "ncut": result.ncut,
                "shuffled_ncuts": result.shuffled_ncuts.tolist(),
                "percentile": result.percentile,
                "z_score": result.z_score,
            }
        return out

    return cached_json(seed.dir / "clusterability.json", compute)


def layer_contrasts(seed: SeedRun) -> dict[str, list[float]]:
    """Signed contrast of every unit of every policy hidden layer (for the heatmap); a CNN's
    conv layers first, one value per channel."""

    def compute() -> dict[str, list[float]]:
        layers = list(seed.scenario.network.layers)  # conv layers (per channel), then dense
        rec, rows = seed.record(seed.pretrained_model(), layers)
        out = {}
        for layer in layers:
            ev = Evidence(acts=rec.activations[layer][rows], trait=rec.trait[rows])
            out[layer] = score_units("contrast", ev, np.random.default_rng(0)).tolist()
        return out

    return cached_json(seed.dir / "record" / "layer_contrasts.json", compute)


def relocation(seed: SeedRun, strategy: str) -> dict:
    """Did the trait move to other units during retraining? Re-locate it on the retrained
    model (``contrast`` on fresh recordings, pruned units excluded), prune that many more
    units, and measure the trait again."""

    def compute() -> dict:
        prune, _ = load_prune(seed.dir / strategy)
        model = seed.retrained_model(strategy)
        layers = seed.scenario.network.units(prune.layer)  # all_hidden: every hidden layer
        rec, rows = seed.record(model, [path for path, _ in layers])
        result: dict = {"strategy": strategy, "trait_steps": int(rec.trait[rows].sum())}
        if 2 <= result["trait_steps"] < rows.sum() - 1:
            acts = np.concatenate([rec.activations[path][rows] for path, _ in layers], axis=1)
            ev = Evidence(acts=acts, trait=rec.trait[rows])
            d = score_units("contrast", ev, np.random.default_rng(seed.seed))
            d[list(prune.units)] = -np.inf
            units = top_units(d, prune.fraction)
            again = unit_prune("relocated", prune.layer, prune.fraction, units, layers)
            apply_masks(model.policy, unit_masks(model.policy, again))
            metrics = seed.evaluate(model)
            result.update(
                new_units=list(again.units),
                new_units_max_d=float(d[units].max()),
                trait_rate_second_prune=metrics.trait_rate,
                task_return_second_prune=metrics.task_return,
            )
        return result

    return cached_json(seed.dir / strategy / "relocation.json", compute)


def latent_probes(seed: SeedRun) -> dict[str, dict[str, float]]:
    """How well each model's hidden layers still predict the pretrained model's trait decision
    (and the opportunity) on the recorded states (``marlmod.latent_probe``): the pretrained model
    and the control (in ``record/``) and every retrained cell (beside its cell), each cached on
    its own so a cell added later computes only its probe."""
    ev = seed.evidence(seed.pretrained_model())
    layers = list(seed.scenario.network.layers)
    models = {
        "pretrain": (seed.dir / "record" / "latent_probe_pretrain.json", seed.pretrained_model),
        "control": (seed.dir / "record" / "latent_probe_control.json", seed.control_model),
    }
    for cell in seed.scenario.cells:
        models[cell.name] = (
            seed.dir / cell.name / "latent_probe.json",
            lambda name=cell.name: seed.retrained_model(name),
        )
    return {
        name: cached_json(
            path,
            lambda load=load: latent_trait(
                load().policy, layers, ev.obs, ev.trait, ev.opportunity, seed.seed
            ),
        )
        for name, (path, load) in models.items()
    }


def weight_space(seed: SeedRun, cell: str) -> dict:
    """L2 distance from the pretrained weights and the straight path to the retrained ones."""

    def compute() -> dict:
        return straight_path(seed.pretrained_model(), seed.retrained_model(cell), seed.evaluate)

    return cached_json(seed.dir / cell / "weight_space.json", compute)
