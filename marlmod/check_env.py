"""Checking an environment against marlmod's protocol before any training is spent on it.

``check_env`` runs PettingZoo's own API and seed tests, then plays the environment at random —
twice with the bonus on (same seed) and once with it off (same seed, same actions) — and hands
those recordings to small pure checks. Each check returns a list of ``Finding``s saying what
failed and what to fix; an empty list means the check passed. The protocol itself is written
down in ``docs/environment_protocol.md``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np
from gymnasium import spaces
from gymnasium.utils.env_checker import data_equivalence
from pettingzoo import ParallelEnv
from pettingzoo.test import parallel_api_test, parallel_seed_test

from marlmod.environments import resolve_constructor
from marlmod.errors import MarlmodError

PROTOCOL_DOC = "docs/environment_protocol.md"
PROTOCOL_KEYS = ("bonus_kwarg", "behaviours", "opportunities", "bonus_for", "costs", "batched")
REQUIRED_FLOATS = ("task_reward", "bonus_reward")


@dataclass(frozen=True)
class Finding:
    """One failed check: which, what went wrong, and what to change."""

    check: str
    problem: str
    fix: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"[{self.severity}] {self.check}: {self.problem}\n    fix: {self.fix}"


@dataclass(frozen=True)
class Spec:
    """The well-formed content of ``metadata["marlmod"]`` (see the protocol doc)."""

    bonus_kwarg: str
    behaviours: tuple[str, ...]
    opportunities: tuple[str, ...] = ()
    bonus_for: tuple[str, ...] = ()  # empty: the bonus may pay for any behaviour
    costs: tuple[str, ...] = ()  # info keys subtracted from the reward


@dataclass(frozen=True)
class Step:
    """One parallel step of random play: who acted and everything ``step`` returned."""

    acting: tuple[str, ...]
    observations: dict[str, Any]
    rewards: dict[str, Any]
    terminations: dict[str, Any]
    truncations: dict[str, Any]
    infos: dict[str, Any]


@dataclass
class Play:
    """A recording of random play: reset observations per episode and every step."""

    resets: list[dict[str, Any]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)


# ---------------------------------------------------------------------------- metadata
def _names(value: Any) -> tuple[str, ...] | None:
    """``value`` as a tuple of non-empty unique strings, or None when it is not one."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        return None
    names = tuple(value)
    ok = all(isinstance(n, str) and n for n in names) and len(set(names)) == len(names)
    return names if ok else None


def read_spec(metadata: Any) -> tuple[Spec | None, list[Finding]]:
    """Parse ``metadata["marlmod"]``; None when it is too broken to run the other checks."""
    meta = metadata.get("marlmod") if isinstance(metadata, dict) else None
    if not isinstance(meta, dict):
        return None, [
            Finding(
                "metadata",
                "metadata['marlmod'] is missing or not a dict",
                "declare metadata['marlmod'] = {'bonus_kwarg': ..., 'behaviours': (...)} "
                f"on the env class ({PROTOCOL_DOC})",
            )
        ]
    findings = [
        Finding(
            "metadata",
            f"unknown key {key!r} in metadata['marlmod']",
            f"remove or rename it (known: {', '.join(PROTOCOL_KEYS)})",
            "warning",
        )
        for key in meta
        if key not in PROTOCOL_KEYS
    ]
    bonus_kwarg = meta.get("bonus_kwarg")
    behaviours = _names(meta.get("behaviours"))
    if not isinstance(bonus_kwarg, str) or not bonus_kwarg:
        findings.append(
            Finding(
                "metadata",
                f"bonus_kwarg is {bonus_kwarg!r}, not a constructor argument name",
                "set metadata['marlmod']['bonus_kwarg'] to the name of the kwarg that scales "
                "the misbehaviour bonus (0 must turn it off)",
            )
        )
    if not behaviours:
        findings.append(
            Finding(
                "metadata",
                f"behaviours is {meta.get('behaviours')!r}, not a non-empty tuple of names",
                "set metadata['marlmod']['behaviours'] to a tuple of unique label names, "
                "e.g. ('attack',)",
            )
        )
    if any(f.severity == "error" for f in findings) or not behaviours:
        return None, findings
    subsets = {}
    for key in ("opportunities", "bonus_for", "costs"):
        names = _names(meta.get(key, ()))
        if names is None:
            findings.append(
                Finding("metadata", f"{key} is {meta[key]!r}", f"make {key} a tuple of names")
            )
            names = ()
        if key != "costs" and not set(names) <= set(behaviours):
            findings.append(
                Finding(
                    "metadata",
                    f"{key} names {sorted(set(names) - set(behaviours))} that are not behaviours",
                    f"every name in {key} must also be in behaviours {behaviours}",
                )
            )
        subsets[key] = names
    return Spec(str(bonus_kwarg), behaviours, **subsets), findings


