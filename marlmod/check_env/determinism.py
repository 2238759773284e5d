"""Determinism: the same seed and actions replay identically, and the bonus changes nothing
but the bonus."""

from __future__ import annotations

from gymnasium.utils.env_checker import data_equivalence

from marlmod.check_env.records import Finding, Play, Spec, Step

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
