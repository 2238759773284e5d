"""Gathering that kills the process stepping it, once, for the dead-worker tests.

``kill_marker`` names a file: the first env (in any process) to reach step ``kill_at`` while the
file is absent creates it and SIGKILLs its own process — a worker dying mid-training, as the OS
out-of-memory killer would do it. With the file already there it is plain Gathering (stepped per
copy: a subclass never uses the batched twin), which is how the undisturbed reference runs.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from envs.gathering import GatheringEnv


class KillingGathering(GatheringEnv):
    def __init__(self, kill_marker: str = "", kill_at: int = 30, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kill_marker, self.kill_at, self.steps = kill_marker, kill_at, 0

    def step(self, actions: dict[str, Any]):
        self.steps += 1
        if self.kill_marker and self.steps == self.kill_at:
            try:
                os.close(os.open(self.kill_marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return super().step(actions)


def killing_config(tiny_dict: dict, marker: Path) -> dict:
    """``tiny_dict`` on ``fault_envs.KillingGathering``: the first env to reach its 30th step
    while ``marker`` is absent creates it and SIGKILLs its own process."""
    tiny_dict["env"]["id"] = "fault_envs:KillingGathering"
    tiny_dict["env"]["kwargs"] = {**tiny_dict["env"]["kwargs"], "kill_marker": str(marker)}
    return tiny_dict
