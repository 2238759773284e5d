"""The ``lean`` and ``compiled`` training backends: SB3's PPO with its loops written out.

Once the environment is batched (its twin, ``marlmod.vec_env.BatchedTwin``), SB3's own
bookkeeping is most of training time for marlmod's small MLPs (profiled with pyinstrument, see
``benchmarks/throughput.py``): ``torch.distributions`` validating its arguments on every
construction and ``log_prob``,
``RolloutBuffer.add`` copying every array twice, ``RolloutBuffer.get`` converting each minibatch
from NumPy again in every epoch, a Python loop over every env slot after each step, and the
policy's module tree called for a few small matrix products. ``LeanPPO`` overrides
``collect_rollouts`` and ``train`` only, doing the same floating-point operations in the same
order and drawing the same random numbers (``torch.multinomial`` for actions,
``np.random.permutation`` per epoch), so for the same seed it learns **bitwise the same
weights** as ``stable_baselines3.PPO`` (``tests/test_lean_ppo.py``). The policy is read through
``marlmod.functional_policy`` and the loss is ``marlmod.ppo_loss``, the same two functions the
compiled step (``use_compiled_update``, ``marlmod.compiled_update``) uses. Everything else —
saving, loading, callbacks, the optimiser and its step hooks, logging keys — is SB3's.

It covers what marlmod trains: an MLP policy with a discrete action space, no gSDE, no value
clipping, SB3's ``RolloutBuffer`` or a ``BufferWithExtras`` (gradient routing's labels).
Anything else is refused when the model is built (``unsupported_by_lean`` names why), never
trained on a quiet fallback: ``ppo.backend: sb3`` trains it on SB3's own loops.
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

from marlmod.compiled_update import (
    AdamTensors,
    as_optimizer_step,
    check_adam,
    compiled_ppo_step,
    cpp_compiler,
)
from marlmod.errors import MarlmodError
from marlmod.functional_policy import (
    PolicyOutputs,
    architecture,
    forward_of,
    functional,
    parameters_in_order,
    sample_actions,
)
from marlmod.ppo_loss import STATS, Minibatch, ppo_loss


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


def unsupported_by_lean(model: PPO) -> str | None:
    """Why ``LeanPPO``'s loops would not reproduce SB3 for this model, or None if they do."""
    policy, buffer = model.policy, model.rollout_buffer
    if type(policy) is not ActorCriticPolicy:
        return f"its policy is a {type(policy).__name__}, not SB3's ActorCriticPolicy"
    if architecture(policy) is None:
        return "its policy is not a plain Linear + ReLU/Tanh MLP on flat observations"
    if not isinstance(model.action_space, spaces.Discrete):
        return f"its action space is {type(model.action_space).__name__}, not Discrete"
    if not isinstance(model.observation_space, spaces.Box):
        return f"its observation space is {type(model.observation_space).__name__}, not a Box"
    if not (type(buffer) is RolloutBuffer or isinstance(buffer, BufferWithExtras)):
        return (
            f"its rollout buffer {type(buffer).__name__} is neither SB3's RolloutBuffer nor a "
            "BufferWithExtras, and the lean loops bypass its add/get"
        )
    if model.use_sde:
        return "it uses gSDE"
    if model.clip_range_vf is not None:
        return "it clips the value function (clip_range_vf)"
    if not policy.share_features_extractor:
        return "its policy and value nets have separate feature extractors"
    if is_image_space(model.observation_space) and policy.normalize_images:
        return "it normalises image observations"
    return None


