"""Redraw the committed runs' relapse, pareto and sweep plots from their committed CSVs.

The seed directories behind ``results/<run>/`` are not committed, so ``marlmod report`` cannot
run there; the CSVs it wrote are, and they hold everything these three plots read. Run from the
repository root after changing ``marlmod/plots.py``::

    python scripts/replot_committed.py [results/aggression ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from marlmod.plots import plot_pareto, plot_relapse, plot_sweep


def replot(run_dir: Path) -> list[Path]:
    """The plots of ``run_dir`` whose inputs are committed CSVs, redrawn in place."""
    written = []
    if (run_dir / "curves.csv").is_file():
        plot_relapse(pd.read_csv(run_dir / "curves.csv"), run_dir / "relapse.png")
        written.append(run_dir / "relapse.png")
    if (run_dir / "cells.csv").is_file():
        plot_pareto(pd.read_csv(run_dir / "cells.csv"), run_dir / "pareto.png")
        written.append(run_dir / "pareto.png")
    if (run_dir / "sweep.csv").is_file():
        plot_sweep(pd.read_csv(run_dir / "sweep.csv"), run_dir / "sweep.png")
        written.append(run_dir / "sweep.png")
    return written


def main(args: list[str]) -> None:
    runs = [Path(a) for a in args] or sorted(p.parent for p in Path("results").glob("*/run.json"))
    for run_dir in runs:
        for path in replot(run_dir):
            print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
