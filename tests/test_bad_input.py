"""Bad input gets a clear error (never a crash, a hang or a silent NaN),
and the caller's data are never modified."""
from __future__ import annotations

import io

import numpy as np
import pytest

import spectralign_fast as sf
from spectralign_fast import Matcher, _core


@pytest.fixture
def pair(camera):
    return camera, np.roll(camera, (1, 2), axis=(0, 1))


def test_image_shape_errors(camera):
    with pytest.raises(ValueError, match="2-D"):
        Matcher(camera[0], camera)
    with pytest.raises(ValueError, match="empty"):
        Matcher(camera, np.zeros((0, 10), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        Matcher(camera, np.zeros((4, 4, 4, 4)))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nonfinite_pixels_rejected(camera, value):
    bad = camera.copy()
    bad[10, 20] = value
    with pytest.raises(ValueError, match="NaN or inf"):
        Matcher(camera, bad)
    with pytest.raises(ValueError, match="NaN or inf"):
        Matcher(bad, camera)


@pytest.mark.parametrize("size, msg", [
    (0, ">= 1"), (-5, ">= 1"), ((64, 0), ">= 1"), (2, "too small"), (1024, "larger than image"),
    ((600, 64), "larger than image"), (3.5, "whole number"), ((1, 2, 3), "pair"),
])
def test_bad_window_sizes(pair, size, msg):
    m = Matcher(*pair)
    with pytest.raises(ValueError, match=msg):
        m.refine((256, 256), (256, 256), size)
    with pytest.raises(ValueError, match=msg):
        m.refine_many([[256, 256]], [[256, 256]], size)


def test_size_type_errors(pair):
    m = Matcher(*pair)
    with pytest.raises(TypeError):
        m.refine((256, 256), (256, 256), "big")
    with pytest.raises(TypeError):
        m.refine((256, 256), (256, 256), True)


def test_integer_arguments_accept_any_whole_real_number():
    """A whole Fraction is an integer argument (as 4.0 is); a fractional one gets the plain-language
    ValueError, not numpy's TypeError (np.isfinite refuses Fractions)."""
    from fractions import Fraction

    from spectralign_fast._validate import as_int

    assert as_int(Fraction(4, 1), "iters") == 4
    assert as_int(np.float64(3.0), "iters") == 3
    with pytest.raises(ValueError, match="whole number"):
        as_int(Fraction(3, 2), "iters")
    with pytest.raises(ValueError, match="whole number"):
        as_int(float("inf"), "iters")


@pytest.mark.parametrize("p", [(np.nan, 3), (1, np.inf), (1, 2, 3), "xy"])
def test_bad_points(pair, p):
    m = Matcher(*pair)
    with pytest.raises((ValueError, TypeError)):
        m.refine(p, (256, 256), 64)


def test_points_far_outside_image(pair):
    m = Matcher(*pair)
    with pytest.raises(ValueError, match="point 1 of pair 0 .* outside the image"):
        m.refine((5000, 256), (256, 256), 64)
    with pytest.raises(ValueError, match="point 2 of pair 1 "):
        m.refine_many([[256, 256], [200, 200]], [[256, 256], [-500, 200]], 64)
    # Partly outside is fine: the missing part is filled with the mean.
    p1, p2 = m.refine((10, 256), (10, 256), 64)
    assert np.all(np.isfinite(p1)) and np.all(np.isfinite(p2))


def test_bad_options(pair):
    m = Matcher(*pair)
    with pytest.raises(ValueError, match="iters"):
        m.refine((256, 256), (256, 256), 64, iters=0)
    with pytest.raises(ValueError, match="tolerance"):
        m.refine((256, 256), (256, 256), 64, tolerance=-1)
    with pytest.raises(ValueError, match="finite"):
        m.refine((256, 256), (256, 256), 64, tolerance=np.nan)
    with pytest.raises(ValueError, match="threads"):
        m.refine_many([[256, 256]], [[256, 256]], 64, threads=-1)
    with pytest.raises(ValueError, match="rad"):
        m.setpeakradius(-1)
    with pytest.raises(ValueError, match="finite"):
        m.setprewhiten(np.nan)
    with pytest.raises(TypeError):
        m.setprewhiten("strong")
    m.setpeakradius(40)
    with pytest.raises(ValueError, match="peak_radius"):
        m.refine((256, 256), (256, 256), 64)


def test_bad_point_arrays(pair):
    m = Matcher(*pair)
    with pytest.raises(ValueError, match="same shape"):
        m.refine_many(np.zeros((3, 2)) + 256, np.zeros((2, 2)) + 256, 64)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        m.refine_many(np.zeros((3, 3)), np.zeros((3, 3)), 64)
    with pytest.raises(ValueError, match="non-finite values in rows \\[1\\]"):
        m.refine_many([[256, 256], [np.nan, 1]], [[256, 256], [1, 1]], 64)
    with pytest.raises(TypeError):
        m.refine_many([["a", "b"]], [[1, 1]], 64)


def test_callers_arrays_are_never_modified(camera):
    a = camera.copy()
    b = np.roll(camera, 3, axis=1).astype(np.float64)  # converted at the boundary
    a0, b0 = a.copy(), b.copy()
    P1 = np.array([[200.0, 200.0], [300.0, 260.0]])
    P2 = P1 + 1
    P10, P20 = P1.copy(), P2.copy()
    p1 = [256.0, 256.0]
    m = Matcher(a, b, stats=True)
    m.refine(p1, p1, 128, iters=3)
    m.refine_many(P1, P2, 96, iters=3, threads=2)
    img = sf.Image(a)
    img.straightwindow((100, 100), 32)
    img.apodized()
    img.stretched()
    sf.Affine.rotator(0.1).apply(img)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)
    np.testing.assert_array_equal(P1, P10)
    np.testing.assert_array_equal(P2, P20)
    assert p1 == [256.0, 256.0]


def test_results_are_finite_for_flat_and_tiny_contrast():
    flat = np.full((128, 128), 0.5, np.float32)
    tiny = flat + np.random.default_rng(0).normal(0, 1e-9, flat.shape).astype(np.float32)
    for img in (flat, tiny):
        m = Matcher(img, img, stats=True)
        p1, p2, st = m.refine((64, 64), (64, 64), 64, iters=2)
        assert np.all(np.isfinite(p1)) and np.isfinite(st.snr) and st.snr == 0


def test_huge_values_do_not_overflow(camera):
    big = (camera * 3e30).astype(np.float32)
    p1, p2 = Matcher(big, np.roll(big, 2, axis=1)).refine((256, 256), (256, 256), 128, iters=3)
    np.testing.assert_allclose(p2 - p1, [2, 0], atol=0.05)


def test_config_and_fft_planning():
    buf = io.StringIO()
    sf.show_config(file=buf)
    text = buf.getvalue()
    assert "fftw-3" in text and "default_threads" in text
    cfg = sf.config()
    assert cfg["default_threads"] >= 1 and cfg["fftw_source"]
    with pytest.raises(ValueError, match="estimate"):
        sf.set_fft_planning("fastest")
    with pytest.raises(TypeError):
        sf.set_fft_planning(3)
    old = cfg["fft_planning"]
    try:
        sf.set_fft_planning("estimate")
        assert sf.config()["fft_planning"] == "estimate"
        before = _core.config.cached_plan_count()
        rng = np.random.default_rng(0)
        Matcher(rng.random((80, 80)), rng.random((80, 80))).refine((40, 40), (40, 40), 37)
        made = _core.config.cached_plan_count()
        assert made > before  # plans for the new shape
        Matcher(rng.random((90, 90)), rng.random((90, 90))).refine((45, 45), (45, 45), 37, iters=3)
        assert _core.config.cached_plan_count() == made  # cached: none made again
    finally:
        sf.set_fft_planning(old)
