"""CrossCorr(refine="intensity") (issue 21): rigid drift on a photograph, made once
by cubic-spline interpolation and once by pixel-area integration (an upsampled photograph
shifted by whole fine pixels and block-averaged), recovered to 0.03 px or better with the
true reference and with the default re-estimated mean; threads bit-identical; the
fallback; NaN frames; caller arrays untouched; the integer-shift copy path of transform;
an independent NumPy oracle of the Gauss-Newton fixed point."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage as ndi

import spectralign_fast as sf
from spectralign_fast import _core

NOISE = 0.02  # of the photograph's range


def smooth_drift(n: int, amplitude: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    walk = ndi.gaussian_filter1d(rng.standard_normal((n, 2)).cumsum(axis=0), 3, axis=0)
    walk -= walk.mean(axis=0)
    return walk * (amplitude / np.abs(walk).max())


def cubic_movie(photo: np.ndarray, shifts: np.ndarray, size: int, seed: int):
    """Frames ``photo`` shifted by cubic-spline interpolation (scipy order 3) and cropped
    (content enters at the edges), noise 2% of the range; (frames, true reference)."""
    m = int(np.abs(shifts).max()) + 6
    y0 = (photo.shape[0] - size) // 2
    x0 = (photo.shape[1] - size) // 2
    big = photo[y0 - m:y0 + size + m, x0 - m:x0 + size + m].astype(np.float64)
    coef = ndi.spline_filter(big, order=3)
    frames = np.array([ndi.shift(coef, d, order=3, prefilter=False, mode="nearest")[m:m + size, m:m + size]
                       for d in shifts])
    rng = np.random.default_rng(seed)
    frames += rng.normal(0, NOISE * np.ptp(big), frames.shape)
    return frames.astype(np.float32), big[m:m + size, m:m + size].astype(np.float32)


def _area_matrix(width: int, size: int, margin: int, k: int, shift: int) -> np.ndarray:
    """(size, width): zoom by k (cubic spline), move by `shift` fine pixels, average k."""
    zoom = ndi.zoom(np.eye(width), (k, 1), order=3, mode="nearest", grid_mode=True)
    idx = (margin + np.arange(size))[:, None] * k - shift + np.arange(k)[None]
    return zoom[idx].mean(axis=1)


def area_movie(photo: np.ndarray, shifts: np.ndarray, size: int, seed: int, k: int = 8):
    """Frames integrating pixel areas: the photograph upsampled k times, moved by whole
    fine pixels, block-averaged; (frames, true reference, true shifts = round(k d) / k)."""
    m = int(np.abs(shifts).max()) + 6
    width = size + 2 * m
    y0 = (photo.shape[0] - width) // 2
    x0 = (photo.shape[1] - width) // 2
    big = photo[y0:y0 + width, x0:x0 + width].astype(np.float64)
    fine = np.round(np.asarray(shifts) * k).astype(int)
    frames = np.array([_area_matrix(width, size, m, k, dy) @ big @ _area_matrix(width, size, m, k, dx).T
                       for dy, dx in fine])
    a0 = _area_matrix(width, size, m, k, 0)
    rng = np.random.default_rng(seed)
    frames += rng.normal(0, NOISE * np.ptp(big), frames.shape)
    return frames.astype(np.float32), (a0 @ big @ a0.T).astype(np.float32), fine / k


def mean_error(deltas: np.ndarray, truth: np.ndarray, common: bool = False) -> float:
    err = deltas - truth
    if common:  # a mean reference sits at the mean position: remove the common offset
        err = err - err.mean(axis=0)
    return float(np.abs(err).mean())


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    from conftest import grey
    return grey(data.astronaut())


@pytest.fixture(scope="module")
def movies(retina):
    shifts = smooth_drift(24, 8.0, seed=3)
    cubic = cubic_movie(retina, shifts, 192, seed=4) + (shifts,)
    area = area_movie(retina, shifts, 192, seed=5)
    return {"cubic": cubic, "area": area}


# --- accuracy ------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["cubic", "area"])
def test_true_reference_recovered_to_003px(movies, variant):
    frames, ref, truth = movies[variant]
    refined = sf.CrossCorr(threads=2).fit(frames, ref).toarray()
    fft = sf.CrossCorr(refine=None, threads=2).fit(frames, ref).toarray()
    assert mean_error(refined, truth) <= 0.03
    # ... and better than the FFT estimate it starts from.
    assert mean_error(refined, truth) < 0.5 * mean_error(fft, truth)


@pytest.mark.parametrize("variant", ["cubic", "area"])
def test_mean_reference_recovered_to_003px(movies, variant):
    frames, _, truth = movies[variant]
    refined = sf.CrossCorr(threads=2).fit(frames).toarray()
    assert mean_error(refined, truth, common=True) <= 0.03


def test_gain_and_offset_do_not_bias(movies):
    frames, ref, truth = movies["cubic"]
    dimmer = frames * np.linspace(0.6, 1.0, len(frames), dtype=np.float32)[:, None, None] + 0.3
    d = sf.CrossCorr(threads=2).fit(dimmer, ref).toarray()
    assert mean_error(d, truth) <= 0.03


def test_volumes_refined(retina):
    """3-D frames: a volume of photograph crops shifted by a cubic spline, refined to
    0.03 px and better than the FFT estimate."""
    rng = np.random.default_rng(0)
    offs = np.cumsum(rng.integers(-3, 4, (40, 2)), axis=0) + 600
    vol = ndi.gaussian_filter(np.stack([retina[o0:o0 + 64, o1:o1 + 64] for o0, o1 in offs]), (0.7, 0, 0))
    shifts = rng.uniform(-2, 2, (4, 3))
    coef = ndi.spline_filter(vol.astype(np.float64), order=3)
    c = (slice(6, 34), slice(6, 58), slice(6, 58))
    frames = np.array([ndi.shift(coef, d, order=3, prefilter=False, mode="nearest")[c] for d in shifts])
    frames = (frames + rng.normal(0, NOISE * np.ptp(vol), frames.shape)).astype(np.float32)
    ref = vol[c].astype(np.float32)
    refined = sf.CrossCorr(threads=2).fit(frames, ref).toarray()
    fft = sf.CrossCorr(refine=None, threads=2).fit(frames, ref).toarray()
    assert mean_error(refined, shifts) <= 0.03
    assert mean_error(refined, shifts) < 0.5 * mean_error(fft, shifts)


def test_axis_mode_refines_planes(astronaut):
    vol = np.stack([astronaut[100 + 3 * z:196 + 3 * z, 150:246] for z in range(6)]).astype(np.float32)
    frames = np.array([np.stack([ndi.shift(p, (0.3 * z, -0.7), order=3, mode="nearest") for z, p in enumerate(vol)])
                       for _ in range(2)]).astype(np.float32)
    d = sf.CrossCorr(axis=0, threads=2).fit(frames, vol).toarray()
    assert d.shape == (2, 6, 2)
    truth = np.array([[0.3 * z, -0.7] for z in range(6)])
    assert np.abs(d - truth).max() < 0.05


# --- determinism, fallback, options ----------------------------------------------------------


def test_threads_bit_identical(movies):
    frames, ref, _ = movies["area"]
    one = sf.CrossCorr(threads=1).fit(frames, ref).toarray()
    two = sf.CrossCorr(threads=2).fit(frames, ref).toarray()
    np.testing.assert_array_equal(one, two)
    one = sf.CrossCorr(threads=1).fit(frames[:8]).toarray()
    two = sf.CrossCorr(threads=2).fit(frames[:8]).toarray()
    np.testing.assert_array_equal(one, two)


def test_fallback_keeps_the_fft_estimate(movies):
    """A reference region too small for the refinement (status 3): the FFT estimate,
    bit for bit; the same frames with a usable region are refined (status 0)."""
    frames, ref, _ = movies["cubic"]
    refs = ref[None]
    plain = _core.stackreg.StackRegCore(refs, -0.65, True, [])
    d_fft, s_fft = plain.fit(frames, 0, 1)
    tiny = _core.stackreg.StackRegCore(refs, -0.65, True, [], True, [90, 90, 95, 95])
    d_kept, s_kept = tiny.fit(frames, 0, 1)
    np.testing.assert_array_equal(d_kept, d_fft)
    assert np.all(s_kept == 3) and np.all(s_fft == 0)
    full = _core.stackreg.StackRegCore(refs, -0.65, True, [], True, [])
    d_ref, s_ref = full.fit(frames, 0, 1)
    assert np.all(s_ref == 0) and not np.array_equal(d_ref, d_fft)


def test_thin_volumes_keep_the_fft_estimate(astronaut):
    vol = np.stack([astronaut[100 + z:164 + z, 150:214] for z in range(6)]).astype(np.float32)
    frames = np.array([ndi.shift(vol, (0, 0.4, -1.2), order=3, mode="nearest")]).astype(np.float32)
    core = _core.stackreg.StackRegCore(vol[None], -0.65, True, [], True, [])
    d, s = core.fit(frames, 0, 1)
    assert s[0] == 3
    np.testing.assert_array_equal(d, _core.stackreg.StackRegCore(vol[None], -0.65, True, []).fit(frames, 0, 1)[0])


def test_subpixel_false_never_refines(movies):
    frames, ref, _ = movies["cubic"]
    d = sf.CrossCorr(subpixel=False, threads=2).fit(frames, ref).toarray()
    np.testing.assert_array_equal(d, np.round(d))


@pytest.mark.parametrize("bad, err", [("gn", ValueError), ("Intensity", ValueError), ("", ValueError),
                                      (1, TypeError), (True, TypeError)])
def test_bad_refine_values(bad, err):
    with pytest.raises(err, match="refine"):
        sf.CrossCorr(refine=bad)


def test_refine_is_keyword_only():
    with pytest.raises(TypeError):
        sf.CrossCorr(None, True, -0.65, None, "intensity")  # type: ignore[misc]
    assert "refine='intensity'" in repr(sf.CrossCorr())
    assert "refine=None" in repr(sf.CrossCorr(refine=None))


def test_bad_reference_box_is_rejected(movies):
    _, ref, _ = movies["cubic"]
    with pytest.raises(ValueError, match="reference_box"):
        _core.stackreg.StackRegCore(ref[None], -0.65, True, [], True, [1, 2, 3])


# --- NaN frames, caller arrays ------------------------------------------------------------------


def test_nan_frames_get_nan_with_warning(movies):
    frames, ref, truth = movies["cubic"]
    bad = frames[:6].copy()
    bad[2, 5, 5] = np.nan
    with pytest.warns(RuntimeWarning, match="NaN or inf"):
        d = sf.CrossCorr(threads=2).fit(bad, ref).toarray()
    assert np.all(np.isnan(d[2])) and np.all(np.isfinite(np.delete(d, 2, axis=0)))
    with pytest.warns(RuntimeWarning, match="NaN or inf"):
        d = sf.CrossCorr(threads=2).fit(bad).toarray()
    assert np.all(np.isnan(d[2]))


def test_caller_arrays_and_memmaps_untouched(movies, tmp_path):
    frames, ref, _ = movies["area"]
    mm = np.lib.format.open_memmap(tmp_path / "f.npy", mode="w+", dtype=np.float32, shape=frames.shape)
    mm[...] = frames
    mm.flush()
    ro = np.load(tmp_path / "f.npy", mmap_mode="r")
    before, ref_before = frames.copy(), ref.copy()
    m = sf.CrossCorr(threads=2).fit(ro, ref, batch=5)
    m.transform(ro, batch=5)
    sf.CrossCorr(threads=2).fit(frames)
    np.testing.assert_array_equal(frames, before)
    np.testing.assert_array_equal(ref, ref_before)
    np.testing.assert_array_equal(np.load(tmp_path / "f.npy"), before)
    np.testing.assert_array_equal(m.toarray(), sf.CrossCorr(threads=2).fit(frames, ref).toarray())


# --- transform: integer copy path ---------------------------------------------------------------


def clamped_shift(frames: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """NumPy oracle: out[k][x] = frames[k][clamp(x + d_k)]."""
    out = np.empty_like(frames)
    for k, (f, d) in enumerate(zip(frames, deltas)):
        idx = np.ix_(*[np.clip(np.arange(n) + int(dd), 0, n - 1) for n, dd in zip(f.shape, d)])
        out[k] = f[idx]
    return out


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.uint8, np.float64])
def test_integer_transform_copies_pixels(camera, dtype):
    rng = np.random.default_rng(1)
    frames = (np.stack([camera[:96, :128], camera[50:146, 60:188], camera[200:296, 10:138]]) * 200).astype(dtype)
    deltas = rng.integers(-12, 13, (3, 2)).astype(np.float64)
    model = sf.RegistrationModel._from_arrays(deltas, None, "test", 1)
    out = model.transform(frames)
    assert out.dtype == frames.dtype
    np.testing.assert_array_equal(out, clamped_shift(frames, deltas))
    # the float path (e.g. one frame fractional) agrees on the integer frames
    mixed = deltas.copy()
    mixed[0] += 0.5
    out_mixed = sf.RegistrationModel._from_arrays(mixed, None, "test", 1).transform(frames)
    np.testing.assert_array_equal(out_mixed[1:], out[1:])


def test_integer_transform_volumes_nan_and_out(astronaut):
    vol = np.stack([astronaut[100 + z:140 + z, 150:190] for z in range(10)])
    frames = (np.stack([vol, vol[::-1]]) * 1000).astype(np.uint16)
    deltas = np.array([[1.0, -3.0, 4.0], [np.nan, np.nan, np.nan]])
    model = sf.RegistrationModel._from_arrays(deltas, None, "test", 2)
    out = np.empty_like(frames)
    with pytest.warns(RuntimeWarning, match="unshifted"):
        res = model.transform(frames, out=out)
    assert res is out
    np.testing.assert_array_equal(out[0], clamped_shift(frames[:1], deltas[:1])[0])
    np.testing.assert_array_equal(out[1], frames[1])


def test_integer_transform_threads_identical(camera):
    frames = (np.stack([camera[i:i + 64, 2 * i:2 * i + 80] for i in range(6)]) * 1000).astype(np.uint16)
    deltas = np.array([[i - 3.0, 2.0 * i - 5.0] for i in range(6)])
    one = sf.RegistrationModel._from_arrays(deltas, None, "test", 1).transform(frames)
    two = sf.RegistrationModel._from_arrays(deltas, None, "test", 2).transform(frames)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, clamped_shift(frames, deltas))


def test_integer_copy_core_rejects_fractions(camera):
    with pytest.raises(ValueError, match="whole-number"):
        _core.stackreg.shift_frames_integer(camera[None, :16, :16].copy(), np.array([[0.5, 0.0]]), 1)


# --- NumPy oracle of the Gauss-Newton fixed point ------------------------------------------------

_POLE = np.sqrt(3.0) - 2.0


def _bspline3(x, derivative=False):
    a = np.abs(x)
    if derivative:
        return np.sign(x) * np.where(a < 1, -2 * a + 1.5 * a * a, np.where(a < 2, -0.5 * (2 - a) ** 2, 0.0))
    return np.where(a < 1, 2 / 3 - a * a + a ** 3 / 2, np.where(a < 2, (2 - a) ** 3 / 6, 0.0))


def _cardinal(x, derivative=False):
    k = np.arange(-20, 21)
    c = -6 * _POLE / (1 - _POLE ** 2) * _POLE ** np.abs(k)
    return (c * _bspline3(np.asarray(x, dtype=np.float64)[..., None] - k, derivative)).sum(-1)


def _oracle_shift(a, d, axis):
    base = int(np.floor(d)) - 3
    w = _cardinal(np.arange(-3, 5) - (d - np.floor(d)))
    w /= w.sum()
    idx = np.arange(a.shape[axis])
    return sum(wj * np.take(a, np.clip(idx + base + j, 0, a.shape[axis] - 1), axis=axis) for j, wj in enumerate(w))


def oracle_refine(frame, ref, d0, iterations=8):
    """Gauss-Newton on sum (F(x + d) - gain R - offset)^2 in float64, 8-tap cardinal spline,
    spline-derivative gradients, the C++ interior rule (d0 +- 1 px, taps, 4 px reference border)."""
    f, r = frame.astype(np.float64), ref.astype(np.float64)
    r = (r - r.mean()) / r.std()
    js = np.arange(-4, 5)
    dw = _cardinal(-js.astype(float), derivative=True)
    grads = [sum(w * np.take(r, np.clip(np.arange(n) + j, 0, n - 1), axis=a) for j, w in zip(js, dw))
             for a, n in enumerate(r.shape)]
    box = tuple(slice(max(4, int(np.ceil(-(d - 1))) + 4), min(n - 4, int(np.floor(n - 1 - (d + 1))) - 4))
                for d, n in zip(d0, r.shape))
    d = np.array(d0, dtype=np.float64)
    for _ in range(iterations):
        fw = _oracle_shift(_oracle_shift(f, d[0], 0), d[1], 1)[box]
        R = r[box]
        A = np.stack([R.ravel(), np.ones(R.size)], 1)
        gain, offset = np.linalg.lstsq(A, fw.ravel(), rcond=None)[0]
        J = np.stack([gain * grads[0][box].ravel(), gain * grads[1][box].ravel(), R.ravel(), np.ones(R.size)], 1)
        p = np.linalg.lstsq(J, (fw - gain * R - offset).ravel(), rcond=None)[0]
        d = d - p[:2]
    return d


def test_gauss_newton_matches_numpy_oracle(movies):
    frames, ref, truth = movies["area"]
    fft = sf.CrossCorr(refine=None, threads=1).fit(frames[:3], ref).toarray()
    refined = sf.CrossCorr(threads=1).fit(frames[:3], ref).toarray()
    oracle = np.array([oracle_refine(f, ref, d) for f, d in zip(frames[:3], fft)])
    np.testing.assert_allclose(refined, oracle, atol=2e-3)
    assert mean_error(oracle, truth[:3]) <= 0.03


def test_default_fit_does_not_warn(movies):
    frames, ref, _ = movies["cubic"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sf.CrossCorr(threads=2).fit(frames[:4], ref)
