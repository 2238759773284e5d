"""Scenario configs: a typed, frozen schema over YAML, validated at load.

A scenario names the game (an environment and its kwargs) and everything marlmod does with it:
the misbehaviour bonus, training budgets, the layer to prune, the strategies to compare and the
seeds. Environments never read YAML; only this module does. Unknown keys, wrong types and
out-of-range numbers fail at load with the key's path, so a typo never becomes a silent default.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from marlmod.errors import MarlmodError
from marlmod.locate import HIDDEN_LAYER_ONLY, STRATEGIES
from marlmod.prune import ACTION_HEAD

# Fields that choose *which* stages run or *how* they are executed, not what any stage computes.
EXECUTION_ONLY = {
    "workers": True,
    "tensorboard": True,
    "ppo": {"vectorised"},
    "prune": {"strategies", "released", "weights", "action_head", "relocate", "sweep"},
}

# Fields added after runs were made with their section: left out of the digest at default.
PRETRAIN_ADDED_LATER = {"route_by": "action"}

Backend = Literal["sb3", "lean", "compiled"]
# What a scenario trains with when it names no ``ppo.backend`` (see ``PPOConfig``).
DEFAULT_BACKEND: Backend = "lean"
# How each backend enters the digest. sb3 and lean train bitwise alike, so they hash as configs
# made before the choice existed; compiled as ``compile: true``, the key it was first set by.
BACKEND_IN_DIGEST: dict[str, dict[str, Any]] = {
    "sb3": {},
    "lean": {},
    "compiled": {"compile": True},
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class EnvConfig(_Frozen):
    id: str = Field(
        description="PettingZoo registry id (e.g. marlmod/gathering-v0) or "
        "'package.module:factory' (imports and runs that code)"
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Env constructor kwargs")
    bonus: float = Field(gt=0, description="Misbehaviour bonus during pretraining")
    trait: str = Field(description="Behaviour label (in infos['behaviour']) that is the trait")
    trait_role: str | None = Field(
        None,
        description="Only agents whose infos['role'] is this can show the trait: trait "
        "rates and locating use their steps alone (e.g. 'sender' in a deception game)",
    )


class NetworkConfig(_Frozen):
    hidden: tuple[int, ...] = Field((64, 64), min_length=1, description="Hidden widths")
    activation: Literal["tanh", "relu"] = Field(
        "relu", description="relu: zero means 'not firing', so pruning a unit silences it"
    )

    @field_validator("hidden")
    @classmethod
    def _positive(cls, widths: tuple[int, ...]) -> tuple[int, ...]:
        if any(w < 1 for w in widths):
            raise ValueError("every hidden width must be >= 1")
        return widths

    @property
    def policy_layers(self) -> tuple[str, ...]:
        """Module paths of the policy network's hidden activations in SB3's MlpPolicy."""
        return tuple(f"mlp_extractor.policy_net.{2 * i + 1}" for i in range(len(self.hidden)))


class PPOConfig(_Frozen):
    """SB3 PPO's settings and the training backend that runs them.

    ``backend`` is one explicit choice (``marlmod.train.BACKENDS``); a backend that cannot serve a
    model refuses when the model is built, naming why and which backend would (``lean`` refuses
    policies and buffers its loops do not reproduce — ``sb3`` trains them; ``compiled`` refuses
    gradient routing, whose hook must see the forward pass — ``lean`` trains it).

    Left unset, ``backend`` is resolved when the config is parsed: ``DEFAULT_BACKEND``, or
    ``lean`` with one warning when that is ``compiled`` and no C++ compiler is found
    (``default_backend``). An explicit ``compiled`` without a compiler is an error at model build
    instead. The parsed config — and so the digest and ``run.json`` — holds the *resolved*
    backend, because lean and compiled give different results: a run directory is pinned to the
    backend that trained it, and a later change of ``DEFAULT_BACKEND`` (or a machine without a
    compiler) yields another digest rather than mixing backends in one run. In the digest,
    ``sb3`` and ``lean`` (bitwise the same training) hash alike, as configs from before the
    choice existed, and ``compiled`` as the ``compile: true`` it replaced (``BACKEND_IN_DIGEST``),
    so existing run directories keep resuming.
    """

    n_copies: int = Field(8, ge=1, description="Env copies stepped together (× agents = slots)")
    vectorised: bool = Field(
        True,
        description="Train on the env's NumPy-batched twin (marlmod.fast) when it has one: the "
        "same trajectories as per-copy envs, several times faster; false forces per-copy envs",
    )
    n_steps: int = Field(128, ge=8)
    batch_size: int = Field(256, ge=8)
    n_epochs: int = Field(4, ge=1)
    learning_rate: float = Field(3e-4, gt=0)
    ent_coef: float = Field(0.01, ge=0)
    gamma: float = Field(0.99, gt=0, le=1)
    gae_lambda: float = Field(0.95, gt=0, le=1)
    clip_range: float = Field(0.2, gt=0)
    backend: Backend = Field(
        DEFAULT_BACKEND,
        description="Training backend: sb3 (stable_baselines3's PPO loops, the reference), lean "
        "(marlmod.lean_ppo: bitwise sb3's training, faster) or compiled (lean with each minibatch "
        "step compiled into one graph by torch.compile: faster still, not bitwise sb3's; needs a "
        "C++ compiler). Unset: DEFAULT_BACKEND",
    )

    @model_validator(mode="before")
    @classmethod
    def _resolve_backend(cls, data: Any) -> Any:
        if isinstance(data, dict) and "compile" in data:
            raise ValueError(
                "ppo.compile was replaced by ppo.backend (compile: true is backend: compiled, "
                "compile: false is backend: lean)"
            )
        if isinstance(data, dict) and "backend" not in data:
            return {**data, "backend": default_backend()}
        return data


def default_backend() -> Backend:
    """``DEFAULT_BACKEND``, except that a default of ``compiled`` falls back to ``lean`` where
    ``torch.compile`` finds no C++ compiler (one warning per process): a scenario that asked
    for nothing should train, not fail."""
    if DEFAULT_BACKEND != "compiled":
        return DEFAULT_BACKEND
    from marlmod import compiled_update

    if compiled_update.cpp_compiler() is not None:
        return "compiled"
    _warn_no_compiler()
    return "lean"


@functools.cache
def _warn_no_compiler() -> None:
    logging.getLogger("marlmod").warning(
        "marlmod: no C++ compiler found for torch.compile, so the default ppo.backend compiled "
        "falls back to lean (bitwise SB3, slower); install g++ or set ppo.backend"
    )


class EvalConfig(_Frozen):
    episodes: int = Field(16, ge=1, description="Episodes per evaluation (one per env copy)")
    deterministic: bool = Field(False, description="Greedy actions instead of sampling")


class PruneConfig(_Frozen):
    layer: str = Field(
        "mlp_extractor.policy_net.3",
        description="Hidden activation module path in the policy net (never a head: see "
        "action_head)",
    )
    fraction: float = Field(0.25, gt=0, le=1, description="Fraction of the layer's units pruned")
    strategies: tuple[str, ...] = Field(("contrast", "random"), min_length=1)
    released: tuple[str, ...] = Field(
        (), description="Strategies also retrained with masks released (can the module regrow?)"
    )
    weights: tuple[str, ...] = Field(
        (),
        description="Strategies also pruned weight by weight (cells <strategy>~weights): the "
        "individual weights with the highest per-weight score, as many as their unit prune zeroes",
    )
    action_head: tuple[str, ...] = Field(
        (),
        description="Strategies also run on the action head (cells <strategy>~action_head): they "
        "rank the action logits, whose rows of action_net are masked. Results mark these cells: "
        "masking the action itself is not finding a module",
    )
    relocate: tuple[str, ...] = Field(
        (),
        description="Strategies whose retrained model is re-located and pruned again "
        "(did the trait move to other units?)",
    )
    sweep: tuple[float, ...] = Field(
        (), description="Extra fractions scored right after pruning (trait vs capability curve)"
    )

    @field_validator("strategies", "released", "weights", "action_head", "relocate")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [n for n in names if n not in STRATEGIES]
        if unknown:
            raise ValueError(f"unknown strategy {unknown[0]!r}; valid: {', '.join(STRATEGIES)}")
        if len(set(names)) != len(names):
            raise ValueError("strategies must not repeat")
        return names

    @field_validator("sweep")
    @classmethod
    def _fractions(cls, fractions: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < f <= 1 for f in fractions):
            raise ValueError("sweep fractions must be in (0, 1]")
        return tuple(sorted(set(fractions)))

    @model_validator(mode="after")
    def _released_are_run(self) -> PruneConfig:
        for field_name in ("released", "weights", "action_head", "relocate"):
            missing = [n for n in getattr(self, field_name) if n not in self.strategies]
            if missing:
                raise ValueError(f"{field_name} strategy {missing[0]!r} is not in prune.strategies")
        wired = [n for n in self.action_head if n in HIDDEN_LAYER_ONLY]
        if wired:
            valid = [n for n in STRATEGIES if n not in HIDDEN_LAYER_ONLY]
            raise ValueError(
                f"action_head strategy {wired[0]!r} reads the wiring around a hidden layer, "
                f"which the action head lacks; valid: {', '.join(valid)}"
            )
        return self


class RetrainConfig(_Frozen):
    steps: int = Field(ge=1, description="Cooperative retraining agent-steps")
    eval_points: int = Field(4, ge=1, description="Evaluations along retraining (relapse curve)")


class PretrainConfig(_Frozen):
    """How the ``pretrain`` model is trained; the control is always plain."""

    method: Literal["plain", "routing", "modular"] = Field(
        "plain",
        description="plain: ordinary PPO; routing: gradient routing of trait steps into "
        "prune.layer's first routed_fraction units (marlmod.routing); modular: a wiring-length "
        "cost that makes the policy net clusterable (marlmod.modularity)",
    )
    routed_fraction: float = Field(
        0.25, gt=0, le=1, description="routing: share of prune.layer's units the trait goes to"
    )
    label_coverage: float = Field(
        1.0, gt=0, le=1, description="routing: share of trait steps labelled (others update all)"
    )
    route_non_trait: bool = Field(
        True, description="routing: keep non-trait steps' gradient out of the routed units"
    )
    route_by: Literal["action", "positive_advantage"] = Field(
        "action",
        description="routing: which labelled trait steps go to the routed units — every one "
        "(action), or only those the PPO update reinforces (advantage above its minibatch mean); "
        "the trait steps it discourages then train the other units, so the learned brake on the "
        "trait stays outside the module",
    )
    modularity: float = Field(
        0.1, ge=0, description="modular: λ of the proximal cost λ·|w|·wiring length (Adam units)"
    )


class Scenario(_Frozen):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    env: EnvConfig
    seeds: tuple[int, ...] = Field(min_length=1)
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
        layer, valid = self.prune.layer, ", ".join(self.network.policy_layers)
        if layer == ACTION_HEAD:
            raise ValueError(
                f"prune.layer {layer!r} is the action head: masking it masks the action itself, "
                "not a module, so it is pruned only in the cells that prune.action_head asks "
                f"for (results mark them); valid layers: {valid}"
            )
        if layer == "value_net" or layer.startswith("mlp_extractor.value_net"):
            raise ValueError(
                f"prune.layer {layer!r} is in the value network, which does not choose actions; "
                f"valid layers: {valid}"
            )
        if layer not in self.network.policy_layers:
            raise ValueError(
                f"prune.layer {layer!r} is not a hidden layer of the policy; valid: {valid}"
            )
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must not repeat")
        if "routed" in self.prune.strategies and self.pretrain.method != "routing":
            raise ValueError("prune strategy 'routed' needs pretrain.method: routing")
        return self

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
        data["ppo"].update(BACKEND_IN_DIGEST[data["ppo"].pop("backend")])
        canonical = json.dumps(data, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario YAML (safe loader), raising one clear MarlmodError."""
    path = Path(path)
    if not path.is_file():
        raise MarlmodError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise MarlmodError(f"{path}: not valid YAML: {err}") from err
    return parse_scenario(data, source=str(path))


def parse_scenario(data: Any, source: str = "config") -> Scenario:
    if not isinstance(data, dict):
        raise MarlmodError(f"{source}: expected a mapping of scenario fields at the top level")
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise MarlmodError(f"{source}: {describe_validation_error(err)}") from err


def describe_validation_error(err: ValidationError) -> str:
    """The first problem as 'at <key.path>: <message>' — one line a person can act on."""
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "<top level>"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "missing":
        message = "required key is missing"
    extra = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"at {where}: {message}{extra}"
