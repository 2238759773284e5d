"""Plots stay legible at any number of strategies: one panel per strategy with the references
in grey, no legend over the curves, nothing drawn over the title."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from marlmod import plots

STRATEGIES = ["none", "random", *(f"strategy_{i:02d}" for i in range(15))]  # 17, as aggression


def curves(x: str) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [
        {"strategy": s, "seed": seed, x: step, "trait_rate": rng.random(), "task_return": 40}
        for s in STRATEGIES
        for seed in range(3)
        for step in (0, 1, 2)
    ]
    return pd.DataFrame(rows)


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[plt.Figure]:
    """The figures the plotting functions close, kept open for inspection."""
    figures: list[plt.Figure] = []
    monkeypatch.setattr(plots.plt, "close", figures.append)
    return figures


def overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize(
    ("plot", "x"), [(plots.plot_relapse, "steps"), (plots.plot_sweep, "fraction")]
)
def test_facets_one_strategy_per_panel_references_in_each(
    plot, x: str, drawn: list[plt.Figure], tmp_path: Path
) -> None:
    plot(curves(x), tmp_path / "plot.png")
    (fig,) = drawn
    axes = fig.axes
    assert len(axes) == 2 * 15  # a trait and a capability panel per non-reference strategy
    for ax in axes:
        assert len(ax.get_lines()) == 3  # the panel's strategy, fine-tuning and random
        assert ax.get_legend() is None  # no legend inside any panel
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    (legend,) = fig.legends
    boxes = [ax.get_window_extent(renderer) for ax in axes]
    legend_box = legend.get_window_extent(renderer)
    title_box = fig._suptitle.get_window_extent(renderer)
    assert not any(overlaps(legend_box, box) for box in boxes)
    assert not any(overlaps(title_box, box) for box in [*boxes, legend_box])
    assert (tmp_path / "plot.png").stat().st_size > 0


def test_pareto_one_row_per_strategy_without_a_legend(
    drawn: list[plt.Figure], tmp_path: Path
) -> None:
    cells = pd.DataFrame(
        {
            "strategy": np.repeat(STRATEGIES, 3),
            "relapse_fraction": np.linspace(0, 1, 3 * len(STRATEGIES)),
            "kept_vs_scratch": 1.0,
            "capability_vs_scratch": np.nan,  # a run made before the random policy was measured
        }
    )
    plots.plot_pareto(cells, tmp_path / "pareto.png")
    (fig,) = drawn
    left, right = fig.axes
    # sorted by trait removed, most on top: "none" has the lowest relapse fraction here
    assert [t.get_text() for t in left.get_yticklabels()][-1] == STRATEGIES[0]
    assert len(left.get_yticklabels()) == len(STRATEGIES)
    assert left.get_legend() is None and right.get_legend() is None
    assert "÷ from-scratch" in right.get_xlabel()  # falls back to the plain ratio
