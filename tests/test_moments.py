"""Chunked column statistics: the same numbers as NumPy on the whole group, without its copies."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import marlmod.strategies.moments as moments
from marlmod.errors import MarlmodError
from marlmod.locate import score_units
from marlmod.strategies.evidence import Evidence
from marlmod.strategies.moments import absolute, column_mean, column_moments, square

ROWS = 1000


def data(units: int, offset: float = 0.0) -> np.ndarray:
    gen = np.random.default_rng(units)
    scale = 10.0 ** gen.uniform(-3, 3, size=units)  # columns of very different size
    return (offset + gen.standard_normal((ROWS, units)) * scale).astype(np.float32)


def masks() -> dict[str, np.ndarray | None]:
    trait = np.random.default_rng(9).random(ROWS) < 0.3
    first_chunks_empty = trait.copy()
    first_chunks_empty[:500] = False  # whole chunks with no selected row
    return {"all": None, "trait": trait, "non-trait": ~trait, "late": first_chunks_empty}


CHUNKS = [1, 7, 250, 999, ROWS, 5000, None]  # 250 divides ROWS: the last chunk ends exactly


def reference(acts: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    """The rows as the strategies selected them before chunking: a float64 copy."""
    return (acts if rows is None else acts[rows]).astype(np.float64)


@pytest.mark.parametrize("units", [1, 2, 7])
@pytest.mark.parametrize("offset", [0.0, 1e4])  # a large mean: a one-pass variance would fail
@pytest.mark.parametrize("chunk_rows", CHUNKS)
def test_moments_equal_numpy_on_the_whole_group(
    units: int, offset: float, chunk_rows: int | None
) -> None:
    acts = data(units, offset)
    for name, rows in masks().items():
        got = column_moments(acts, rows, chunk_rows)
        x = reference(acts, rows)
        assert got.count == len(x), name
        np.testing.assert_allclose(got.mean, x.mean(axis=0), rtol=1e-12, atol=0, err_msg=name)
        np.testing.assert_allclose(got.var, x.var(axis=0), rtol=1e-12, atol=0, err_msg=name)
        if units > 1 or chunk_rows is None:  # NumPy's own summation order: the same bits
            assert np.array_equal(got.mean, x.mean(axis=0)), name
            assert np.array_equal(got.var, x.var(axis=0)), name


@pytest.mark.parametrize("chunk_rows", CHUNKS)
def test_transformed_means_equal_numpy(chunk_rows: int | None) -> None:
    acts = data(5)
    for rows in masks().values():
        x = reference(acts, rows)
        got_abs = column_mean(acts, rows, absolute, chunk_rows)
        got_sq = column_mean(acts, rows, square, chunk_rows)
        assert np.array_equal(got_abs, np.abs(x).mean(axis=0))
        assert np.array_equal(got_sq, (x**2).mean(axis=0))


def test_an_empty_selection_is_refused() -> None:
    with pytest.raises(MarlmodError, match="no rows"):
        column_mean(data(3), np.zeros(ROWS, dtype=bool))


# Scores of golden_evidence() computed by score_units before chunking and before the registry
# (commit fdd5f23): the rewrite must reproduce them bit for bit.
GOLDEN = {
    "contrast": [-0.0510658099739538, 0.7199688983916419, -0.011767770127184938, -0.020091330541425388, -0.42540565829139454, 0.08413489675912086],  # noqa: E501
    "random": [1.0, 4.0, 2.0, 3.0, 5.0, 0.0],
    "selective": [0.9282130177485434, 2.3297359818758077, 0.9825026058749463, 0.9713815433183707, 0.4650410099854853, 1.125200288676882],  # noqa: E501
    "opportunity": [-0.07097477218756518, 0.7110196468959106, -0.02115729652623324, -0.021173872110397094, -0.42420248633180513, 0.06373419880608033],  # noqa: E501
    "activation_magnitude": [0.4103524465531156, 0.49154298409592434, 0.38970158045476494, 0.4106055664885693, 0.3481300315341645, 0.4133908656906487],  # noqa: E501
    "routed": [-0.0, -0.16666666666666666, 1.6666666666666667, 1.5, -0.6666666666666666, -0.8333333333333334],  # noqa: E501
}  # fmt: skip


def golden_evidence() -> Evidence:
    gen = np.random.default_rng(2024)
    rows, units = 3001, 6
    trait = gen.random(rows) < 0.2
    opportunity = trait | (gen.random(rows) < 0.4)
    acts = gen.standard_normal((rows, units), dtype=np.float32)
    acts[:, 1] += 0.8 * trait
    acts[:, 4] -= 0.5 * trait
    np.maximum(acts, 0.0, out=acts)
    return Evidence(acts=acts, trait=trait, opportunity=opportunity, routed_units=(2, 3))


@pytest.mark.parametrize("chunk_elements", [moments.CHUNK_ELEMENTS, 600, 6])  # 1, 31, 3001 chunks
def test_scores_are_bit_for_bit_those_before_the_rewrite(
    chunk_elements: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(moments, "CHUNK_ELEMENTS", chunk_elements)
    ev = golden_evidence()
    for name, expected in GOLDEN.items():
        got = score_units(name, ev, np.random.default_rng(5))
        assert got.tobytes() == np.array(expected).tobytes(), name


@pytest.mark.parametrize("name", ["contrast", "opportunity", "activation_magnitude", "selective"])
def test_scoring_does_not_copy_the_recording(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scratch memory is the chunk buffer and a few per-row masks, not copies of the rows (which
    took ~4× the float32 input before). ``selective`` keeps one |acts| copy for its floor, which
    stays within the input's size."""
    monkeypatch.setattr(moments, "CHUNK_ELEMENTS", 1 << 14)
    gen = np.random.default_rng(0)
    trait = gen.random(100_000) < 0.1
    acts = np.maximum(gen.standard_normal((100_000, 32), dtype=np.float32), 0.0)
    ev = Evidence(acts=acts, trait=trait, opportunity=trait | (gen.random(100_000) < 0.5))
    score_units(name, ev, np.random.default_rng(0))  # imports the scorer outside the trace
    tracemalloc.start()
    try:
        score_units(name, ev, np.random.default_rng(0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    limit = 1.1 if name == "selective" else 0.25
    assert peak < limit * acts.nbytes, f"{peak / acts.nbytes:.2f}× the input"