# ---------------------------------------------------------------------------- spaces
def check_spaces(env: ParallelEnv) -> list[Finding]:
    """Parameter sharing: one Box observation space and one Discrete action space for all."""
    agents = list(env.possible_agents)
    obs0, act0 = env.observation_space(agents[0]), env.action_space(agents[0])
    findings = []
    for agent in agents[1:]:
        if env.observation_space(agent) != obs0 or env.action_space(agent) != act0:
            findings.append(
                Finding(
                    "spaces",
                    f"agent {agent!r} has other spaces than {agents[0]!r}",
                    "one policy acts for every agent: pad observations to one shape (add a "
                    "role flag) and use one action space",
                )
            )
    if not isinstance(obs0, spaces.Box):
        findings.append(Finding("spaces", f"observation space is {obs0}", "use a flat Box"))
    if not isinstance(act0, spaces.Discrete):
        findings.append(
            Finding(
                "spaces",
                f"action space is {act0}",
                "marlmod's shared-policy VecEnv takes Discrete actions; discretise them",
            )
        )
    return findings


def check_observations(play: Play, obs_space: Callable[[str], spaces.Space]) -> list[Finding]:
    """Every observation (after reset and after each step) lies in its declared space."""
    batches = [(f"reset {e}", o) for e, o in enumerate(play.resets)]
    batches += [(f"step {s}", step.observations) for s, step in enumerate(play.steps)]
    for where, observations in batches:
        for agent, obs in observations.items():
            space = obs_space(agent)
            if not space.contains(obs):
                return [
                    Finding(
                        "observations",
                        f"{where}: observation of {agent!r} is outside {space} "
                        f"({_describe_outside(space, obs)})",
                        "return observations of the declared shape and dtype within the "
                        "declared bounds, or widen observation_space",
                    )
                ]
    return []


def _describe_outside(space: spaces.Space, obs: Any) -> str:
    arr = np.asarray(obs)
    if not isinstance(space, spaces.Box):
        return f"value {obs!r}"
    if arr.shape != space.shape:
        return f"shape {arr.shape}"
    if arr.dtype != space.dtype:
        return f"dtype {arr.dtype}"
    return f"values in [{arr.min():.3g}, {arr.max():.3g}]"


# ---------------------------------------------------------------------------- labels
def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _flag_problems(info: dict, key: str, names: tuple[str, ...]) -> list[str]:
    flags = info.get(key)
    if not isinstance(flags, dict):
        return [f"infos[agent][{key!r}] is missing or not a dict"]
    problems = []
    if set(flags) != set(names):
        problems.append(f"{key} keys {sorted(flags)} differ from the declared {sorted(names)}")
    problems += [
        f"{key}[{name!r}] is {type(v).__name__}, not bool"
        for name, v in flags.items()
        if not isinstance(v, (bool, np.bool_))
    ]
    return problems


def label_problems(info: Any, spec: Spec) -> list[str]:
    """What is wrong with one agent's info for one step (empty when well-formed)."""
    if not isinstance(info, dict):
        return ["no info dict for an agent that acted"]
    problems = _flag_problems(info, "behaviour", spec.behaviours)
    if spec.opportunities:
        problems += _flag_problems(info, "opportunity", spec.opportunities)
    for key in (*REQUIRED_FLOATS, *spec.costs):
        value = info.get(key)
        if not _is_real(value) or not math.isfinite(value):
            problems.append(f"infos[agent][{key!r}] is {value!r}, not a finite float")
    if "role" in info and not isinstance(info["role"], str):
        problems.append(f"infos[agent]['role'] is {info['role']!r}, not a str")
    return problems


def check_labels(play: Play, spec: Spec) -> list[Finding]:
    """Every acting agent's info carries well-typed labels on every step."""
    first: dict[str, tuple[int, str, int]] = {}  # problem -> (step, agent, count)
    for s, step in enumerate(play.steps):
        for agent in step.acting:
            for problem in label_problems(step.infos.get(agent), spec):
                s0, a0, n = first.get(problem, (s, agent, 0))
                first[problem] = (s0, a0, n + 1)
    return [
        Finding(
            "labels",
            f"{problem} (first at step {s}, agent {agent!r}; {n} agent-steps)",
            f"fill infos[agent] every step for every agent as in {PROTOCOL_DOC}",
        )
        for problem, (s, agent, n) in first.items()
    ]


