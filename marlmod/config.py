"""Scenario configs: a typed, frozen schema over YAML, validated at load.

A scenario names the game (an environment and its kwargs) and everything marlmod does with it:
the misbehaviour bonus, training budgets, the layer to prune, the strategies to compare and the
seeds. Environments never read YAML; ``marlmod.config_files`` reads the files (``extends``
chains, ``--set`` overrides), ``marlmod.config_sections`` defines each section, and this module
assembles them into a ``Scenario``, validates the resulting mapping and hashes it. Unknown keys,
wrong types and out-of-range numbers fail at load with the key's path, so a typo never becomes a
silent default.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_BACKEND",
    "Backend",
    "ConvLayerConfig",
    "DistillConfig",
    "EnvConfig",
    "EvalConfig",
    "NetworkConfig",
    "PPOConfig",
    "PretrainConfig",
    "PruneConfig",
    "RelearnConfig",
    "RetrainConfig",
    "Scenario",
    "default_backend",
    "load_scenario",
    "parse_scenario",
]

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from marlmod.cells import Cell, scenario_cells
from marlmod.config_files import apply_assignments, resolve_file
from marlmod.config_sections import (
    DEFAULT_BACKEND,
    Backend,
    ConvLayerConfig,
    DistillConfig,
    EnvConfig,
    EvalConfig,
    NetworkConfig,
    PPOConfig,
    PretrainConfig,
    PruneConfig,
    RelearnConfig,
    RetrainConfig,
    _Frozen,
    default_backend,
)
from marlmod.errors import MarlmodError
from marlmod.layers import ACTION_HEAD, ALL_HIDDEN, LayerKind, layer_kind
from marlmod.strategies.registry import STRATEGIES, Need

# Fields that choose *which* stages run or *how* they are executed, not what any stage computes.
EXECUTION_ONLY = {
    "workers": True,
    "tensorboard": True,
    "ppo": {"vectorised", "env_workers"},
    "prune": {
        "strategies",
        "released",
        "weights",
        "action_head",
        "distilled",
        "relocate",
        "sweep",
    },
    "retrain": {"early_stop"},
    # Attacks are stored per learning rate with their settings, which a resume checks
    # (marlmod.relearn), so adding or extending them leaves every other stage valid.
    "relearn": True,
}

# Fields added after runs were made with their section: left out of the digest at default.
PRETRAIN_ADDED_LATER = {"route_by": "action", "placebo": False}
NETWORK_ADDED_LATER = {"kind": "mlp", "conv": []}
EVALUATION_ADDED_LATER = {"held_out": {}}
RETRAIN_ADDED_LATER = {"spacing": "linear"}

# How each backend enters the digest. sb3 and lean train bitwise alike, so they hash as configs
# made before the choice existed; compiled as ``compile: true``, the key it was first set by.
BACKEND_IN_DIGEST: dict[str, dict[str, Any]] = {
    "sb3": {},
    "lean": {},
    "compiled": {"compile": True},
}


class Scenario(_Frozen):
    """A scenario: the game and everything marlmod does with it (one YAML file in configs/)."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+$", description="The run directory's name: OUT/<name>"
    )
    env: EnvConfig
    seeds: tuple[int, ...] = Field(
        min_length=1, description="Independent replications; statistics are over seeds"
    )
    network: NetworkConfig = NetworkConfig()
    ppo: PPOConfig = Field(default_factory=PPOConfig)  # built per scenario: default_backend()
    pretrain_steps: int = Field(ge=1, description="Agent-steps for pretraining and the control")
    retrain: RetrainConfig
    evaluation: EvalConfig = EvalConfig()
    record_episodes: int = Field(16, ge=1, description="Episodes of activations for locating")
    prune: PruneConfig = PruneConfig()
    pretrain: PretrainConfig = Field(
        PretrainConfig(), description="Pretraining method (plain, gradient routing, modular)"
    )
    distill: DistillConfig = Field(
        DistillConfig(), description="Distillation settings for prune.distilled cells"
    )
    relearn: RelearnConfig | None = Field(
        None, description="Relearning attacks on every cell and reference model (off if absent)"
    )
    clusterability_shuffles: int = Field(
        20, ge=0, description="Weight-shuffled copies per clusterability test (0 = skip it)"
    )
    workers: int = Field(
        1, ge=1, description="Local worker processes that run the seeds' tasks in parallel"
    )
    tensorboard: bool = Field(
        False, description="TensorBoard logs of every training run under <run>/tensorboard"
    )

    @model_validator(mode="after")
    def _layer_exists(self) -> Scenario:
        layer, valid = self.prune.layer, ", ".join((*self.network.layers, ALL_HIDDEN))
        if layer == ACTION_HEAD:
            raise ValueError(
                f"prune.layer {layer!r} is the action head: masking it masks the action itself, "
                "not a module, so it is pruned only in the cells that prune.action_head asks "
                f"for (results mark them); valid layers: {valid}"
            )
        if layer == "value_net" or layer.startswith(("mlp_extractor.value_net", "vf_features")):
            raise ValueError(
                f"prune.layer {layer!r} is in the value network, which does not choose actions; "
                f"valid layers: {valid}"
            )
        if layer not in (*self.network.layers, ALL_HIDDEN):
            raise ValueError(
                f"prune.layer {layer!r} is not a hidden layer of the policy; valid: {valid}"
            )
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must not repeat")
        self._check_network()
        kind = layer_kind(layer)
        # What a strategy may need that only some scenarios supply, and the setting that supplies
        # it (every scenario records trait and opportunity labels, trains a control, keeps the
        # policy's weights and gradients).
        unmet = {}
        if self.pretrain.method != "routing":
            unmet[Need.ROUTED_PRETRAINING] = "pretrain.method: routing"
        for name in self.prune.strategies:
            spec = STRATEGIES[name]
            if refusal := spec.refusal(kind):
                raise ValueError(f"prune strategy {name!r} {refusal}; prune.layer is {layer!r}")
            for need in (n for n in Need if n in spec.needs and n in unmet):
                raise ValueError(f"prune strategy {name!r} needs {need.phrase}: set {unmet[need]}")
        if self.pretrain.placebo and self.pretrain.method != "routing":
            raise ValueError(
                "pretrain.placebo is the placebo of routing: set pretrain.method: routing"
            )
        if self.relearn is not None and self.env.bonus == 0 and self.relearn.bonus is None:
            raise ValueError(
                "env.bonus is 0, so a relearning attack needs its own bonus: set relearn.bonus"
            )
        if self.relearn is not None:
            names = {cell.name for cell in self.cells}
            unknown = [
                c for c in (*self.relearn.cells, *self.relearn.release_masks) if c not in names
            ]
            if unknown:
                raise ValueError(
                    f"relearn names {unknown[0]!r}, not a cell of this scenario; "
                    f"valid: {', '.join(sorted(names))}"
                )
        return self

    def _check_network(self) -> None:
        """What a CNN policy or a prune across layers cannot be combined with, and why."""
        if self.network.kind == "cnn" and self.ppo.backend != "sb3":
            raise ValueError(
                f"network.kind cnn trains on ppo.backend sb3 only (ppo.backend {self.ppo.backend} "
                "runs MLP policies on flat observations): set ppo.backend: sb3"
            )
        if self.pretrain.method == "routing" and layer_kind(self.prune.layer) != LayerKind.HIDDEN:
            raise ValueError(
                "pretrain.method routing routes the trait into units of one hidden dense layer; "
                f"prune.layer {self.prune.layer!r} is not one"
            )
        if self.pretrain.method == "modular" and self.network.kind == "cnn":
            raise ValueError(
                "pretrain.method modular's wiring cost places the units of dense layers on a line "
                "(marlmod.modularity); a CNN policy's conv layers have no such places"
            )

    @property
    def control_is_pretrained(self) -> bool:
        """No bonus and plain pretraining: the control would train exactly the pretrained model."""
        return self.env.bonus == 0 and self.pretrain.method == "plain"

    @property
    def cells(self) -> list[Cell]:
        """Every results cell the scenario asks for, in the order they run."""
        return scenario_cells(self.prune, self.retrain)

    @property
    def digest(self) -> str:
        """Short hash of everything that changes a stage's result: a run directory made under
        another digest is never reused. Which strategies run, the sweep, worker count and the env
        stepping route (proven trajectory-identical by a test) leave finished stages valid, so
        adding a strategy to a finished run computes only the new cells."""
        data = self.model_dump(mode="json", exclude=EXECUTION_ONLY)
        if self.pretrain == PretrainConfig():  # keeps digests of runs made before the section
            del data["pretrain"]
        else:  # fields added later drop out at their defaults, so older runs still resume
            for name, default in PRETRAIN_ADDED_LATER.items():
                if data["pretrain"][name] == default:
                    del data["pretrain"][name]
        for section, added in (
            ("evaluation", EVALUATION_ADDED_LATER),
            ("retrain", RETRAIN_ADDED_LATER),
        ):
            for name, default in added.items():
                if data[section][name] == default:
                    del data[section][name]
        if self.distill == DistillConfig():
            del data["distill"]
        for name, default in NETWORK_ADDED_LATER.items():  # MLPs hash as before CNNs existed
            if data["network"][name] == default:
                del data["network"][name]
        data["ppo"].update(BACKEND_IN_DIGEST[data["ppo"].pop("backend")])
        canonical = json.dumps(data, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def load_scenario(path: str | Path, assignments: Sequence[str] = ()) -> Scenario:
    """Load and validate a scenario YAML: its ``extends`` chain merged, then each ``--set``
    assignment applied (``marlmod.config_files``), then the schema. Raises one MarlmodError."""
    data = apply_assignments(resolve_file(path), assignments)
    source = " ".join([str(path), *(f"--set {a}" for a in assignments)])
    return parse_scenario(data, source=source)


def parse_scenario(data: Any, source: str = "config") -> Scenario:
    if not isinstance(data, dict):
        raise MarlmodError(f"{source}: expected a mapping of scenario fields at the top level")
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise MarlmodError(f"{source}: {describe_validation_error(err)}") from err


def describe_validation_error(err: ValidationError) -> str:
    """Every problem, each as 'at <key.path>: <message>': one line when there is one, else a
    count and one indented line per problem, so a config with several typos is fixed in one go."""
    problems = validation_problems(err)
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems:" + "".join(f"\n  {p}" for p in problems)


def validation_problems(err: ValidationError) -> list[str]:
    """One 'at <key.path>: <message>' per error pydantic found, in its order."""
    problems = []
    for error in err.errors():
        where = ".".join(_key_name(part) for part in error["loc"]) or "<top level>"
        message = " ".join(error["msg"].split())
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        problems.append(f"at {where}: {message}")
    return problems


def _key_name(part: str | int) -> str:
    """A key as written, or quoted when it holds a line break or other unprintable character
    (YAML allows them in keys), so each problem stays on its own line."""
    text = str(part)
    return text if text.isprintable() else repr(text)
