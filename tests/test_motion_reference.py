"""CrossCorr's mean reference (issue 21): the seed frames, the fused registered mean
(``_core.stackreg.accumulate_shifted``), the refinement from given starts
(``StackRegCore.refine``) and the whole default pipeline on a noisy drifting movie."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage

import spectralign_fast as sf
from spectralign_fast import _core
from spectralign_fast.register.motion_reference import seed_frames, spread_indices


def noisy_movie(photo: np.ndarray, n: int = 120, size: int = 160, noise: float = 0.25, seed: int = 4):
    """Frames of ``photo`` moved by a smooth random drift (cubic spline, SciPy), plus noise
    ``noise`` x the image's spread (a noisy calcium-imaging-like movie). Returns (frames,
    truth (dy, dx) per frame)."""
    rng = np.random.default_rng(seed)
    walk = ndimage.gaussian_filter1d(rng.standard_normal((n, 2)).cumsum(axis=0), 4.0, axis=0)
    walk -= walk.mean(axis=0)
    walk *= 8.0 / np.abs(walk).max(axis=0)
    pad = 16
    y0, x0 = 560, 170
    big = photo[y0 - pad:y0 + size + pad, x0 - pad:x0 + size + pad].astype(np.float64)
    coeffs = ndimage.spline_filter(big, order=3)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    frames = np.empty((n, size, size), np.float32)
    for i, (dy, dx) in enumerate(walk):
        frames[i] = ndimage.map_coordinates(coeffs, [rows + pad - dy, cols + pad - dx], order=3, prefilter=False)
    frames += rng.normal(0, noise * float(big.std()), frames.shape).astype(np.float32)
    return frames, walk


def relative_errors(d: np.ndarray, truth: np.ndarray) -> np.ndarray:
    e = d - truth
    e = e - e.mean(axis=0)
    return np.hypot(e[:, 0], e[:, 1])


# --- accumulate_shifted ------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 37, 53), (4, 9, 21, 16)])
def test_accumulate_shifted_sums_shift_frames_exactly(shape):
    rng = np.random.default_rng(1)
    frames = rng.random(shape, dtype=np.float32) * 100
    rank = len(shape) - 1
    deltas = rng.uniform(-6, 6, (shape[0], rank))
    deltas[1] = np.round(deltas[1])          # whole-pixel shifts take shift_frames' copy path
    deltas[2, 0] = np.nan                    # skipped
    shifted = _core.stackreg.shift_frames(frames, deltas, "linear", 1)
    oracle = np.zeros(shape[1:])
    for k in range(shape[0]):
        if np.all(np.isfinite(deltas[k])):
            oracle += shifted[k].astype(np.float64)
    for threads in (1, 2):
        total = np.zeros(shape[1:])
        _core.stackreg.accumulate_shifted(frames, deltas, threads, total)
        np.testing.assert_array_equal(total, oracle)
    # It adds to what the sum holds.
    total = np.ones(shape[1:])
    _core.stackreg.accumulate_shifted(frames, deltas, 1, total)
    np.testing.assert_array_equal(total - 1.0, oracle)


def test_accumulate_shifted_bad_input():
    frames = np.zeros((2, 8, 8), np.float32)
    deltas = np.zeros((2, 2))
    with pytest.raises(ValueError, match="float64"):
        _core.stackreg.accumulate_shifted(frames, deltas, 1, np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="shape"):
        _core.stackreg.accumulate_shifted(frames, deltas, 1, np.zeros((8, 9)))
    with pytest.raises(ValueError, match="deltas"):
        _core.stackreg.accumulate_shifted(frames, np.zeros((3, 2)), 1, np.zeros((8, 8)))
    with pytest.raises(ValueError, match="writeable"):
        ro = np.zeros((8, 8))
        ro.flags.writeable = False
        _core.stackreg.accumulate_shifted(frames, deltas, 1, ro)


# --- StackRegCore.refine -------------------------------------------------------------------


def test_refine_from_the_fft_estimate_equals_fit(retina):
    frames, _ = noisy_movie(retina, n=12, size=128, noise=0.05)
    ref = frames.mean(axis=0)
    fft_core = _core.stackreg.StackRegCore(ref[None], -0.65, True, [])
    both = _core.stackreg.StackRegCore(ref[None], -0.65, True, [], True)
    start, _ = fft_core.fit(frames, 0, 1)
    expected, expected_status = both.fit(frames, 0, 1)
    for threads in (1, 2):
        got, status = both.refine(frames, start, 0, threads)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(status, expected_status)
    np.testing.assert_array_equal(start, fft_core.fit(frames, 0, 1)[0])  # the start is not modified


def test_refine_statuses_and_bad_input(retina):
    frames, _ = noisy_movie(retina, n=4, size=96, noise=0.05)
    frames[1, 3, 3] = np.nan
    frames[2] = 7.0
    core = _core.stackreg.StackRegCore(frames[0][None], -0.65, True, [], True)
    start = np.zeros((4, 2))
    start[3] = np.nan
    d, status = core.refine(frames, start, 0, 1)
    assert list(status[1:]) == [1, 2, 1]
    assert np.all(np.isnan(d[1])) and np.all(d[2] == 0) and np.all(np.isnan(d[3]))
    with pytest.raises(ValueError, match="refine=True"):
        _core.stackreg.StackRegCore(frames[0][None], -0.65, True, []).refine(frames, start, 0, 1)
    with pytest.raises(ValueError, match="start"):
        core.refine(frames, np.zeros((3, 2)), 0, 1)


# --- the seed -----------------------------------------------------------------------------


def test_seed_frames_against_numpy_oracle():
    rng = np.random.default_rng(3)
    base = rng.random((5, 400)).astype(np.float32)
    # 30 frames: noisy copies of five patterns; pattern 2 has the most (and least noisy) copies.
    labels = np.array([0] * 4 + [1] * 5 + [2] * 12 + [3] * 5 + [4] * 4)
    noise = np.where(labels == 2, 0.05, 0.3)[:, None]
    frames = (base[labels] + noise * rng.standard_normal((30, 400))).astype(np.float32)
    corr = np.corrcoef(frames.astype(np.float64))
    nearest = np.argsort(-corr, axis=1, kind="stable")[:, :10]
    best = np.argmax(np.take_along_axis(corr, nearest, axis=1).mean(axis=1))
    got = seed_frames(frames, 10)
    np.testing.assert_array_equal(got, np.sort(nearest[best]))
    assert set(labels[got]) == {2}
    # A constant frame is never chosen; fewer frames than asked for gives them all.
    frames[5] = 1.0
    assert 5 not in seed_frames(frames, 10)
    np.testing.assert_array_equal(seed_frames(frames[:3], 10), [0, 1, 2])


def test_spread_indices():
    np.testing.assert_array_equal(spread_indices(np.arange(10), 4), [0, 3, 6, 9])
    np.testing.assert_array_equal(spread_indices(np.array([2, 5, 7]), 4), [2, 5, 7])


# --- the default pipeline -----------------------------------------------------------------


# The movies below are small (160 x 160) crops of smooth content, where whitened
# correlation without a taper locks onto the crop edges (see the taper tests at the end).


def test_default_mean_reference_on_a_noisy_movie(retina, tmp_path):
    # Noise 0.25 x the image's spread: one frame as the first reference leaves frames
    # 1 px off; the mean of the frames that look most alike does not.
    frames, truth = noisy_movie(retina)
    cc = sf.CrossCorr(threads=1)
    model = cc.fit(frames)
    err = relative_errors(model.toarray(), truth)
    assert np.sqrt(np.mean(err**2)) < 0.06, err
    assert err.max() < 0.2, err.max()
    np.testing.assert_array_equal(sf.CrossCorr(threads=2).fit(frames).toarray(), model.toarray())
    # Read batch by batch from a memmap: the same numbers.
    path = tmp_path / "movie.npy"
    np.save(path, frames)
    mm = np.load(path, mmap_mode="r")
    np.testing.assert_array_equal(cc.fit(mm, batch=7).toarray(), model.toarray())
    # More iterations stay as accurate; the plain mean of all frames (thunder's) does not.
    err2 = relative_errors(cc.fit(frames, iterations=2).toarray(), truth)
    assert np.sqrt(np.mean(err2**2)) < 0.06
    err0 = relative_errors(cc.fit(frames, iterations=0).toarray(), truth)
    assert np.sqrt(np.mean(err0**2)) > 10 * np.sqrt(np.mean(err**2))
    # refine=None: the FFT estimates against the same mean.
    err_fft = relative_errors(sf.CrossCorr(refine=None, threads=1).fit(frames).toarray(), truth)
    assert np.sqrt(np.mean(err_fft**2)) < 0.6
    # Plain correlation (whiten=0, no taper) through the same pipeline.
    err_plain = relative_errors(sf.CrossCorr(whiten=0, threads=1).fit(frames).toarray(), truth)
    assert err_plain.max() < 0.2


def test_default_mean_reference_leaves_nan_frames_out(retina):
    frames, truth = noisy_movie(retina, n=60, noise=0.1)
    frames[[5, 31]] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = sf.CrossCorr(threads=1).fit(frames).toarray()
    assert any("2 frame(s) contain NaN" in str(w.message) for w in caught)
    assert np.all(np.isnan(d[[5, 31]]))
    good = np.setdiff1d(np.arange(60), [5, 31])
    assert relative_errors(d[good], truth[good]).max() < 0.1


def test_given_reference_with_iterations_builds_a_mean(retina):
    # iterations >= 1 with a reference: registered to it first, then refined against the
    # mean of the registered frames, which averages the given frame's noise out.
    frames, truth = noisy_movie(retina, n=40, noise=0.25)
    cc = sf.CrossCorr(threads=1)
    alone = relative_errors(cc.fit(frames, frames[0]).toarray(), truth)
    meaned = relative_errors(cc.fit(frames, frames[0], iterations=1).toarray(), truth)
    assert np.sqrt(np.mean(meaned**2)) < 0.5 * np.sqrt(np.mean(alone**2))


# --- the taper ------------------------------------------------------------------------------


def test_taper_stops_whitened_correlation_locking_onto_the_frame_edges(retina):
    # 160 x 160 crops of smooth content, even against the noise-free reference: without a
    # taper whitened correlation pulls frames towards zero lag (the crop edges coincide).
    frames, truth = noisy_movie(retina, n=60, noise=0.02)
    size = frames.shape[1]
    reference = retina[560:560 + size, 170:170 + size].astype(np.float32)
    no_taper = np.hypot(*(sf.CrossCorr(taper=0, refine=None).fit(frames, reference).toarray() - truth).T)
    tapered = np.hypot(*(sf.CrossCorr(refine=None).fit(frames, reference).toarray() - truth).T)
    assert no_taper.max() > 1.0, no_taper.max()
    assert tapered.max() < 0.2, tapered.max()
    # The default pipeline (mean reference, refinement) with the default whitening.
    err = relative_errors(sf.CrossCorr(threads=1).fit(frames).toarray(), truth)
    assert err.max() < 0.1, err.max()


def test_taper_option():
    assert sf.CrossCorr().taper == 0.1
    assert sf.CrossCorr(whiten=0).taper == 0.0           # thunder's plain correlation: no taper
    assert sf.CrossCorr(whiten=0, taper=0.2).taper == 0.2
    with pytest.raises(ValueError, match="taper"):
        sf.CrossCorr(taper=0.6)
    with pytest.raises(TypeError):
        sf.CrossCorr(taper="wide")
