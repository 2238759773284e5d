"""Reading ``metadata["marlmod"]``: the env's declaration of its bonus and labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from marlmod.check_env.records import PROTOCOL_DOC, PROTOCOL_KEYS, Finding, Spec


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
