"""Per-unit means and variances over a group of rows, computed in row chunks.

A recording can hold millions of rows. Selecting a group of rows (``acts[trait]``) and casting it
to float64 copies it at twice its size, and every temporary of ``np.var`` is as big again: the
contrast of 1M rows × 64 units used to peak near 4× its float32 input. Here the rows pass through
one float64 chunk buffer of ``CHUNK_ELEMENTS`` values, twice for a variance (mean, then the
squared deviations from it: the same two-pass formula as ``np.var``, numerically stable).

The sums are also *the same numbers* as NumPy's on the whole group. NumPy's axis-0 sum of a
C-ordered float64 array adds row after row into one accumulator, so each chunk is summed with the
running total as its first row, which continues that order exactly. (A single column is summed
pairwise instead; it is taken in one chunk, which costs only 8 bytes a row.) Scores therefore stay
bit for bit what they were before chunking (``tests/test_moments.py``), and a stored run's
``scores.json`` is reproduced exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from marlmod.errors import MarlmodError

CHUNK_ELEMENTS = 1 << 21  # float64 values per chunk: 16 MiB, whatever the layer's width

Transform = Callable[[np.ndarray], object]  # modifies a float64 chunk in place


@dataclass(frozen=True)
class Moments:
    """Row count, mean and population variance (``ddof=0``, as ``np.var``) of every column."""

    count: int
    mean: np.ndarray
    var: np.ndarray


def chunk_rows_for(units: int, rows: int) -> int:
    """Rows per chunk: ``CHUNK_ELEMENTS`` values, or all rows for a single column."""
    return max(rows, 1) if units == 1 else max(1, CHUNK_ELEMENTS // units)


def column_sum(
    acts: np.ndarray,
    rows: np.ndarray | None = None,
    transform: Transform | None = None,
    chunk_rows: int | None = None,
) -> tuple[np.ndarray, int]:
    """Float64 sum over the selected rows of ``transform(acts)``, per column, and the row count.

    ``rows`` is a boolean mask (``None``: every row); ``transform`` modifies a float64 chunk in
    place (e.g. ``np.abs(x, out=x)``). Added in the order NumPy adds them (module docstring).
    """
    total_rows, units = acts.shape
    step = chunk_rows or chunk_rows_for(units, total_rows)
    buffer = np.empty((step + 1, units))
    total: np.ndarray | None = None
    count = 0
    for start in range(0, total_rows, step):
        block = acts[start : start + step]
        if rows is not None:
            block = block[rows[start : start + step]]
        n = len(block)
        if n == 0:
            continue
        chunk = buffer[1 : n + 1]
        chunk[...] = block
        if transform is not None:
            transform(chunk)
        if total is None:
            total = chunk.sum(axis=0)
        else:
            buffer[0] = total  # the running total is the first row: NumPy's order continues
            total = buffer[: n + 1].sum(axis=0)
        count += n
    if total is None:
        raise MarlmodError("no rows to average over")
    return total, count


def column_mean(
    acts: np.ndarray,
    rows: np.ndarray | None = None,
    transform: Transform | None = None,
    chunk_rows: int | None = None,
) -> np.ndarray:
    """Mean over the selected rows of ``transform(acts)``, per column (see ``column_sum``)."""
    total, count = column_sum(acts, rows, transform, chunk_rows)
    return total / count


def column_moments(
    acts: np.ndarray, rows: np.ndarray | None = None, chunk_rows: int | None = None
) -> Moments:
    """Mean and variance over the selected rows, per column, in two chunked passes."""
    total, count = column_sum(acts, rows, chunk_rows=chunk_rows)
    mean = total / count

    def squared_deviation(x: np.ndarray) -> None:
        np.subtract(x, mean, out=x)
        np.multiply(x, x, out=x)

    squares, _ = column_sum(acts, rows, squared_deviation, chunk_rows)
    return Moments(count, mean, squares / count)


def absolute(x: np.ndarray) -> None:
    np.abs(x, out=x)


def square(x: np.ndarray) -> None:
    np.multiply(x, x, out=x)
