"""A leaner PPO loop that computes exactly what SB3's PPO computes, with less Python per step.

Once the environment is batched (``marlmod.fast``), SB3's own bookkeeping is most of training
time for marlmod's small MLPs (profiled with pyinstrument, see ``benchmarks/throughput.py``):
``torch.distributions`` validating its arguments on every construction and ``log_prob``,
``RolloutBuffer.add`` copying every array twice, ``RolloutBuffer.get`` converting each minibatch
from NumPy again in every epoch, and a Python loop over every env slot after each step.
``LeanPPO`` overrides ``collect_rollouts`` and ``train`` only, doing the same floating-point
operations in the same order and drawing the same random numbers (``torch.multinomial`` for
actions, ``np.random.permutation`` per epoch), so for the same seed it learns **bitwise the same
weights** as ``stable_baselines3.PPO`` (``tests/test_lean_ppo.py``). Everything else — saving,
loading, callbacks, the optimiser and its step hooks, logging keys — is SB3's.

It covers what marlmod trains: ``MlpPolicy`` with a discrete action space, no gSDE, no value
clipping, SB3's ``RolloutBuffer`` or a ``BufferWithExtras`` (gradient routing's labels);
``lean_supported`` says when, and ``LeanPPO`` runs SB3's own loops otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.utils import explained_variance
from stable_baselines3.common.vec_env import VecEnv
from torch.distributions import Categorical
from torch.nn import functional as F

from marlmod.compiled_update import (
    AdamTensors,
    Minibatch,
    as_optimizer_step,
    check_adam,
    compiled_ppo_step,
    cpp_compiler,
)
from marlmod.errors import MarlmodError
from marlmod.functional_policy import (
    architecture,
    functional,
    parameters_in_order,
    policy_outputs,
    sample_actions,
)


class BufferWithExtras(RolloutBuffer):
    """A rollout buffer that stores something per agent-step beside SB3's arrays.

    The lean loops write SB3's arrays directly and draw minibatches themselves, bypassing
    ``add`` and ``get``; they call these hooks instead, at the points where SB3's loops would
    call ``add``, start ``get`` and call ``_get_samples``. A subclass's own ``add``/``get``
    overrides should call the same hooks, so both loops see the same extras.
    """

    def store_extras(self, pos: int) -> None:
        """The step about to be stored at row ``pos`` (after the callback's ``on_step``)."""
        raise NotImplementedError

    def begin_minibatches(self) -> None:
        """The rollout is complete (returns and advantages computed); minibatches follow."""
        raise NotImplementedError

    def select_minibatch(self, batch_inds: np.ndarray) -> None:
        """PPO is about to train on these flat (env-major) sample indices."""
        raise NotImplementedError

    def end_minibatches(self) -> None:
        """The update is over."""
        raise NotImplementedError


def lean_supported(model: PPO) -> bool:
    """Whether ``LeanPPO`` reproduces SB3 exactly for this model's settings."""
    policy = model.policy
    return (
        type(policy) is ActorCriticPolicy
        and isinstance(model.action_space, spaces.Discrete)
        and isinstance(model.observation_space, spaces.Box)
        and (
            type(model.rollout_buffer) is RolloutBuffer
            or isinstance(model.rollout_buffer, BufferWithExtras)
        )
        and not model.use_sde
        and model.clip_range_vf is None
        and policy.share_features_extractor
        and not (is_image_space(model.observation_space) and policy.normalize_images)
    )


class LeanPPO(PPO):
    """``stable_baselines3.PPO`` with the rollout and update loops written out (same numbers)."""

    def _setup_model(self) -> None:
        super()._setup_model()
        self._lean = lean_supported(self)
        self._compile = False
        self._configure_optimiser()

    def _excluded_save_params(self) -> list[str]:
        """The compiled update is the scenario's choice (``ppo.compile``), not the checkpoint's."""
        return [*super()._excluded_save_params(), "_compile"]

    def set_parameters(self, *args: Any, **kwargs: Any) -> None:
        """Loading restores the optimiser's saved settings; choose its kernels again after it."""
        super().set_parameters(*args, **kwargs)
        self._configure_optimiser()

    def use_compiled_update(self) -> None:
        """Train with ``marlmod.compiled_update`` from now on: faster, not bitwise SB3."""
        if not self._lean or architecture(self.policy) is None:
            raise MarlmodError(
                "ppo.compile supports marlmod's MLP policies on LeanPPO's loops only"
            )
        if self.target_kl is not None:
            raise MarlmodError("ppo.compile steps before it sees the KL; it needs target_kl=None")
        if not self.normalize_advantage:
            raise MarlmodError(
                "ppo.compile normalises advantages per minibatch, as SB3 does by "
                "default; it needs normalize_advantage=True"
            )
        check_adam(self.policy.optimizer)
        if cpp_compiler() is None:
            raise MarlmodError(
                "ppo.compile needs a C++ compiler for torch.compile (none found; set CXX or "
                "install g++), or set ppo.compile: false"
            )
        self._compile = True
        self._configure_optimiser()

    def _configure_optimiser(self) -> None:
        """Adam's multi-tensor path: the same arithmetic per element (bitwise the same weights,
        ``tests/test_lean_ppo.py``) with one kernel per operation instead of one per tensor."""
        if self._lean:
            for group in self.policy.optimizer.param_groups:
                group["foreach"] = True

    def _evaluate(self, obs: torch.Tensor) -> tuple[torch.Tensor, Categorical]:
        """Values and the action distribution: the operations of ``ActorCriticPolicy.forward``
        and ``evaluate_actions``, without validating the distribution's arguments each call."""
        policy = self.policy
        features = policy.features_extractor(obs.float())
        latent_pi = policy.mlp_extractor.forward_actor(features)
        latent_vf = policy.mlp_extractor.forward_critic(features)
        distribution = Categorical(logits=policy.action_net(latent_pi), validate_args=False)
        return policy.value_net(latent_vf), distribution

    def _act_function(self) -> Callable[[torch.Tensor], tuple[torch.Tensor, ...]]:
        """Values, sampled actions and their log-probabilities for a batch of observations:
        through ``marlmod.functional_policy`` (the same operations without module calls or a
        distribution object) unless a hook must see the forward pass."""
        policy = self.policy
        arch = architecture(policy)
        if arch is None or not functional(policy):

            def act(obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
                values, distribution = self._evaluate(obs)
                sampled = distribution.sample()
                return values, sampled, distribution.log_prob(sampled)

            return act
        params = parameters_in_order(policy)

        def act_functionally(obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
            values, log_probs = policy_outputs(params, obs, arch)
            return values, *sample_actions(log_probs)

        return act_functionally

    def _value(self, obs: torch.Tensor) -> torch.Tensor:
        """``ActorCriticPolicy.predict_values`` without its NumPy/preprocessing round trip."""
        policy = self.policy
        features = policy.features_extractor(obs.float())
        return policy.value_net(policy.mlp_extractor.forward_critic(features))

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        if not self._lean:
            return super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps)
        assert self._last_obs is not None, "no previous observation"
        self.policy.set_training_mode(False)
        rollout_buffer.reset()
        callback.on_rollout_start()
        buffer = rollout_buffer
        act = self._act_function()
        for n_steps in range(n_rollout_steps):
            with torch.no_grad():
                values, sampled, log_probs = act(torch.as_tensor(self._last_obs))
            actions = sampled.numpy()
            new_obs, rewards, dones, infos = env.step(actions)
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            self._bootstrap_truncated(rewards, dones, infos)
            buffer.observations[n_steps] = self._last_obs
            buffer.actions[n_steps] = actions.reshape(-1, 1)
            buffer.rewards[n_steps] = rewards
            buffer.episode_starts[n_steps] = self._last_episode_starts
            buffer.values[n_steps] = values.numpy().ravel()
            buffer.log_probs[n_steps] = log_probs.numpy()
            if isinstance(buffer, BufferWithExtras):
                buffer.store_extras(n_steps)
            self._last_obs = new_obs
            self._last_episode_starts = dones
        buffer.pos, buffer.full = n_rollout_steps, n_rollout_steps == buffer.buffer_size
        with torch.no_grad():
            values = self._value(torch.as_tensor(new_obs))
        buffer.compute_returns_and_advantage(last_values=values, dones=dones)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _bootstrap_truncated(
        self, rewards: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]]
    ) -> None:
        """Add γ·V(terminal obs) to the reward of slots cut off by a time limit (SB3 #633)."""
        for idx in np.flatnonzero(dones):
            info = infos[idx]
            terminal = info.get("terminal_observation")
            if terminal is not None and info.get("TimeLimit.truncated", False):
                with torch.no_grad():  # one row at a time: a batched matmul rounds differently
                    terminal_value = self._value(torch.as_tensor(terminal).reshape(1, -1))[0]
                rewards[idx] += self.gamma * terminal_value

    def train(self) -> None:
        if not self._lean:
            return super().train()
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)
        data = _flat_rollout(self.rollout_buffer)
        extras = self.rollout_buffer if isinstance(self.rollout_buffer, BufferWithExtras) else None
        if extras is not None:
            extras.begin_minibatches()
        compiled = self._compile and extras is None and functional(self.policy)
        step = self._compiled_step(clip_range) if compiled else None
        size = len(data["advantages"])
        losses: dict[str, list[torch.Tensor]] = {"entropy": [], "pg": [], "value": [], "clip": []}
        approx_kl_divs: list[np.ndarray] = []
        for _ in range(self.n_epochs):
            approx_kl_divs = []
            order = torch.from_numpy(np.random.permutation(size))
            shuffled = {k: v[order] for k, v in data.items()}  # minibatches are then views
            stop = False
            for start in range(0, size, self.batch_size):
                batch = {k: v[start : start + self.batch_size] for k, v in shuffled.items()}
                if extras is not None:
                    extras.select_minibatch(order[start : start + self.batch_size].numpy())
                if step is not None:
                    loss, approx_kl = step(batch, losses)
                    approx_kl_divs.append(approx_kl)
                    continue
                loss, approx_kl = self._minibatch_loss(batch, clip_range, losses)
                approx_kl_divs.append(approx_kl)
                if self.target_kl is not None and approx_kl > 1.5 * self.target_kl:
                    stop = True
                    break
                self.policy.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(
                    self.policy.parameters(), self.max_grad_norm, foreach=True
                )
                self.policy.optimizer.step()
            self._n_updates += 1
            if stop:
                break
        if extras is not None:
            extras.end_minibatches()
        self._log_update(losses, approx_kl_divs, loss, clip_range)

    def _minibatch_loss(
        self,
        batch: dict[str, torch.Tensor],
        clip_range: float,
        losses: dict[str, list[torch.Tensor]],
    ) -> tuple[torch.Tensor, np.ndarray]:
        """PPO's clipped surrogate + value + entropy loss, as SB3 writes it."""
        values, distribution = self._evaluate(batch["observations"])
        log_prob = distribution.log_prob(batch["actions"])
        entropy = distribution.entropy()
        values = values.flatten()
        advantages = batch["advantages"]
        if self.normalize_advantage and len(advantages) > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        ratio = torch.exp(log_prob - batch["old_log_prob"])
        policy_loss_1 = advantages * ratio
        policy_loss_2 = advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
        policy_loss = -torch.min(policy_loss_1, policy_loss_2).mean()
        value_loss = F.mse_loss(batch["returns"], values)
        entropy_loss = -torch.mean(entropy)
        with torch.no_grad():
            losses["pg"].append(policy_loss.detach())
            losses["clip"].append(torch.mean((torch.abs(ratio - 1) > clip_range).float()))
            losses["value"].append(value_loss.detach())
            losses["entropy"].append(entropy_loss.detach())
            log_ratio = log_prob - batch["old_log_prob"]
            approx_kl = torch.mean((torch.exp(log_ratio) - 1) - log_ratio).numpy()
        loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
        return loss, approx_kl

    def _compiled_settings(self, clip_range: float) -> dict[str, Any]:
        """``compiled_update.ppo_step``'s arguments besides the weights, state and minibatch."""
        group = self.policy.optimizer.param_groups[0]
        return {
            "arch": architecture(self.policy),
            "lr": torch.tensor(group["lr"]),  # tensors: a schedule must not recompile
            "clip_range": torch.tensor(clip_range),
            "ent_coef": float(self.ent_coef),
            "vf_coef": float(self.vf_coef),
            "max_grad_norm": float(self.max_grad_norm),
            "betas": tuple(group["betas"]),
            "eps": float(group["eps"]),
        }

    def warm_up_compiled_update(self) -> None:
        """Compile the update now, on copies of the weights and a dummy full-size minibatch, so
        timing the first ``learn`` excludes compiling and the training trajectory is untouched."""
        params = [p.detach().clone() for p in parameters_in_order(self.policy)]
        zeros = [torch.zeros_like(p) for p in params]
        steps = [torch.tensor(0.0) for _ in params]  # as many as the real state: no recompile
        adam = AdamTensors(params, zeros, [z.clone() for z in zeros], steps)
        rows, dim = self.batch_size, self.observation_space.shape[0]
        batch = Minibatch(
            torch.zeros(rows, dim),
            torch.zeros(rows, dtype=torch.long),
            torch.zeros(rows),
            torch.linspace(-1, 1, rows),
            torch.zeros(rows),
        )
        compiled_ppo_step()(adam, batch, **self._compiled_settings(self.clip_range(1.0)))

    def _compiled_step(self, clip_range: float) -> Callable[..., tuple[torch.Tensor, np.ndarray]]:
        """One minibatch step through ``marlmod.compiled_update``, for this update's settings."""
        optimizer = self.policy.optimizer
        adam = AdamTensors.of(optimizer, parameters_in_order(self.policy))
        settings = self._compiled_settings(clip_range)
        step = compiled_ppo_step()

        def minibatch_step(
            batch: dict[str, torch.Tensor], losses: dict[str, list[torch.Tensor]]
        ) -> tuple[torch.Tensor, np.ndarray]:
            out: list[torch.Tensor] = []

            def update() -> None:
                try:
                    out.extend(step(adam, Minibatch(**batch), **settings))
                except Exception as err:  # inductor's errors have no common base class
                    raise MarlmodError(
                        f"ppo.compile: torch.compile failed ({type(err).__name__}: {err}); it "
                        "needs a C++ compiler, or set ppo.compile: false"
                    ) from err

            as_optimizer_step(optimizer, update)
            loss, stats = out
            for key, value in zip(("pg", "clip", "value", "entropy"), stats[:4], strict=True):
                losses[key].append(value)
            return loss, stats[4].numpy()

        return minibatch_step

    def _log_update(
        self,
        losses: dict[str, list[torch.Tensor]],
        approx_kl_divs: list[np.ndarray],
        loss: torch.Tensor,
        clip_range: float,
    ) -> None:
        """The same ``train/*`` records as SB3's PPO (TensorBoard reads them)."""
        buffer = self.rollout_buffer

        def mean(values: list[torch.Tensor]) -> float:
            return float(np.mean([v.item() for v in values]))

        explained_var = explained_variance(buffer.values.flatten(), buffer.returns.flatten())
        self.logger.record("train/entropy_loss", mean(losses["entropy"]))
        self.logger.record("train/policy_gradient_loss", mean(losses["pg"]))
        self.logger.record("train/value_loss", mean(losses["value"]))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs))
        self.logger.record("train/clip_fraction", mean(losses["clip"]))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)


def _flat_rollout(buffer: RolloutBuffer) -> dict[str, torch.Tensor]:
    """The rollout as flat tensors, converted once per update instead of once per minibatch.

    Same layout as ``RolloutBuffer.get`` (env-major after ``swap_and_flatten``), so one
    permutation selects the same samples SB3 would.
    """

    def flat(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(buffer.swap_and_flatten(array))

    return {
        "observations": flat(buffer.observations),
        "actions": flat(buffer.actions).flatten().long(),
        "old_log_prob": flat(buffer.log_probs).flatten(),
        "advantages": flat(buffer.advantages).flatten(),
        "returns": flat(buffer.returns).flatten(),
    }
