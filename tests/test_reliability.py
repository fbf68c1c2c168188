"""Regression tests for the audit in the issue "Reliability" (findings named in each test)."""
from __future__ import annotations

import numpy as np
import pytest

import spectralign_fast as sf
from spectralign_fast.synthetic import photograph


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return (photograph("retina")[:512, :512].astype(np.float32) / 65535).astype(np.float32)


# --- 1: arrays whose rows overlap or repeat (broadcast, sliding windows) -------------------------

@pytest.mark.parametrize("make", [
    lambda: np.broadcast_to(np.linspace(0, 1, 256, dtype=np.float32), (256, 256)),
    lambda: np.lib.stride_tricks.sliding_window_view(np.linspace(0, 1, 511, dtype=np.float32), 256)[:256],
    lambda: np.lib.stride_tricks.as_strided(np.linspace(0, 1, 600, dtype=np.float32), (256, 256), (4, 4)),
])
def test_overlapping_rows_render_as_their_contiguous_copy(make):
    tile = make()
    r = sf.Renderer(rigid={"a": (0, 0)}, tilesize=(256, 256))
    out = r.render_all({"a": tile})
    np.testing.assert_array_equal(out, r.render_all({"a": np.ascontiguousarray(tile)}))
    np.testing.assert_allclose(out, tile, rtol=1e-6)


# --- 6: big-endian input is the same image ----------------------------------------------------

def test_big_endian_is_a_detail(photo, tmp_path):
    u16 = np.rint(photo * 65535).astype(np.uint16)
    be = u16.astype(">u2")
    np.testing.assert_array_equal(sf.Image(be), sf.Image(u16))
    assert float(np.max(sf.Image(be))) <= 1.0
    r = sf.Renderer(rigid={"a": (0, 0)}, tilesize=(512, 512))
    np.testing.assert_array_equal(r.render_all({"a": be}), r.render_all({"a": u16}))
    f32 = photo.astype(">f4")
    np.testing.assert_array_equal(r.render_all({"a": f32}), r.render_all({"a": photo}))
    tiles = {(0, 0): be[:, :300], (0, 1): be[:, 212:]}
    res = sf.montage(tiles, overlap=0.17, progress=False, model="rigid")
    assert res.image.dtype == np.uint16
    native = sf.montage({k: v.astype(np.uint16) for k, v in tiles.items()}, overlap=0.17, progress=False,
                        model="rigid")
    np.testing.assert_array_equal(res.image, native.image)


# --- 7: the matcher owns what it validated --------------------------------------------------

def test_matcher_does_not_see_later_changes(photo):
    a = photo.copy()
    b = np.roll(photo, (3, -2), axis=(0, 1)).copy()
    m = sf.Matcher(a, b, stats=True)
    p1, p2, st = m.refine((256, 256), (256, 256), 128)
    a[:] = np.nan
    b[:] = 0
    q1, q2, st2 = m.refine((256, 256), (256, 256), 128)
    np.testing.assert_array_equal(q1, p1)
    np.testing.assert_array_equal(q2, p2)
    assert st2.snr == st.snr > 5
    assert np.isnan(a).all()  # the caller's array is the caller's


def test_matcher_pixels_are_read_only(photo):
    m = sf.Matcher(photo, photo)
    with pytest.raises(ValueError):
        m.img1[0, 0] = 5
    ro = photo.copy()
    ro.flags.writeable = False
    assert np.shares_memory(sf.Matcher(ro, ro).img1, ro)  # read-only input is kept as it is


# --- 9: whitening exponent within the method's range -----------------------------------------

@pytest.mark.parametrize("bad", [1e30, -5, 0.5, float("nan")])
def test_setprewhiten_refuses_exponents_outside_the_method(photo, bad):
    m = sf.Matcher(photo, photo)
    with pytest.raises(ValueError):
        m.setprewhiten(bad)
    m.setprewhiten(-1)
    m.setprewhiten(0)


# --- smaller items: complex numbers are refused, not truncated ---------------------------