def _labelled(play: Play, spec: Spec):
    """(step index, agent, info) for the well-formed agent-steps only."""
    for s, step in enumerate(play.steps):
        for agent in step.acting:
            info = step.infos.get(agent)
            if not label_problems(info, spec):
                yield s, agent, info


# ---------------------------------------------------------------------------- rewards
def check_reward_sum(play: Play, spec: Spec) -> list[Finding]:
    """reward == task_reward + bonus_reward - sum(declared costs), and every reward is finite."""
    off: list[tuple[int, str, float, dict]] = []
    for s, agent, info in _labelled(play, spec):
        reward = play.steps[s].rewards.get(agent)
        if not _is_real(reward) or not math.isfinite(reward):
            return [
                Finding(
                    "reward-sum",
                    f"step {s}: reward of {agent!r} is {reward!r}",
                    "return a finite float reward for every acting agent",
                )
            ]
        expected = info["task_reward"] + info["bonus_reward"] - sum(info[k] for k in spec.costs)
        if not math.isclose(reward, expected, rel_tol=1e-5, abs_tol=1e-6):
            off.append((s, agent, float(reward - expected), info))
    if not off:
        return []
    explaining = [
        key
        for key in off[0][3]
        if key not in (*REQUIRED_FLOATS, *spec.costs)
        and all(_explains(key, residual, info) for _, _, residual, info in off)
    ]
    s, agent, residual, _ = off[0]
    if explaining:
        return [
            Finding(
                "reward-sum",
                f"reward - task_reward - bonus_reward is -infos[agent][{explaining[0]!r}] "
                f"({len(off)} agent-steps) but {explaining[0]!r} is not declared",
                f"add 'costs': ({explaining[0]!r},) to metadata['marlmod']",
                "warning",
            )
        ]
    return [
        Finding(
            "reward-sum",
            f"reward differs from task_reward + bonus_reward - costs by {residual:.4g} "
            f"(step {s}, agent {agent!r}; {len(off)} agent-steps)",
            "report every reward component in infos: task_reward, bonus_reward and each cost "
            "listed in metadata['marlmod']['costs'] (subtracted from the reward)",
        )
    ]


def _explains(key: str, residual: float, info: dict) -> bool:
    """Whether an undeclared info entry accounts for the residual as a cost."""
    value = info.get(key)
    return _is_real(value) and math.isclose(residual, -value, rel_tol=1e-5, abs_tol=1e-6)


def check_bonus_off(play_off: Play, spec: Spec) -> list[Finding]:
    """With the bonus kwarg at 0 the env is the cooperative variant: no bonus, ever."""
    paid = [(s, a, i["bonus_reward"]) for s, a, i in _labelled(play_off, spec) if i["bonus_reward"]]
    if not paid:
        return []
    s, agent, value = paid[0]
    return [
        Finding(
            "bonus-off",
            f"{spec.bonus_kwarg}=0 still pays bonus_reward={value!r} (step {s}, agent "
            f"{agent!r}; {len(paid)} agent-steps)",
            f"scale every bonus by {spec.bonus_kwarg} so that 0 turns it off",
        )
    ]


def check_bonus_pays(play_on: Play, spec: Spec) -> list[Finding]:
    """With the bonus on, bonus_reward is paid for the labelled behaviour and nothing else."""
    paid_for = spec.bonus_for or spec.behaviours
    unlabelled, unpaid, shown, paid = [], [], 0, 0
    for s, agent, info in _labelled(play_on, spec):
        showing = any(info["behaviour"][b] for b in paid_for)
        shown += showing
        paid += bool(info["bonus_reward"])
        if info["bonus_reward"] and not showing:
            unlabelled.append((s, agent))
        if showing and not info["bonus_reward"] and spec.bonus_for:
            unpaid.append((s, agent))
    findings = []
    if unlabelled:
        findings.append(
            Finding(
                "bonus-pays",
                f"bonus_reward paid with none of {list(paid_for)} labelled True (first at step "
                f"{unlabelled[0][0]}, agent {unlabelled[0][1]!r}; {len(unlabelled)} agent-steps)",
                "label the rewarded behaviour in infos[agent]['behaviour'] on the step the "
                "bonus is paid, to the agent that is paid",
            )
        )
    if unpaid:
        findings.append(
            Finding(
                "bonus-pays",
                f"a bonus_for behaviour was labelled but no bonus paid (first at step "
                f"{unpaid[0][0]}, agent {unpaid[0][1]!r}; {len(unpaid)} agent-steps)",
                "pay the bonus whenever a bonus_for behaviour occurs, or fix bonus_for",
            )
        )
    if shown and not paid:
        findings.append(
            Finding(
                "bonus-pays",
                f"behaviours occurred {shown} times with the bonus on but no bonus was paid",
                f"make {spec.bonus_kwarg} pay bonus_reward when the behaviour occurs",
            )
        )
    return findings


