"""Property-based bad-input suite (issue "Reliability", "Keep it fixed").

Every public entry point that takes pixels or points gets arrays of arbitrary dtype, byte order,
layout (broadcast rows, negative and zero strides, transposes, steps, unaligned buffers), shape and
values. The invariant: a clear ValueError/TypeError, or exactly the result of the same values given
as a clean, native, C-contiguous array; and the caller's array is never changed.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spectralign_fast as sf
from spectralign_fast.io import downsample

DTYPES = ["uint8", "uint16", ">u2", "int16", "int32", "float32", ">f4", "float64", ">f8", "float16", "bool",
          "complex64"]
LAYOUTS = ["plain", "fortran", "reversed", "step", "broadcast", "unaligned", "transposed", "readonly"]


def _values(draw, shape, dtype: np.dtype, finite: bool) -> np.ndarray:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype.kind == "b":
        return rng.random(shape) > 0.5
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -1000), min(info.max, 60000), shape, endpoint=True).astype(dtype)
    v = rng.normal(0.5, 0.3, shape)
    if dtype.kind == "c":
        return (v + 1j * rng.normal(0, 1, shape)).astype(dtype)
    if not finite:
        v.flat[rng.integers(0, v.size)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return v.astype(dtype)


@st.composite
def images(draw, *, min_side: int = 16, max_side: int = 48, finite_only: bool = False):
    """(array as the caller gives it, the same values as a clean native contiguous array)."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    h = draw(st.integers(min_side, max_side))
    w = draw(st.integers(min_side, max_side))
    finite = finite_only or draw(st.booleans())
    layout = draw(st.sampled_from(LAYOUTS))
    base = _values(draw, (h, w), dtype.newbyteorder("="), finite).astype(dtype)
    if layout == "fortran":
        arr = np.asfortranarray(base)
    elif layout == "reversed":
        arr = np.ascontiguousarray(base[::-1, ::-1])[::-1, ::-1]
    elif layout == "step":
        big = np.repeat(np.repeat(base, 2, axis=0), 3, axis=1)
        arr = big[::2, ::3]
    elif layout == "broadcast":
        arr = np.broadcast_to(base[:1], base.shape)
    elif layout == "unaligned" and dtype.itemsize > 1:
        buf = np.zeros(base.nbytes + 1, np.uint8)
        arr = np.frombuffer(buf.data, dtype=dtype, count=base.size, offset=1).reshape(base.shape)
        buf[1:] = np.frombuffer(base.tobytes(), np.uint8)
    elif layout == "transposed":
        arr = np.ascontiguousarray(base.T).T
    elif layout == "readonly":
        arr = base.copy()
        arr.flags.writeable = False
    else:
        arr = base
    clean = np.ascontiguousarray(np.asarray(arr).astype(dtype.newbyteorder("=")))
    return arr, clean


def _same_outcome(run: Callable[[Any], Any], arr: np.ndarray, clean: np.ndarray, check=None) -> None:
    """run(arr) and run(clean) both raise ValueError/TypeError, or both return equal results;
    arr's bytes are unchanged either way."""
    before = np.array(arr, copy=True)

    def attempt(x):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # e.g. NaN frames, reported by value
            try:
                return "ok", run(x)
            except (ValueError, TypeError) as exc:
                return "error", type(exc)

    got = attempt(arr)
    want = attempt(clean)
    assert got[0] == want[0], (got, want)
    if got[0] == "ok":
        (check or _equal)(got[1], want[1])
    np.testing.assert_array_equal(np.asarray(arr), before, strict=True)


def _equal(a: Any, b: Any) -> None:
    if isinstance(a, tuple):
        for x, y in zip(a, b):
            _equal(x, y)
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# Derandomized: CI runs the same examples every time (a failure reproduces); raise max_examples
# locally (HYPOTHESIS_PROFILE is not needed) to search wider.
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(images())
def test_image(pair):
    arr, clean = pair
    _same_outcome(lambda x: np.asarray(sf.Image(x)), arr, clean)


