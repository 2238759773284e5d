"""Gradient routing (Cloud et al. 2024): train the trait into a chosen set of units, then cut them.

Post-hoc locating has to *find* where a trait lives; gradient routing decides it in advance. During
pretraining, the PPO loss of every agent-step labelled with the trait may only update a
designated subset of one hidden layer's units (the first ``round(fraction × width)``); the loss of
other steps may be kept away from those units (``route_non_trait``). Pruning then removes exactly
the designated units (the ``routed`` locating strategy, ``marlmod.strategies.routed``).

How it rides inside SB3's PPO, through public extension points only:

- ``RouteLabels`` (a callback): SB3 calls ``on_step`` after ``env.step`` and *before*
  ``rollout_buffer.add``, so ``_on_step`` reads each slot's ``infos[slot]["behaviour"][trait]``
  and hands the buffer one route code per slot for the step about to be stored.
- ``RoutedRolloutBuffer`` (passed as PPO's ``rollout_buffer_class``): stores those codes beside the
  rollout and, whenever PPO draws a minibatch, exposes that minibatch's codes as ``batch_codes``.
  It is a ``marlmod.lean_ppo.BufferWithExtras``, so routed pretraining runs on ``LeanPPO``'s
  loops too, bitwise the same as on SB3's (``tests/test_routing.py``).
- A forward hook on the routed layer (registered by ``RouteLabels`` for the duration of ``learn``)
  rewrites each sample's output as ``h = m ⊙ h + (1 − m) ⊙ h.detach()``: the value is unchanged,
  so acting is unchanged, but gradient reaches the layer (and everything before it) only through
  the units the sample's mask ``m`` allows.

Codes: ``FREE`` (all units; unlabelled trait steps when ``label_coverage < 1``, or every non-trait
step when routing them is off), ``TRAIT`` (designated units only), ``OTHER`` (all but the
designated units). With ``route_by="positive_advantage"`` a labelled trait step keeps ``TRAIT``
only in minibatches where PPO *reinforces* it (advantage above the minibatch mean, the sign PPO's
advantage normalisation gives its gradient); where PPO discourages it, it becomes ``OTHER``.
Routing by the action alone sends the cost of bad zaps into the module too, so the module becomes
the whole zap circuit, brake included (the negative result in docs/studies/routing.md); routing
by the sign of the update keeps the brake outside. Nothing of this outlives ``learn``: the hook is
removed when training ends, and ``marlmod.train.load_model`` rebuilds a checkpoint with SB3's plain
``RolloutBuffer`` (even without that, a buffer whose codes nobody sets stores ``FREE`` and nothing
reads them).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import RolloutBufferSamples
from torch import nn

from marlmod.errors import MarlmodError
from marlmod.lean_ppo import BufferWithExtras
from marlmod.prune import hidden_layer
from marlmod.record import resolve_module

FREE, TRAIT, OTHER = 0, 1, 2
ROUTE_BY = ("action", "positive_advantage")


def designated_units(
    width: int, fraction: float, placebo_seed: int | None = None
) -> tuple[int, ...]:
    """The routed units of a layer of ``width``: the first ``round(fraction × width)`` (≥ 1), or
    for a placebo run as many units drawn at random (from ``placebo_seed``).

    Same rounding as ``marlmod.locate.top_units``, so a prune of the same fraction removes
    exactly these units.
    """
    if not 0 < fraction <= 1:
        raise MarlmodError(f"routed fraction must be in (0, 1], got {fraction}")
    count = max(1, int(round(fraction * width)))
    if placebo_seed is None:
        return tuple(range(count))
    chosen = np.random.default_rng([placebo_seed, width]).choice(width, count, replace=False)
    return tuple(sorted(int(u) for u in chosen))


def placebo_steps(trait: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """As many steps as showed the trait, chosen at random among all slots: the placebo routes
    the same amount of gradient into the units, carrying no trait in particular."""
    chosen = np.zeros(len(trait), dtype=bool)
    chosen[rng.choice(len(trait), int(np.sum(trait)), replace=False)] = True
    return chosen


def route_codes(trait: np.ndarray, labelled: np.ndarray, route_non_trait: bool) -> np.ndarray:
    """One route code per slot from its trait flag and whether that trait step is labelled."""
    trait = np.asarray(trait, dtype=bool)
    codes = np.full(trait.shape, OTHER if route_non_trait else FREE, dtype=np.int8)
    codes[trait] = FREE
    codes[trait & np.asarray(labelled, dtype=bool)] = TRAIT
    return codes


def discouraged_to_other(codes: np.ndarray, advantages: np.ndarray) -> np.ndarray:
    """Trait steps whose update *lowers* the trait's probability go to the other units.

    PPO normalises advantages per minibatch, so a step is reinforced when its advantage is above
    the minibatch mean (a one-sample minibatch is not normalised: its sign decides).
    """
    centre = advantages.mean() if len(advantages) > 1 else 0.0
    out = codes.copy()
    out[(codes == TRAIT) & (advantages <= centre)] = OTHER
    return out


def unit_masks_for(codes: torch.Tensor, width: int, units: Sequence[int]) -> torch.Tensor:
    """``[batch, width]`` 0/1 masks: which units each sample's gradient may flow through."""
    designated = torch.zeros(width, dtype=torch.bool)
    designated[list(units)] = True
    masks = torch.ones(len(codes), width, dtype=torch.bool)
    masks[codes == TRAIT] = designated
    masks[codes == OTHER] = ~designated
    return masks


