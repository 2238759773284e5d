"""Jobs run away from the run directory (Ray without a shared filesystem) ship their files back
in the order they wrote them, and the driver's copy ends up equal to a run written in place."""

from __future__ import annotations

from pathlib import Path

from marlmod.atomic import journal, write_text
from marlmod.compare import compare_runs
from marlmod.config import Scenario
from marlmod.experiment import prepare_run_dir, run_scenario
from marlmod.jobs import Job
from marlmod.shipping import apply, changes, pack, run_shipped
from marlmod.tasks import CellTask, seed_tasks


def test_changes_keep_the_write_order_skip_unchanged_files_and_delete_last(
    tmp_path: Path,
) -> None:
    before = {"seed_0/kept.json": b"same", "seed_0/gone.json": b"old", "seed_0/b.json": b"old"}
    for rel, data in before.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    (tmp_path / "seed_0" / "gone.json").unlink()
    with journal() as written:
        write_text(tmp_path / "seed_0" / "b.json", "draft")
        write_text(tmp_path / "seed_0" / "model.zip", "weights")
        write_text(tmp_path / "seed_0" / "b.json", "final")  # its last write counts
        write_text(tmp_path / "seed_0" / "kept.json", "same")  # rewritten, unchanged
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "events").write_bytes(b"log")  # not an atomic write
    assert changes(tmp_path, before, written) == [
        ("seed_0/model.zip", b"weights"),
        ("seed_0/b.json", b"final"),
        ("tensorboard/events", b"log"),
        ("seed_0/gone.json", None),
    ]


def test_jobs_run_in_scratch_directories_give_the_files_of_a_run_in_place(
    tmp_path: Path, tiny_scenario: Scenario
) -> None:
    run_dir = tmp_path / "shipped" / "tiny"
    prepare_run_dir(tiny_scenario, run_dir)
    for job in [Job(0), *(Job(0, task) for task in seed_tasks(tiny_scenario))]:
        files = pack(run_dir, 0)
        error, shipped = run_shipped(tiny_scenario, job, files)
        assert error is None
        assert pack(run_dir, 0) == files  # the job never wrote the run directory itself
        if job.task == CellTask("contrast"):
            names = [rel for rel, _ in shipped]  # the model before the marker of its stage
            assert names.index("seed_0/contrast/model.zip") < names.index(
                "seed_0/contrast/cell.json"
            )
        apply(run_dir, shipped)
    run_scenario(tiny_scenario, tmp_path / "in_place", workers=1)
    comparison = compare_runs(run_dir, tmp_path / "in_place" / "tiny")
    assert comparison.identical and not comparison.only_a and not comparison.only_b
