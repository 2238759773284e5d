"""Relearning attacks: is a pruned trait removed, or only suppressed?

Cooperative retraining cannot tell the two apart: nothing rewards the trait, so a suppressed trait
and a removed one both stay low. The unlearning literature's test is to train *towards* the
removed behaviour and count how fast it returns, against a model that never had it (Deeb &
Roger 2024; Shilov et al. 2025). An attack here continues training a model with the bonus back on
(``relearn.bonus``, default ``env.bonus``) and measures the trait along the way on the usual
evaluation episodes. Targets are every cell — after cooperative retraining (``retrained``) and
right after pruning (``pruned``) — plus two reference models: the control (same budget, never
paid for the trait: the reference every attack is compared with) and the from-scratch
cooperative model. Each attack runs at every learning rate of ``relearn.learning_rates``, because
such results swing with it (Qi et al. 2025): results report the worst case over the grid.

Pruned weights stay held at zero during an attack by default (the question is whether the rest of
the network relearns); cells named in ``relearn.release_masks`` are also attacked with their masks
released. Every attack stores its own settings, so extending a finished run with attacks computes
only those, and a stored attack made under other settings is refused rather than mixed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import FloatSchedule

from marlmod.atomic import cached_json
from marlmod.cells import MODEL_STAGES, Cell
from marlmod.errors import MarlmodError
from marlmod.metrics import curve_to_json
from marlmod.prune import HoldMasks, Masks, apply_masks, load_prune
from marlmod.retrain import train_with_curve

if TYPE_CHECKING:
    from marlmod.config import Scenario
    from marlmod.pipeline import SeedRun

CONTROL = MODEL_STAGES["control"]  # the never-paid control model, the reference of every attack
SCRATCH = "scratch"  # the from-scratch cooperative model
REFERENCES = (CONTROL, SCRATCH)


@dataclass(frozen=True)
class Attack:
    """One relearning attack: which model, from which point, at which learning rate."""

    target: str  # a cell name, or a reference model (CONTROL, SCRATCH)
    start: str  # "retrained" (after cooperative retraining) or "pruned" (right after pruning)
    learning_rate: float
    released: bool = False  # pruned weights free to regrow during the attack

    @property
    def name(self) -> str:
        masks = "~released" if self.released else ""
        return f"{self.start}{masks}_lr{self.learning_rate:g}"

    def masks(self, run: SeedRun) -> Masks | None:
        """The prune held during the attack (None for references and unheld cells)."""
        if self.target in REFERENCES or self.released:
            return None
        cell = Cell.parse(self.target)
        if not cell.hold:
            return None
        return load_prune(run.dir / cell.prune_cell.name)[1]


def attacks(scenario: Scenario) -> list[Attack]:
    """Every attack the ``relearn`` section asks for (none when it is absent)."""
    cfg = scenario.relearn
    if cfg is None:
        return []
    cells = [c for c in scenario.cells if not cfg.cells or c.name in cfg.cells]
    out = []
    for lr in cfg.learning_rates:
        out += [Attack(ref, "retrained", lr) for ref in REFERENCES]
        for cell in cells:
            starts = [s for s in cfg.starts if s == "retrained" or has_pruned_start(cell)]
            for start in starts:
                out.append(Attack(cell.name, start, lr))
                if cell.name in cfg.release_masks and cell.hold:
                    out.append(Attack(cell.name, start, lr, released=True))
    return out


def has_pruned_start(cell: Cell) -> bool:
    """Whether "right after pruning" is a model of its own for this cell: the unpruned
    fine-tuning cells start from the pretrained model itself, and a distilled cell's start is
    its student, which only exists after distillation."""
    return cell.pruned and not cell.distilled


class BonusMeter(BaseCallback):
    """Sums the bonus the env paid during training: proof the attack trained on the bonus env
    (and the cooperative retraining did not), stored with every attack."""

    def __init__(self) -> None:
        super().__init__()
        self.paid = 0.0

    def _on_step(self) -> bool:
        self.paid += sum(float(i.get("bonus_reward", 0.0)) for i in self.locals["infos"])
        return True


def settings(scenario: Scenario) -> dict[str, Any]:
    """What a stored attack must have been made with to be reused."""
    cfg = scenario.relearn
    assert cfg is not None
    return {
        "steps": cfg.steps,
        "eval_points": cfg.eval_points,
        "spacing": cfg.spacing,
        "bonus": scenario.env.bonus if cfg.bonus is None else cfg.bonus,
    }


def starting_model(run: SeedRun, attack: Attack, bonus: float) -> PPO:
    """The attacked model, on envs paying ``bonus``, with the attack's learning rate."""
    make_env = run.env.factory(bonus)
    if attack.target == CONTROL:
        model = run.load(run.pretrained("control")[0], make_env)
    elif attack.target == SCRATCH:
        run.scratch_curve()
        model = run.load(run.dir / SCRATCH / "model.zip", make_env)
    elif attack.start == "retrained":
        run.cell(attack.target)
        model = run.load(run.dir / attack.target / "model.zip", make_env)
    else:
        model = run.load(run.pretrained("pretrain")[0], make_env)
        masks = run.prune_for(attack.target, model)
        if masks is not None:
            apply_masks(model.policy, masks)
    model.learning_rate = attack.learning_rate
    model.lr_schedule = FloatSchedule(attack.learning_rate)
    return model


def run_attack(run: SeedRun, attack: Attack) -> tuple[PPO, dict[str, Any]]:
    """Train the attacked model with the bonus back on; return it and the attack's record."""
    wanted = settings(run.scenario)
    model = starting_model(run, attack, wanted["bonus"])
    masks = attack.masks(run)
    meter = BonusMeter()
    callbacks = [meter] if masks is None else [HoldMasks(masks), meter]
    curve = train_with_curve(
        run.logged(model),
        wanted["steps"],
        wanted["eval_points"],
        run.evaluate,
        callbacks,
        f"relearn_{attack.target}_{attack.name}",
        wanted["spacing"],
    )
    record = {
        "seed": run.seed,
        "target": attack.target,
        "start": attack.start,
        "learning_rate": attack.learning_rate,
        "masks_held": masks is not None,
        "settings": wanted,
        "bonus_paid": meter.paid,
        "curve": curve_to_json(curve),
    }
    return model, record


def relearn(run: SeedRun, attack: Attack) -> dict[str, Any]:
    """Run (or reuse) one attack and return its record: settings, bonus paid, trait curve."""
    path = run.dir / "relearn" / attack.target / f"{attack.name}.json"
    record = cached_json(path, lambda: run_attack(run, attack)[1])
    wanted = settings(run.scenario)
    if record["settings"] != wanted:
        raise MarlmodError(
            f"{path} was made with relearn settings {record['settings']}, not {wanted}; "
            "delete the seed's relearn/ folders to redo the attacks"
        )
    return record
