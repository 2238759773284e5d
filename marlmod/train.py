"""Training: SB3 PPO with one policy shared by every agent (parameter sharing).

``build_model`` makes a fresh PPO for a scenario on its training backend (``ppo.backend``, see
``BACKENDS``); ``learn`` trains it; checkpoints are written atomically and loaded with a clear
error when corrupt. Seeding goes through SB3's public ``seed=`` path, which works because
``SharedPolicyVecEnv`` (and each env's batched twin, e.g. ``envs/gathering_batched.py``)
implements ``VecEnv.seed`` (``marlmod.vec_env``).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import configure_logger
from stable_baselines3.common.vec_env import VecEnv
from threadpoolctl import threadpool_limits

from marlmod.atomic import write_with
from marlmod.cnn import ACTIVATIONS, PlanesCNN
from marlmod.config import Backend, NetworkConfig, PPOConfig, Scenario
from marlmod.divergence import guarded_learn
from marlmod.environments import EnvFactory
from marlmod.errors import MarlmodError
from marlmod.lean_ppo import LeanPPO
from marlmod.vec_env import SharedPolicyVecEnv, batched_venv
from marlmod.worker_vec_env import WorkerVecEnv

# Each training backend's model class. ``lean`` trains bitwise as ``sb3`` does
# (``tests/test_lean_ppo.py``); ``compiled`` is ``lean`` with the compiled minibatch step.
BACKENDS: dict[str, type[PPO]] = {"sb3": PPO, "lean": LeanPPO, "compiled": LeanPPO}


def on_backend(model: PPO, backend: Backend) -> PPO:
    """``model`` (of ``BACKENDS[backend]``) set up to train as ``backend`` does; a backend that
    cannot serve it has refused already or refuses here, naming why and what would."""
    if backend == "compiled":
        model.use_compiled_update()
    return model


def make_venv(scenario: Scenario, make_env: EnvFactory) -> VecEnv:
    """The env's batched twin when ``ppo.vectorised`` and the env declares one for its exact
    class (``metadata["marlmod"]["batched"]``), else per-copy envs: spread over this process and
    ``ppo.env_workers - 1`` worker processes when that is above 1, else all in this process.

    All give identical trajectories for the same seed (tests/test_fast_env.py,
    tests/test_worker_vec_env.py), so the choice changes speed, not results.
    """
    if scenario.ppo.vectorised:
        venv = batched_venv(make_env, scenario.ppo.n_copies)
        if venv is not None:
            return venv
    if scenario.ppo.env_workers > 1:
        return WorkerVecEnv([make_env] * scenario.ppo.n_copies, scenario.ppo.env_workers)
    return SharedPolicyVecEnv([make_env] * scenario.ppo.n_copies)


def build_model(
    scenario: Scenario,
    make_env: EnvFactory,
    seed: int,
    tensorboard_log: str | None = None,
    rollout_buffer_class: type[RolloutBuffer] | None = None,
) -> PPO:
    """A fresh PPO whose policy and value nets are separate MLPs, each behind its own conv stack
    in a CNN policy (so pruning the policy's units never touches the critic), trained by
    ``ppo.backend``. ``rollout_buffer_class``
    lets a pretraining method store extra per-step data (gradient routing's labels,
    ``marlmod.routing``)."""
    ppo = scenario.ppo
    model = BACKENDS[ppo.backend](
        "MlpPolicy",
        make_venv(scenario, make_env),
        **ppo_arguments(ppo),
        policy_kwargs=policy_kwargs(scenario.network),
        rollout_buffer_class=rollout_buffer_class,
        seed=seed,
        device="cpu",
        tensorboard_log=tensorboard_log,
        verbose=0,
    )
    return on_backend(model, ppo.backend)


def ppo_arguments(ppo: PPOConfig) -> dict[str, Any]:
    """PPO's hyperparameters from a scenario's ``ppo`` section, as SB3's constructor takes them:
    the one place they are translated (training and the benchmarks read it)."""
    return {
        "n_steps": ppo.n_steps,
        "batch_size": ppo.batch_size,
        "n_epochs": ppo.n_epochs,
        "learning_rate": ppo.learning_rate,
        "ent_coef": ppo.ent_coef,
        "gamma": ppo.gamma,
        "gae_lambda": ppo.gae_lambda,
        "clip_range": ppo.clip_range,
    }


def policy_kwargs(net: NetworkConfig) -> dict[str, Any]:
    """SB3's ``policy_kwargs`` for ``network``: separate policy and value MLPs, and for a CNN
    (``marlmod.cnn``) separate conv stacks in front of them, through SB3's public
    ``features_extractor_class``. An MLP's kwargs are exactly those from before CNNs existed."""
    kwargs: dict[str, Any] = {
        "net_arch": {"pi": list(net.hidden), "vf": list(net.hidden)},
        "activation_fn": ACTIVATIONS[net.activation],
    }
    if net.kind == "cnn":
        kwargs["features_extractor_class"] = PlanesCNN
        kwargs["features_extractor_kwargs"] = {
            "conv": [(c.channels, c.kernel, c.stride, c.padding) for c in net.conv],
            "activation": net.activation,
        }
        kwargs["share_features_extractor"] = False
    return kwargs


def learn(
    model: PPO,
    steps: int,
    callback: BaseCallback | None = None,
    continue_run: bool = False,
    log_name: str = "run",
) -> PPO:
    """Train for ``steps`` agent-steps; ``continue_run`` keeps the step counter and env state.

    ``log_name`` names the TensorBoard run when ``model.tensorboard_log`` is set, and the stage
    in the error when training diverges (``marlmod.divergence``: every training goes through here).
    """
    model.set_logger(training_logger(model, log_name, continue_run))
    guarded_learn(
        model,
        log_name,
        callback,
        total_timesteps=steps,
        tb_log_name=log_name,
        reset_num_timesteps=not continue_run,
        progress_bar=False,
    )
    return model


def training_logger(model: PPO, log_name: str, continue_run: bool) -> Logger:
    """The logger SB3 would configure in ``learn``, minus its side effect.

    Without TensorBoard, SB3 still creates an empty ``$TMPDIR/SB3-<timestamp>`` folder on every
    ``learn`` call (thousands per scenario, as marlmod retrains in chunks); a logger with no
    outputs records the same ``train/*`` values and touches no disk.
    """
    if model.tensorboard_log is None:
        return Logger(folder=None, output_formats=[])
    return configure_logger(model.verbose, model.tensorboard_log, log_name, not continue_run)


def save_model(model: PPO, path: Path) -> None:
    write_with(path, lambda tmp: model.save(tmp))


def load_model(path: Path, scenario: Scenario, make_env: EnvFactory, seed: int) -> PPO:
    """Load a checkpoint onto fresh envs of ``make_env`` (e.g. the cooperative variant), without
    unpickling anything.

    An SB3 zip stores some entries (policy class, spaces, schedules, buffers) with cloudpickle,
    which can run arbitrary code. marlmod rebuilds every such entry from the scenario instead, so
    loading reads only JSON and ``torch.load(weights_only=True)`` tensors; a checkpoint with a
    pickled entry marlmod does not know is refused.
    """
    if not path.is_file():
        raise MarlmodError(f"checkpoint not found: {path}")
    venv = make_venv(scenario, make_env)
    replacements = pickle_free_entries(scenario, venv)
    try:
        unknown = sorted(set(pickled_entries(path)) - set(replacements))
        if unknown:
            raise MarlmodError(
                f"checkpoint {path} has pickled entries marlmod does not rebuild "
                f"({', '.join(unknown)}); refusing to unpickle them"
            )
        model = BACKENDS[scenario.ppo.backend].load(
            path, env=venv, device="cpu", custom_objects=replacements
        )
    except (zipfile.BadZipFile, EOFError, RuntimeError, ValueError, KeyError) as err:
        raise MarlmodError(f"corrupt checkpoint {path}: {err}; delete it to retrain") from err
    model.set_random_seed(seed)
    return on_backend(model, scenario.ppo.backend)


def pickled_entries(path: Path) -> list[str]:
    """Names of the cloudpickled entries in an SB3 zip, read as JSON (nothing is unpickled)."""
    with zipfile.ZipFile(path) as archive:
        data = json.loads(archive.read("data"))
    return [
        key for key, value in data.items() if isinstance(value, dict) and ":serialized:" in value
    ]


def pickle_free_entries(scenario: Scenario, venv: VecEnv) -> dict[str, Any]:
    """What marlmod rebuilds instead of unpickling (schedules are rebuilt by SB3 itself from the
    stored floats; buffers and last observations are reset by the next ``learn``)."""
    return {
        "policy_class": ActorCriticPolicy,
        "policy_kwargs": policy_kwargs(scenario.network),
        "observation_space": venv.observation_space,
        "action_space": venv.action_space,
        "rollout_buffer_class": RolloutBuffer,
        "clip_range": scenario.ppo.clip_range,
        "lr_schedule": scenario.ppo.learning_rate,
        "_last_obs": None,
        "_last_episode_starts": None,
        "ep_info_buffer": None,
        "ep_success_buffer": None,
    }


def limit_threads() -> None:
    """One thread per worker process: tiny nets gain nothing from more, and workers share cores.

    Torch's and also the BLAS and OpenMP pools NumPy, SciPy and scikit-learn use (spectral
    clustering, probes): with ``workers`` processes on as many cores, each process's spinning
    second thread waits for a core another process holds, and clusterability's spectral
    clustering ran ~60x slower on a busy 2-core machine than with one thread
    (``benchmarks/scenario_phases.py``)."""
    torch.set_num_threads(1)
    threadpool_limits(1)