class LeanPPO(PPO):
    """``stable_baselines3.PPO`` with the rollout and update loops written out (same numbers)."""

    def _setup_model(self) -> None:
        super()._setup_model()
        reason = unsupported_by_lean(self)
        if reason is not None:
            raise MarlmodError(
                f"ppo.backend lean cannot train this model: {reason}; ppo.backend: sb3 trains "
                "it on SB3's own loops"
            )
        self._compiled = False
        self._configure_optimiser()

    def _excluded_save_params(self) -> list[str]:
        """The compiled step is the scenario's choice (``ppo.backend``), not the checkpoint's."""
        return [*super()._excluded_save_params(), "_compiled"]

    def set_parameters(self, *args: Any, **kwargs: Any) -> None:
        """Loading restores the optimiser's saved settings; choose its kernels again after it."""
        super().set_parameters(*args, **kwargs)
        self._configure_optimiser()

    def use_compiled_update(self) -> None:
        """Train with ``marlmod.compiled_update`` from now on (``ppo.backend: compiled``):
        faster, not bitwise SB3. Refuses, naming why, what the compiled step does not do."""
        if isinstance(self.rollout_buffer, BufferWithExtras):
            raise MarlmodError(
                "ppo.backend compiled cannot train with gradient routing: its forward hook must "
                "see the forward pass, which the compiled step bypasses; use ppo.backend: lean"
            )
        if self.target_kl is not None:
            raise MarlmodError(
                "ppo.backend compiled steps before it sees the KL; it needs target_kl=None"
            )
        if not self.normalize_advantage:
            raise MarlmodError(
                "ppo.backend compiled normalises advantages per minibatch, as SB3 does by "
                "default; it needs normalize_advantage=True"
            )
        check_adam(self.policy.optimizer)
        if cpp_compiler() is None:
            raise MarlmodError(
                "ppo.backend compiled needs a C++ compiler for torch.compile (none found; set "
                "CXX or install g++), or set ppo.backend: lean"
            )
        self._compiled = True

    def _configure_optimiser(self) -> None:
        """Adam's multi-tensor path: the same arithmetic per element (bitwise the same weights,
        ``tests/test_lean_ppo.py``) with one kernel per operation instead of one per tensor."""
        for group in self.policy.optimizer.param_groups:
            group["foreach"] = True

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        assert self._last_obs is not None, "no previous observation"
        self.policy.set_training_mode(False)
        rollout_buffer.reset()
        callback.on_rollout_start()
        buffer = rollout_buffer
        forward = forward_of(self.policy)
        for n_steps in range(n_rollout_steps):
            with torch.no_grad():
                values, log_probs = forward(torch.as_tensor(self._last_obs))
                sampled, sampled_log_probs = sample_actions(log_probs)
            actions = sampled.numpy()
            new_obs, rewards, dones, infos = env.step(actions)
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            self._bootstrap_truncated(forward, rewards, dones, infos)
            buffer.observations[n_steps] = self._last_obs
            buffer.actions[n_steps] = actions.reshape(-1, 1)
            buffer.rewards[n_steps] = rewards
            buffer.episode_starts[n_steps] = self._last_episode_starts
            buffer.values[n_steps] = values.numpy()
            buffer.log_probs[n_steps] = sampled_log_probs.numpy()
            if isinstance(buffer, BufferWithExtras):
                buffer.store_extras(n_steps)
            self._last_obs = new_obs
            self._last_episode_starts = dones
        buffer.pos, buffer.full = n_rollout_steps, n_rollout_steps == buffer.buffer_size
        with torch.no_grad():
            values = forward(torch.as_tensor(new_obs)).values
        buffer.compute_returns_and_advantage(last_values=values, dones=dones)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _bootstrap_truncated(
        self,
        forward: Callable[[torch.Tensor], PolicyOutputs],
        rewards: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Add γ·V(terminal obs) to the reward of slots cut off by a time limit (SB3 #633)."""
        for idx in np.flatnonzero(dones):
            info = infos[idx]
            terminal = info.get("terminal_observation")
            if terminal is not None and info.get("TimeLimit.truncated", False):
                with torch.no_grad():  # one row at a time: a batched matmul rounds differently
                    terminal_value = forward(torch.as_tensor(terminal).reshape(1, -1)).values
                rewards[idx] += self.gamma * terminal_value

    def train(self) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)
        data = _flat_rollout(self.rollout_buffer)
        extras = self.rollout_buffer if isinstance(self.rollout_buffer, BufferWithExtras) else None
        if extras is not None:
            extras.begin_minibatches()
        compiled_step = self._compiled_step(clip_range) if self._compiled else None
        forward = forward_of(self.policy)
        size = len(data.advantages)
        stats: list[torch.Tensor] = []
        approx_kl_divs: list[np.ndarray] = []
        for _ in range(self.n_epochs):
            approx_kl_divs = []
            order = torch.from_numpy(np.random.permutation(size))
            shuffled = Minibatch(*(t[order] for t in data))  # minibatches are then views
            stop = False
            for start in range(0, size, self.batch_size):
                batch = Minibatch(*(t[start : start + self.batch_size] for t in shuffled))
                if extras is not None:
                    extras.select_minibatch(order[start : start + self.batch_size].numpy())
                if compiled_step is not None:
                    loss, batch_stats = compiled_step(batch)
                else:
                    loss, batch_stats = ppo_loss(
                        forward(batch.observations),
                        batch,
                        clip_range,
                        self.ent_coef,
                        self.vf_coef,
                        self.normalize_advantage,
                    )
                stats.append(batch_stats)
                approx_kl_divs.append(batch_stats[STATS.index("approx_kl")].numpy())
                if compiled_step is not None:
                    continue
                if self.target_kl is not None and approx_kl_divs[-1] > 1.5 * self.target_kl:
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
        self._log_update(stats, approx_kl_divs, loss, clip_range)

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

    def _compiled_step(
        self, clip_range: float
    ) -> Callable[[Minibatch], tuple[torch.Tensor, torch.Tensor]]:
        """One minibatch step through ``marlmod.compiled_update``, for this update's settings."""
        if not functional(self.policy):
            raise MarlmodError(
                "ppo.backend compiled cannot train while a forward hook is on the policy (the "
                "compiled step bypasses it); use ppo.backend: lean"
            )
        optimizer = self.policy.optimizer
        adam = AdamTensors.of(optimizer, parameters_in_order(self.policy))
        settings = self._compiled_settings(clip_range)
        step = compiled_ppo_step()

        def minibatch_step(batch: Minibatch) -> tuple[torch.Tensor, torch.Tensor]:
            out: list[torch.Tensor] = []

            def update() -> None:
                try:
                    out.extend(step(adam, batch, **settings))
                except Exception as err:  # inductor's errors have no common base class
                    raise MarlmodError(
                        f"ppo.backend compiled: torch.compile failed ({type(err).__name__}: "
                        f"{err}); it needs a C++ compiler, or set ppo.backend: lean"
                    ) from err

            as_optimizer_step(optimizer, update)
            loss, stats = out
            return loss, stats

        return minibatch_step

    def _log_update(
        self,
        stats: list[torch.Tensor],
        approx_kl_divs: list[np.ndarray],
        loss: torch.Tensor,
        clip_range: float,
    ) -> None:
        """The same ``train/*`` records as SB3's PPO (TensorBoard reads them), averaged as SB3
        averages them: over Python floats, KL over float32 arrays."""
        buffer = self.rollout_buffer
        means = {
            name: float(np.mean(column))
            for name, column in zip(STATS, torch.stack(stats).T.tolist(), strict=True)
        }
        explained_var = explained_variance(buffer.values.flatten(), buffer.returns.flatten())
        self.logger.record("train/entropy_loss", means["entropy"])
        self.logger.record("train/policy_gradient_loss", means["pg"])
        self.logger.record("train/value_loss", means["value"])
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs))
        self.logger.record("train/clip_fraction", means["clip"])
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)


def _flat_rollout(buffer: RolloutBuffer) -> Minibatch:
    """The whole rollout as one flat batch, converted once per update instead of once per
    minibatch. Same layout as ``RolloutBuffer.get`` (env-major after ``swap_and_flatten``), so
    one permutation selects the same samples SB3 would.
    """

    def flat(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(buffer.swap_and_flatten(array))

    return Minibatch(
        observations=flat(buffer.observations),
        actions=flat(buffer.actions).flatten().long(),
        old_log_prob=flat(buffer.log_probs).flatten(),
        advantages=flat(buffer.advantages).flatten(),
        returns=flat(buffer.returns).flatten(),
    )
