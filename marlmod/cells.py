"""Results cells: one strategy, pruned one way, retrained one way, and the name that says so.

A cell's directory under ``seed_<s>/`` and its row in ``cells.csv`` are named ``<strategy>`` (its
units pruned, masks held through retraining) or ``<strategy>~<variant>``:

- ``released``: the same unit prune, retrained with masks released (can the module regrow?);
  it reuses the prune stored under ``<strategy>/``.
- ``weights``: individual weights zeroed instead of whole units, as many as the unit prune zeroes
  (``marlmod.strategies.per_weight``).
- ``action_head``: the strategy ranks the action logits and their rows of ``action_net`` are held
  at zero. Results mark these cells: masking the action itself is not finding a module.
- ``distilled``: the pruned policy is distilled into a freshly initialised network, which is then
  retrained (``marlmod.distill``); it reuses the prune stored under ``<strategy>/``.
- ``none~early_stopped``: plain fine-tuning stopped when the trait stops falling on validation
  episodes (the early-stopping baseline).

Names are parsed in one place so the pipeline, the report and the episode viewer agree on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from marlmod.errors import MarlmodError

if TYPE_CHECKING:
    from marlmod.config import PruneConfig, RetrainConfig

NO_PRUNE = "none"  # plain cooperative fine-tuning of the unpruned model: the baseline to beat
VARIANTS = ("released", "weights", "action_head", "distilled", "early_stopped")
ACTION_HEAD_MARK = "†"  # appended to action-head cells' names in tables for people

# Where the two pretrained models of a seed live. The bonus-0 control is not under "control/":
# that is the `control` strategy's cell directory (older runs kept it there: ``marlmod.migrate``).
MODEL_STAGES = {"pretrain": "pretrain", "control": "control_model"}


@dataclass(frozen=True)
class Cell:
    strategy: str
    variant: str = ""

    def __post_init__(self) -> None:
        if self.variant and self.variant not in VARIANTS:
            raise MarlmodError(
                f"unknown cell variant {self.variant!r}; valid: {', '.join(VARIANTS)}"
            )

    @classmethod
    def parse(cls, name: str) -> Cell:
        strategy, _, variant = name.partition("~")
        return cls(strategy, variant)

    @property
    def name(self) -> str:
        return f"{self.strategy}~{self.variant}" if self.variant else self.strategy

    @property
    def pruned(self) -> bool:
        return self.strategy != NO_PRUNE

    @property
    def hold(self) -> bool:
        """Masks held at zero through retraining (everything pruned but released cells and
        distilled ones, whose fresh network has no pruned weights to hold)."""
        return self.pruned and self.variant not in ("released", "distilled")

    @property
    def prune_cell(self) -> Cell:
        """The cell whose directory stores this cell's prune (released and distilled cells
        share their strategy's)."""
        return Cell(self.strategy) if self.variant in ("released", "distilled") else self

    @property
    def distilled(self) -> bool:
        return self.variant == "distilled"

    @property
    def early_stopped(self) -> bool:
        return self.variant == "early_stopped"

    @property
    def granularity(self) -> str:
        if not self.pruned:
            return "none"
        return "weights" if self.variant == "weights" else "units"

    @property
    def action_head(self) -> bool:
        return self.variant == "action_head"


def scenario_cells(prune: PruneConfig, retrain: RetrainConfig | None = None) -> list[Cell]:
    """Every cell a scenario's ``prune`` (and ``retrain``) sections ask for, in the order they
    run; cells added later come last, so older runs keep their order."""
    return [
        Cell(NO_PRUNE),
        *(Cell(s) for s in prune.strategies),
        *(Cell(s, "released") for s in prune.released),
        *(Cell(s, "weights") for s in prune.weights),
        *(Cell(s, "action_head") for s in prune.action_head),
        *(Cell(s, "distilled") for s in prune.distilled),
        *([Cell(NO_PRUNE, "early_stopped")] if retrain is not None and retrain.early_stop else []),
    ]