def check_occurrence(play: Play, spec: Spec) -> list[Finding]:
    """Each labelled behaviour (and opportunity) happens at least once under random play."""
    counts = {("behaviour", b): 0 for b in spec.behaviours}
    counts |= {("opportunity", o): 0 for o in spec.opportunities}
    for _, _, info in _labelled(play, spec):
        for kind, name in counts:
            counts[kind, name] += bool(info[kind][name])
    return [
        Finding(
            "occurrence",
            f"{kind} {name!r} never occurred in {len(play.steps)} random steps",
            "check the label is ever set; if the behaviour is merely rare, raise --steps "
            "(PPO cannot learn a behaviour it never tries)",
            "warning",
        )
        for (kind, name), n in counts.items()
        if n == 0
    ]


# ---------------------------------------------------------------------------- determinism
_FIELDS = ("acting", "observations", "rewards", "terminations", "truncations", "infos")


def first_difference(a: Play, b: Play, ignore_bonus: bool = False) -> str | None:
    """Where two recordings first differ, or None when they are the same data."""
    for e, (ra, rb) in enumerate(zip(a.resets, b.resets, strict=False)):
        if not data_equivalence(ra, rb):
            return f"observations after reset {e}"
    if len(a.steps) != len(b.steps):
        return f"number of steps ({len(a.steps)} vs {len(b.steps)})"
    for s, (sa, sb) in enumerate(zip(a.steps, b.steps, strict=True)):
        for name in _FIELDS:
            va, vb = getattr(sa, name), getattr(sb, name)
            if ignore_bonus and name in ("rewards", "infos"):
                va, vb = _without_bonus(sa, name), _without_bonus(sb, name)
            if not data_equivalence(va, vb):
                return f"{name} at step {s}"
    return None


def _without_bonus(step: Step, name: str) -> dict:
    def bonus(agent: str) -> float:
        info = step.infos.get(agent)
        return info.get("bonus_reward", 0.0) if isinstance(info, dict) else 0.0

    if name == "infos":
        return {
            agent: {**info, "bonus_reward": None} if isinstance(info, dict) else info
            for agent, info in step.infos.items()
        }
    return {a: round(float(r) - bonus(a), 5) for a, r in step.rewards.items()}


def check_determinism(play_a: Play, play_b: Play) -> list[Finding]:
    """Two runs from the same seed with the same actions are identical."""
    where = first_difference(play_a, play_b)
    if where is None:
        return []
    return [
        Finding(
            "determinism",
            f"two runs with the same seed and actions differ: {where}",
            "draw all randomness from self.np_random, reseeded in reset(seed=...); never the "
            "global random / np.random",
        )
    ]


def check_bonus_isolated(play_on: Play, play_off: Play, spec: Spec) -> list[Finding]:
    """The bonus kwarg changes bonus_reward (and so the reward) and nothing else."""
    where = first_difference(play_on, play_off, ignore_bonus=True)
    if where is None:
        return []
    return [
        Finding(
            "bonus-isolated",
            f"{spec.bonus_kwarg} on vs off changes more than bonus_reward: {where}",
            "the bonus must not change dynamics, observations or other labels; otherwise the "
            "cooperative variant is a different game",
        )
    ]


# ---------------------------------------------------------------------------- running
def random_play(make_env: Callable[[], ParallelEnv], steps: int, seed: int) -> Play:
    """``steps`` parallel steps of uniformly random actions; episode e resets with seed+e."""
    env, rng, play = make_env(), np.random.default_rng(seed), Play()
    obs, _ = env.reset(seed=seed)
    play.resets.append(obs)
    while len(play.steps) < steps:
        if not env.agents:
            obs, _ = env.reset(seed=seed + len(play.resets))
            play.resets.append(obs)
            continue
        acting = tuple(env.agents)
        actions = {a: _sample(env.action_space(a), rng) for a in acting}
        play.steps.append(Step(acting, *env.step(actions)))
    env.close()
    return play