@SETTINGS
@given(images(min_side=32, max_side=64))
def test_matcher_refine(pair):
    arr, clean = pair

    def run(x):
        m = sf.Matcher(x, clean, stats=True)
        p1, p2, s = m.refine((20.0, 20.0), (21.0, 19.5), 24, iters=2)
        return p1, p2, np.asarray(s.snrs)

    _same_outcome(run, arr, clean)


@SETTINGS
@given(images())
def test_renderer(pair):
    arr, clean = pair
    h, w = clean.shape
    r = sf.Renderer(affine={"a": sf.Affine([[1.0, 0.05, 2.5], [-0.05, 1.0, 1.0]])}, tilesize=(w, h))
    _same_outcome(lambda x: r.render_all({"a": x}), arr, clean)


@SETTINGS
@given(images())
def test_downsample(pair):
    arr, clean = pair
    _same_outcome(lambda x: downsample(x, 3), arr, clean)


@SETTINGS
@given(images(min_side=16, max_side=32), st.integers(1, 4))
def test_crosscorr(pair, nframes):
    arr, clean = pair

    def run(x):
        stack = np.stack([np.asarray(x)] * nframes)
        return sf.CrossCorr(threads=1).fit(stack, iterations=0).toarray()

    _same_outcome(run, arr, clean)


@st.composite
def point_sets(draw):
    n = draw(st.integers(0, 6))
    dtype = np.dtype(draw(st.sampled_from(["float64", ">f8", "float32", "int32", "complex128", "int8"])))
    v = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).uniform(-50, 50, (n, 2))
    if draw(st.booleans()) and n and dtype.kind in "fc":
        v[0, 0] = draw(st.sampled_from([np.nan, np.inf]))
    arr = v.astype(dtype)
    if draw(st.booleans()):
        arr = np.asfortranarray(arr)
    if draw(st.booleans()):
        arr = arr[::-1][::-1]
    return arr, np.ascontiguousarray(arr.astype(dtype.newbyteorder("=")))


@SETTINGS
@given(point_sets(), point_sets())
def test_placement(p, q):
    (a, ca), (b, cb) = p, q
    if len(a) != len(b):
        b, cb = a + 1, ca + 1

    def run(pair):
        x, y = pair
        pl = sf.Placement()
        pl.addmatches("a", "b", x, y)
        return np.asarray(pl.rigid()["b"])

    before = (a.copy(), b.copy())
    got, want = [], []
    for dst, args in ((got, (a, b)), (want, (ca, cb))):
        try:
            dst.append(("ok", run(args)))
        except (ValueError, TypeError) as exc:
            dst.append(("error", type(exc)))
    assert got[0][0] == want[0][0]
    if got[0][0] == "ok":
        np.testing.assert_array_equal(got[0][1], want[0][1])
    np.testing.assert_array_equal(a, before[0])
    np.testing.assert_array_equal(b, before[1])


@pytest.mark.parametrize("bad", [np.empty((0, 5), np.float32), np.zeros((3, 4, 5, 6), np.float32),
                                 np.array([["a", "b"]]), np.zeros((20, 20), object)])
def test_entry_points_refuse_nonsense_plainly(bad):
    for run in (lambda: sf.Image(bad), lambda: sf.Matcher(bad, bad),
                lambda: sf.Renderer(rigid={"a": (0, 0)}, tilesize=(5, 5)).render_all({"a": bad})):
        with pytest.raises((ValueError, TypeError)):
            run()


@SETTINGS
@given(images(), st.sampled_from([0, 1, 3]), st.sampled_from(["constant", "nearest"]))
def test_warp(pair, order, mode):
    arr, clean = pair
    a = np.deg2rad(4.0)
    m = np.array([[np.cos(a), -np.sin(a), 1.5], [np.sin(a), np.cos(a), -0.75], [0.0, 0.0, 1.0]])
    _same_outcome(lambda x: sf.warp(x, m, order=order, mode=mode, threads=2), arr, clean)