@pytest.mark.parametrize("call", [
    lambda: sf.Affine(np.eye(3, dtype=complex)[:2]),
    lambda: sf.Affine() * np.array([1 + 1j, 2]),
    lambda: sf.Placement().addmatches("a", "b", np.ones((3, 2), complex), np.ones((3, 2))),
    lambda: sf.Renderer(rigid={"a": np.array([1j, 0])}, tilesize=(16, 16)),
    lambda: sf.AffineTransform(np.eye(3, dtype=complex)),
])
def test_complex_numbers_are_refused(call):
    with pytest.raises(TypeError, match="complex"):
        call()


# --- smaller items: every option checked before any work; integers that C++ cannot take ----------

@pytest.mark.parametrize("kwargs, match", [
    (dict(chunk=0), "chunk"), (dict(chunk=-5), "chunk"), (dict(blend=-1), "blend"),
    (dict(interpolation="lanczos"), "interpolation"), (dict(iters=10**9), "iters"),
    (dict(threads=2**31), "threads"), (dict(fine_size=2**31), "fine_size"),
])
def test_montage_options_fail_before_any_matching(kwargs, match):
    calls = []

    def tile():
        calls.append(1)
        return np.zeros((64, 64), np.float32)

    with pytest.raises(ValueError, match=match):
        sf.montage({(0, 0): tile, (0, 1): tile}, progress=False, **kwargs)
    assert not calls  # no tile was even read


@pytest.mark.parametrize("call, match", [
    (lambda m: m.setpeakradius(2**31 - 1), "rad"),
    (lambda m: m.refine((50, 50), (50, 50), 2**31), "size"),
    (lambda m: m.refine((50, 50), (50, 50), 32, iters=10**9), "iters"),
    (lambda m: m.refine_many(np.full((2, 2), 50.0), np.full((2, 2), 50.0), 32, threads=2**40), "threads"),
])
def test_huge_integers_get_plain_errors(photo, call, match):
    m = sf.Matcher(photo, photo)
    with pytest.raises(ValueError, match=match):
        call(m)


# --- 4: placements the matches cannot determine ------------------------------------------------

def test_affine_with_too_few_points_is_refused_by_every_solver():
    pl = sf.Placement()
    pl.addmatches("a", "b", [[10.0, 10.0], [200.0, 12.0]], [[0.0, 10.0], [190.0, 12.0]])
    for solver in ("auto", "ldlt", "cg"):
        with pytest.raises(ValueError, match="three that are not on one line"):
            pl.affine(solver=solver)
    assert pl.underdetermined("affine") == ["a", "b"]
    assert pl.underdetermined("similarity") == []
    pl.similarity()  # two distinct points fix a similarity
    collinear = sf.Placement()
    line = np.column_stack([np.linspace(0, 200, 7), np.full(7, 50.0)])
    collinear.addmatches("a", "b", line, line - [10, 0])
    with pytest.raises(ValueError, match="not on one line"):
        collinear.affine(solver="cg")


def test_montage_falls_back_instead_of_returning_garbage():
    from spectralign_fast.synthetic import grid_tiles, registration_error

    tiles, truth = grid_tiles(photograph("retina"), 2, 2, tile=256, seed=1)
    # Before: an affine fitted exactly to too few points, "residual RMS 0.000" and 11.2 px off.
    with pytest.warns(RuntimeWarning, match="too few matched points for a affine"):
        res = sf.montage(tiles, overlap=0.15, progress=False, render=False)
    assert res.model in ("similarity", "rigid")  # what was used, reported in the result
    assert res.residuals.rms > 1e-3  # no longer a fit with nothing left over
    err = registration_error(res.transforms, truth, res.tile_sizes)
    assert err["rms"] < 11.0, err  # this grid's ~20 px overlaps give few, poor matches: see the note


# --- 3: float-to-int overflow in window extraction -----------------------------------------

@pytest.mark.parametrize("call", [
    lambda im: im.transformedwindow((128, 128), [[1e300, 0], [0, 1e300]], 16),
    lambda im: im.transformedwindow((1e300, 128), None, 16),
    lambda im: im.straightwindow((1e300, -1e300), 16),
])
def test_window_positions_beyond_the_integers_are_refused(photo, call):
    with pytest.raises(ValueError, match="2\\*\\*30"):
        call(sf.Image(photo))