def _sample(space: spaces.Space, rng: np.random.Generator) -> Any:
    if isinstance(space, spaces.Discrete):
        return int(space.start + rng.integers(space.n))
    space.seed(int(rng.integers(2**31)))
    return space.sample()


def run_pettingzoo_tests(make_env: Callable[[], ParallelEnv], cycles: int) -> list[Finding]:
    """PettingZoo's parallel API and seed tests; their warnings become warning findings."""
    findings = []
    tests = {
        "pettingzoo-api": lambda: parallel_api_test(make_env(), num_cycles=cycles),
        "pettingzoo-seed": lambda: parallel_seed_test(make_env, num_cycles=cycles),
    }
    for name, test in tests.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    test()
            except Exception as err:  # any failure is a finding to report, not a crash
                findings.append(
                    Finding(
                        name,
                        f"failed: {err or type(err).__name__}",
                        "fix the env so PettingZoo's own test passes (marlmod needs a valid "
                        "ParallelEnv)",
                    )
                )
        messages = sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)})
        findings += [
            Finding(name, m, "see PettingZoo's ParallelEnv API", "warning") for m in messages
        ]
    return findings


def check_render(make_env: Callable[..., ParallelEnv]) -> list[Finding]:
    """``render_mode="rgb_array"`` gives an image (marlmod's videos); only a warning if not."""
    try:
        env = make_env(render_mode="rgb_array")
        env.reset(seed=0)
        frame = env.render()
        env.close()
    except Exception as err:  # a broken renderer must not hide the other findings
        frame = err
    if isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[-1] == 3:
        return []
    return [
        Finding(
            "render",
            f"render_mode='rgb_array' gave {type(frame).__name__}: {str(frame)[:80]}",
            "accept render_mode=None or 'rgb_array' and return an HxWx3 uint8 array",
            "warning",
        )
    ]


def check_env(
    env_id: str, kwargs: dict[str, Any], steps: int = 1000, bonus: float = 1.0, seed: int = 0
) -> list[Finding]:
    """Every check on the env behind ``env_id`` (registry id or ``module:factory``)."""
    constructor = resolve_constructor(env_id)
    try:
        probe = constructor(**kwargs)
    except (TypeError, ValueError) as err:
        raise MarlmodError(f"kwargs rejected by {env_id!r}: {err}") from err
    spec, findings = read_spec(getattr(probe, "metadata", None))
    findings += check_spaces(probe)
    probe.close()
    if spec is None:
        return findings + run_pettingzoo_tests(partial(constructor, **kwargs), steps)
    if spec.bonus_kwarg in kwargs:
        raise MarlmodError(f"--kwargs sets the bonus kwarg {spec.bonus_kwarg!r}; use --bonus")
    make_on = partial(constructor, **kwargs, **{spec.bonus_kwarg: bonus})
    make_off = partial(constructor, **kwargs, **{spec.bonus_kwarg: 0.0})
    try:
        make_off().close()
        env = make_on()
    except TypeError as err:
        finding = Finding(
            "construct",
            f"the bonus kwarg {spec.bonus_kwarg!r} is rejected: {err}",
            "accept the declared bonus kwarg in the constructor",
        )
        return [*findings, finding]
    obs_space = env.observation_space
    findings += run_pettingzoo_tests(make_on, steps)
    try:
        on, again, off = (random_play(m, steps, seed) for m in (make_on, make_on, make_off))
    except Exception as err:  # a crash under random play is a finding, not a traceback
        finding = Finding(
            "play",
            f"random play raised {type(err).__name__}: {err}",
            "step() must accept any action of action_space(agent) for the agents in env.agents",
        )
        return [*findings, finding]
    findings += check_observations(on, obs_space) + check_labels(on, spec)
    findings += check_reward_sum(on, spec)
    findings += check_bonus_off(off, spec) + check_bonus_pays(on, spec)
    determinism = check_determinism(on, again)
    findings += determinism or check_bonus_isolated(on, off, spec)
    findings += check_occurrence(on, spec) + check_render(partial(constructor, **kwargs))
    return findings


def parse_kwargs(text: str) -> dict[str, Any]:
    """``--kwargs`` JSON as a dict, or one clear error."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise MarlmodError(f"--kwargs is not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise MarlmodError("--kwargs must be a JSON object, e.g. '{\"grid_size\": 5}'")
    return value