def route_gradient(h: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``m ⊙ h + (1 − m) ⊙ h.detach()``: same values, gradient only through ``m``'s units."""
    return torch.where(masks.to(h.device), h, h.detach())


class RoutedRolloutBuffer(BufferWithExtras):
    """SB3's ``RolloutBuffer`` plus one route code per stored agent-step.

    ``pending`` is set by ``RouteLabels`` before each ``add``; when nobody sets it (a loaded model
    trained without routing) every step is ``FREE``. ``batch_codes`` holds the codes of the
    minibatch PPO drew last, read by the routing hook during that minibatch's forward pass.
    SB3's loops reach the extras hooks through ``add``/``get``/``_get_samples``; ``LeanPPO``
    calls them directly.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.pending: np.ndarray | None = None
        self.batch_codes: torch.Tensor | None = None
        self.reinforced_only = False  # set by RouteLabels for route_by="positive_advantage"
        super().__init__(*args, **kwargs)

    def reset(self) -> None:
        self.codes = np.zeros((self.buffer_size, self.n_envs), dtype=np.int8)
        self.batch_codes = None  # collection is under no_grad: nothing to route
        super().reset()

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.store_extras(self.pos)
        super().add(*args, **kwargs)

    def get(self, batch_size: int | None = None) -> Generator[RolloutBufferSamples, None, None]:
        if not self.generator_ready:  # before SB3 flattens its own arrays in place
            self.begin_minibatches()
        yield from super().get(batch_size)
        self.end_minibatches()

    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> RolloutBufferSamples:
        self.select_minibatch(batch_inds)
        return super()._get_samples(batch_inds, env)

    def store_extras(self, pos: int) -> None:
        if self.pending is not None:
            self.codes[pos] = self.pending
            self.pending = None

    def begin_minibatches(self) -> None:
        """Flatten codes and advantages like SB3 flattens its arrays (env-major)."""
        self.flat_codes = self.swap_and_flatten(self.codes).reshape(-1)
        self.flat_advantages = self.swap_and_flatten(self.advantages).reshape(-1)

    def select_minibatch(self, batch_inds: np.ndarray) -> None:
        codes = self.flat_codes[batch_inds]
        if self.reinforced_only:
            codes = discouraged_to_other(codes, self.flat_advantages[batch_inds])
        self.batch_codes = torch.as_tensor(codes)

    def end_minibatches(self) -> None:
        self.batch_codes = None


class RouteLabels(BaseCallback):
    """Route the PPO gradient of trait-labelled steps into ``units`` of ``layer``.

    ``label_coverage`` is the chance that a trait step is labelled (unlabelled ones update every
    unit, as if the labeller missed them); draws use ``seed``, so a run is reproducible.
    ``placebo`` routes as many random steps instead, into a random unit set of the same size:
    the control for "routing put the trait there" (a routing result counts only where it beats
    its placebo).
    """

    def __init__(
        self,
        trait: str,
        layer: str,
        fraction: float,
        label_coverage: float = 1.0,
        route_non_trait: bool = True,
        seed: int = 0,
        route_by: str = "action",
        placebo: bool = False,
    ) -> None:
        super().__init__()
        if not 0 < label_coverage <= 1:
            raise MarlmodError(f"label_coverage must be in (0, 1], got {label_coverage}")
        self.trait, self.layer, self.fraction = trait, layer, fraction
        self.label_coverage, self.route_non_trait = label_coverage, route_non_trait
        if route_by not in ROUTE_BY:
            raise MarlmodError(f"unknown route_by {route_by!r}; valid: {', '.join(ROUTE_BY)}")
        self.route_by = route_by
        self.placebo_seed = seed if placebo else None
        self.rng = np.random.default_rng(seed)
        self.units: tuple[int, ...] = ()
        self.counts = np.zeros(3, dtype=np.int64)  # steps stored per code: a check on labelling
        self._handle: torch.utils.hooks.RemovableHandle | None = None

    def _on_training_start(self) -> None:
        buffer = self.model.rollout_buffer
        if not isinstance(buffer, RoutedRolloutBuffer):
            raise MarlmodError(
                "RouteLabels needs PPO(rollout_buffer_class=RoutedRolloutBuffer); "
                f"this model uses {type(buffer).__name__}"
            )
        buffer.reinforced_only = self.route_by == "positive_advantage"
        policy = self.model.policy
        producer = resolve_module(policy, hidden_layer(policy, self.layer).producer)
        width = producer.out_features
        self.units = designated_units(width, self.fraction, self.placebo_seed)

        def hook(_: nn.Module, __: Any, h: torch.Tensor) -> torch.Tensor | None:
            codes = buffer.batch_codes
            if codes is None or not torch.is_grad_enabled() or len(codes) != len(h):
                return None
            return route_gradient(h, unit_masks_for(codes, width, self.units))

        self._handle = resolve_module(policy, self.layer).register_forward_hook(hook)

    def _on_step(self) -> bool:
        infos = self.locals["infos"]
        trait = np.array([bool(i.get("behaviour", {}).get(self.trait, False)) for i in infos])
        if self.placebo_seed is not None:
            trait = placebo_steps(trait, self.rng)
        labelled = self.rng.random(len(trait)) < self.label_coverage
        codes = route_codes(trait, labelled, self.route_non_trait)
        self.model.rollout_buffer.pending = codes
        self.counts += np.bincount(codes, minlength=3)
        return True

    def _on_training_end(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self.model.rollout_buffer.batch_codes = None
