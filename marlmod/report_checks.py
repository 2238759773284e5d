"""What a report must say before its tables, so that a reader does not take numbers on trust.

Two things can make every table of a run meaningless without any number looking wrong:

- **The trait was never learned.** If the model paid for the trait shows it no more than the
  control (same budget, never paid), "pruning removed the trait" measures noise. The check pairs
  the two models by seed: the pretrained trait rate minus the control's, with a 95% Student-t
  interval over seeds; the trait counts as learned only when that interval lies above 0. One
  seed cannot be judged, and the report says so; where every seed is above its control but the
  interval (wide at 2 seeds) includes 0, the warning says "not shown", not "not learned".
- **Capability as a ratio of returns.** "Retrained return ÷ reference return" holds only when
  both are positive; in a game whose returns are negative (distances, penalties) a *worse* agent
  can score a higher ratio. Capability is instead measured from a floor — a uniformly random
  policy on the same evaluation episodes (``marlmod.random_policy``) — as
  ``(return − random's) / (reference − random's)``: 1 is the reference's capability, 0 no better
  than acting at random, whatever the sign of the returns. Where the reference is not clearly
  above random (by ``CLEAR_MARGIN`` of the larger magnitude), or the run has no random-policy
  measurement, the value is missing and the report prints n/a.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from marlmod.stats import Estimate, mean_ci

WARNING_MARK = "> **Warning:**"  # how each warning line of summary.md starts
NOTE_MARK = "> **Note:**"  # a line a reader should see first, though nothing is wrong
CLEAR_MARGIN = 0.05  # the reference must beat random by 5% of the larger |return| to divide by


@dataclass(frozen=True)
class TraitCheck:
    """Pretrained vs control trait rate, paired by seed."""

    pretrained: Estimate
    control: Estimate
    difference: Estimate  # pretrained − control per seed: mean [95% t-interval]
    above_in_every_seed: bool  # each seed's pretrained rate exceeds its own control's

    @property
    def judged(self) -> bool:
        return self.difference.n >= 2

    @property
    def learned(self) -> bool:
        return self.judged and bool(self.difference.low > 0)


def trait_check(cells: pd.DataFrame) -> TraitCheck:
    """Was the trait learned? ``cells`` needs ``seed``, ``trait_rate_before`` and
    ``control_trait_rate`` (one value per seed, repeated over its cells)."""
    per_seed = cells.drop_duplicates("seed")
    return TraitCheck(
        mean_ci(per_seed.trait_rate_before, method="t"),
        mean_ci(per_seed.control_trait_rate, method="t"),
        mean_ci(per_seed.trait_rate_before - per_seed.control_trait_rate, method="t"),
        bool((per_seed.trait_rate_before > per_seed.control_trait_rate).all()),
    )


def reader_warnings(cells: pd.DataFrame, bonus: float | None = None) -> list[str]:
    """The warnings a report opens with (none when the trait was learned). With ``bonus`` 0 the
    trait was never paid for (it emerged from the game), the control *is* the pretrained model,
    and a note says so instead of a learned-vs-control check that cannot apply."""
    check = trait_check(cells)
    if bonus == 0:
        return [
            f"{NOTE_MARK} no bonus: the trait emerged from the game itself (pretrained trait "
            f"rate {check.pretrained}); the control is the pretrained model, so no never-paid "
            "model shows whether it would have emerged anyway."
        ]
    rates = f"pretrained trait rate {check.pretrained} vs the control's {check.control}"
    if not check.judged:
        return [
            f"{WARNING_MARK} one seed: whether the trait was learned cannot be judged "
            f"({rates}). Run at least 2 seeds before reading the tables as removal of a "
            "learned trait."
        ]
    if check.learned:
        return []
    if check.above_in_every_seed:  # too few seeds to show it, not evidence that it is absent
        return [
            f"{WARNING_MARK} **the trait is not shown learned at {check.difference.n} seeds.** "
            f"Every seed's paid model shows it more than its control ({rates}), but the paired "
            f"difference {check.difference} (95% t-interval) includes 0. Run more seeds before "
            "reading the tables as removal of a learned trait."
        ]
    return [
        f"{WARNING_MARK} **the trait was not learned.** The model paid for it shows it no "
        f"more than the control that never was: {rates}; paired difference "
        f"{check.difference} (95% t-interval over {check.difference.n} seeds) is not above 0. "
        "Every table below measures pruning of a trait that is not there."
    ]


def plain(warning: str) -> str:
    """A warning line without its Markdown (for HTML and the terminal)."""
    return warning.removeprefix("> ").replace("**", "")


def warnings_in(markdown: str) -> list[str]:
    """The warning lines of a rendered summary.md, without their Markdown."""
    return [plain(line) for line in markdown.splitlines() if line.startswith(WARNING_MARK)]


def normalised_capability(returns: pd.Series, reference: pd.Series, floor: pd.Series) -> pd.Series:
    """``(returns − floor) / (reference − floor)``, missing where ``reference`` is not clearly
    above ``floor`` (or either is missing)."""
    span = reference - floor
    scale = np.maximum(reference.abs(), floor.abs())
    clear = span > CLEAR_MARGIN * scale
    return (returns - floor) / span.where(clear)


def capability_columns(cells: pd.DataFrame) -> pd.DataFrame:
    """Add ``capability_vs_finetune`` and ``capability_vs_scratch``: the retrained task return
    measured from the random policy's (``random_task_return``) against that of plain
    fine-tuning (strategy ``none``) and of the from-scratch model."""
    from marlmod.cells import NO_PRUNE

    cells = cells.copy()
    if "random_task_return" not in cells:
        cells["random_task_return"] = np.nan
    floor = cells.random_task_return
    finetune = cells[cells.strategy == NO_PRUNE].set_index("seed").task_return_retrained
    cells["capability_vs_finetune"] = normalised_capability(
        cells.task_return_retrained, cells.seed.map(finetune), floor
    )
    cells["capability_vs_scratch"] = normalised_capability(
        cells.task_return_retrained, cells.scratch_task_return, floor
    )
    return cells
