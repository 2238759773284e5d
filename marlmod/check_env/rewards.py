"""Rewards: the reward is the sum of its declared parts, and the bonus pays for the
labelled behaviour only, and only when it is on."""

from __future__ import annotations

import math

from marlmod.check_env.labels import is_real, labelled
from marlmod.check_env.records import REQUIRED_FLOATS, Finding, Play, Spec


def check_reward_sum(play: Play, spec: Spec) -> list[Finding]:
    """reward == task_reward + bonus_reward - sum(declared costs), and every reward is finite."""
    off: list[tuple[int, str, float, dict]] = []
    for s, agent, info in labelled(play, spec):
        reward = play.steps[s].rewards.get(agent)
        if not is_real(reward) or not math.isfinite(reward):
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
    return is_real(value) and math.isclose(residual, -value, rel_tol=1e-5, abs_tol=1e-6)


def check_bonus_off(play_off: Play, spec: Spec) -> list[Finding]:
    """With the bonus kwarg at 0 the env is the cooperative variant: no bonus, ever."""
    paid = [(s, a, i["bonus_reward"]) for s, a, i in labelled(play_off, spec) if i["bonus_reward"]]
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
    for s, agent, info in labelled(play_on, spec):
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
    for _, _, info in labelled(play, spec):
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
