"""The sections of a scenario: typed, frozen pydantic models, one per part of the pipeline.

``marlmod.config`` assembles them into a ``Scenario`` (and owns its digest and the loading);
each section here says what one stage reads — the game, the networks, PPO and its backend, the
evaluation, the prune, retraining, distillation, relearning attacks, the pretraining method —
with a description per field (the docs' configuration reference is generated from them).
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from marlmod.layers import ALL_HIDDEN, CONV_NET, POLICY_NET, LayerKind
from marlmod.strategies.registry import STRATEGIES, names_for, unknown_strategy

Backend = Literal["sb3", "lean", "compiled"]
# What a scenario trains with when it names no ``ppo.backend`` (see ``PPOConfig``).
DEFAULT_BACKEND: Backend = "lean"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class EnvConfig(_Frozen):
    """The game: which environment, its kwargs, the bonus that pays for the trait, the trait."""

    id: str = Field(
        description="PettingZoo registry id (e.g. marlmod/gathering-v0) or "
        "'package.module:factory' (imports and runs that code)"
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Env constructor kwargs")
    bonus: float = Field(
        ge=0,
        description="Misbehaviour bonus during pretraining. 0: the trait must emerge from the "
        "game itself (a game where it pays instrumentally); the control is then the pretrained "
        "model, trained once",
    )
    trait: str = Field(description="Behaviour label (in infos['behaviour']) that is the trait")
    trait_role: str | None = Field(
        None,
        description="Only agents whose infos['role'] is this can show the trait: trait "
        "rates and locating use their steps alone (e.g. 'sender' in a deception game)",
    )


class ConvLayerConfig(_Frozen):
    """One convolutional layer of a CNN policy (``marlmod.cnn``): its units are its channels."""

    channels: int = Field(ge=1, description="Output channels (the layer's units)")
    kernel: int = Field(3, ge=1, description="Square kernel size")
    stride: int = Field(1, ge=1, description="Step of the kernel across the view")
    padding: int = Field(0, ge=0, description="Zero padding on each side")


class NetworkConfig(_Frozen):
    """The policy (and, separately, the value) network: an MLP, or conv layers then an MLP.

    ``kind: cnn`` needs image-shaped observations ``(channels, height, width)`` — e.g. Gathering
    with ``observation: planes`` — and ``ppo.backend: sb3`` (the lean loops run MLPs on flat
    observations only). The policy and the value net each get their own conv stack, so pruning a
    policy channel never touches the critic, as for the MLP's hidden units.
    """

    kind: Literal["mlp", "cnn"] = Field(
        "mlp", description="mlp: hidden dense layers on flat inputs; cnn: conv layers, then them"
    )
    conv: tuple[ConvLayerConfig, ...] = Field(
        (), description="cnn: conv layers, input first (each: channels, kernel, stride, padding)"
    )
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

    @model_validator(mode="after")
    def _conv_matches_kind(self) -> NetworkConfig:
        if self.kind == "cnn" and not self.conv:
            raise ValueError("network.kind cnn needs at least one layer in network.conv")
        if self.kind == "mlp" and self.conv:
            raise ValueError("network.conv is for network.kind: cnn (this network is an mlp)")
        return self

    @property
    def policy_layers(self) -> tuple[str, ...]:
        """Module paths of the policy network's hidden dense activations (SB3's MlpPolicy)."""
        return tuple(f"{POLICY_NET}.{2 * i + 1}" for i in range(len(self.hidden)))

    @property
    def conv_layers(self) -> tuple[str, ...]:
        """Module paths of the policy's conv activations (``marlmod.cnn``; none for an mlp)."""
        return tuple(f"{CONV_NET}.{2 * i + 1}" for i in range(len(self.conv)))

    @property
    def layers(self) -> tuple[str, ...]:
        """Every layer a prune may name by path: conv layers (input first), then dense ones."""
        return self.conv_layers + self.policy_layers

    def units(self, layer: str) -> tuple[tuple[str, int], ...]:
        """The single layers behind ``layer`` with their unit counts: each hidden dense layer
        for ``all_hidden``, else the layer itself (a conv layer's units are its channels)."""
        if layer == ALL_HIDDEN:
            return tuple(zip(self.policy_layers, self.hidden, strict=True))
        widths = dict(zip(self.conv_layers, (c.channels for c in self.conv), strict=True))
        widths.update(zip(self.policy_layers, self.hidden, strict=True))
        if layer not in widths:
            raise ValueError(f"{layer!r} is not a layer of this network")
        return ((layer, widths[layer]),)


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
        description="Train on the NumPy-batched twin the env declares (metadata['marlmod']"
        "['batched']) when it has one: the same trajectories as per-copy envs, several times "
        "faster; false forces per-copy envs",
    )
    env_workers: int = Field(
        1,
        ge=1,
        description="Processes the env copies are stepped in when the env has no batched twin "
        "in use: the training process and env_workers - 1 forked workers "
        "(marlmod/worker_vec_env.py). The same trajectories, for games whose step is slow "
        "single-threaded code (Lab2D); 1 steps them all in the training process",
    )
    n_steps: int = Field(128, ge=8, description="Steps per env copy per rollout (SB3's n_steps)")
    batch_size: int = Field(256, ge=8, description="Minibatch size of each PPO update")
    n_epochs: int = Field(4, ge=1, description="Passes over each rollout")
    learning_rate: float = Field(3e-4, gt=0, description="Adam's learning rate")
    ent_coef: float = Field(0.01, ge=0, description="Entropy bonus coefficient")
    gamma: float = Field(0.99, gt=0, le=1, description="Discount factor")
    gae_lambda: float = Field(0.95, gt=0, le=1, description="GAE's λ")
    clip_range: float = Field(0.2, gt=0, description="PPO's clipping of the probability ratio")
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
    """How every model is measured: the same episodes for every model of a seed, cooperative."""

    episodes: int = Field(16, ge=1, description="Episodes per evaluation (one per env copy)")
    deterministic: bool = Field(False, description="Greedy actions instead of sampling")
    held_out: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Held-out situations: name -> env kwargs overriding env.kwargs (other grid "
        "size, resource density, more agents, ...). No training phase sees them; trait and task "
        "return are measured there at every evaluation point too",
    )

    @field_validator("held_out")
    @classmethod
    def _names(cls, variants: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        bad = [name for name in variants if not name.replace("_", "").isalnum()]
        if bad:
            raise ValueError(f"held-out name {bad[0]!r} must be letters, digits and _")
        return variants


class PruneConfig(_Frozen):
    """What is pruned: the layer, how much of it, by which strategies, in which variants."""

    layer: str = Field(
        "mlp_extractor.policy_net.3",
        description="Hidden activation module path in the policy net: a dense layer "
        "(mlp_extractor.policy_net.<2i+1>) or, in a CNN policy, a conv layer, whose units are its "
        "channels (features_extractor.cnn.<2i+1>); or all_hidden: the units of every hidden dense "
        "layer at once, ranked jointly. Never a head: see action_head",
    )
    fraction: float = Field(
        0.25,
        gt=0,
        le=1,
        description="Fraction of the layer's units pruned (all_hidden: of all hidden units)",
    )
    strategies: tuple[str, ...] = Field(
        ("contrast", "random"),
        min_length=1,
        description="Locating strategies compared, one cell each (marlmod/strategies/registry.py)",
    )
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
    distilled: tuple[str, ...] = Field(
        (),
        description="Strategies whose pruned policy is also distilled into a freshly initialised "
        "network before the same cooperative retraining (cells <strategy>~distilled; settings "
        "in the distill section): does a fresh network keep the removal better?",
    )
    relocate: tuple[str, ...] = Field(
        (),
        description="Strategies whose retrained model is re-located and pruned again "
        "(did the trait move to other units?)",
    )
    sweep: tuple[float, ...] = Field(
        (), description="Extra fractions scored right after pruning (trait vs capability curve)"
    )

    @field_validator("strategies", "released", "weights", "action_head", "distilled", "relocate")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [n for n in names if n not in STRATEGIES]
        if unknown:
            raise ValueError(unknown_strategy(unknown[0]))
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
        for field_name in ("released", "weights", "action_head", "distilled", "relocate"):
            missing = [n for n in getattr(self, field_name) if n not in self.strategies]
            if missing:
                raise ValueError(f"{field_name} strategy {missing[0]!r} is not in prune.strategies")
        for name in self.action_head:
            if refusal := STRATEGIES[name].refusal(LayerKind.ACTION_HEAD):
                valid = ", ".join(names_for(LayerKind.ACTION_HEAD))
                raise ValueError(f"action_head strategy {name!r} {refusal}; valid: {valid}")
        return self


class RetrainConfig(_Frozen):
    """Cooperative retraining (bonus 0) of every cell, measured along the way: the relapse curve."""

    steps: int = Field(ge=1, description="Cooperative retraining agent-steps")
    eval_points: int = Field(4, ge=1, description="Evaluations along retraining (relapse curve)")
    spacing: Literal["linear", "geometric"] = Field(
        "linear",
        description="linear: evaluations at equal intervals; geometric: at 1/2^k of the budget "
        "(dense early; with 4 points, budgets of 1/8, 1/4, 1/2 and all of it)",
    )
    early_stop: bool = Field(
        False,
        description="Also fine-tune the unpruned model with early stopping (cell "
        "none~early_stopped): stop when the trait rate on separate validation episodes stops "
        "falling, and keep the model from the point before",
    )


class DistillConfig(_Frozen):
    """How a pruned policy is distilled into a fresh network (cells ``<strategy>~distilled``)."""

    rollout_steps: int = Field(
        50_000, ge=1, description="Agent-steps of the pruned teacher's cooperative rollouts"
    )
    epochs: int = Field(10, ge=1, description="Passes over those states")
    batch_size: int = Field(256, ge=8, description="Minibatch size of the distillation")
    learning_rate: float = Field(1e-3, gt=0, description="Adam's learning rate for distillation")


class RelearnConfig(_Frozen):
    """The relearning attack: training with the bonus back on, counting how fast the trait
    returns. A removed trait relearns no faster than in a model that never had it."""

    steps: int = Field(ge=1, description="Agent-steps of each attack")
    eval_points: int = Field(6, ge=1, description="Evaluations along each attack")
    spacing: Literal["linear", "geometric"] = Field(
        "geometric",
        description="geometric: evaluations at 1/2^k of the budget, dense early where a "
        "suppressed trait comes back; linear: at equal intervals",
    )
    learning_rates: tuple[float, ...] = Field(
        min_length=1,
        description="Each attack runs at every rate; results report the worst case (fastest "
        "relearning) over them, as attack results swing with the learning rate",
    )
    bonus: float | None = Field(
        None, gt=0, description="Bonus during the attack (default env.bonus; lower = weaker)"
    )
    starts: tuple[Literal["retrained", "pruned"], ...] = Field(
        ("retrained", "pruned"),
        min_length=1,
        description="Attack each cell after cooperative retraining, and/or right after pruning",
    )
    cells: tuple[str, ...] = Field(
        (), description="Cells attacked (names as in cells.csv); default: every cell"
    )
    release_masks: tuple[str, ...] = Field(
        (),
        description="Cells also attacked with their masks released (pruned weights free to "
        "regrow), from every start",
    )

    @field_validator("learning_rates", "starts", "cells", "release_masks")
    @classmethod
    def _distinct(cls, values: tuple) -> tuple:
        if len(set(values)) != len(values):
            raise ValueError("values must not repeat")
        if any(isinstance(v, float) and v <= 0 for v in values):
            raise ValueError("learning rates must be > 0")
        return values


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
    placebo: bool = Field(
        False,
        description="routing: the placebo of this routing — as many *random* steps as would be "
        "labelled are routed instead of the trait steps, into a random unit set of the same "
        "size; a routing result counts only where it beats its placebo",
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
