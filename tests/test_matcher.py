"""Matcher: accuracy on real images with known shifts, agreement with the
independent NumPy oracle, threads, and spectralign's conventions."""
from __future__ import annotations

import numpy as np
import pytest

import swim_oracle as oracle
from conftest import fourier_shift
from spectralign_fast import Matcher, RefinementStats


def noisy(img, rng, sigma=0.01):
    return (img + rng.normal(0, sigma, img.shape)).astype(np.float32)


def shift_errors(base, shifts, points, size, rng, iters=3):
    """p2 - p1 - true shift for each known shift (content of image 2 moved by d)."""
    errors = []
    for d, p in zip(shifts, points):
        a = noisy(base, rng)
        b = noisy(fourier_shift(base, *d), rng)
        p1, p2 = Matcher(a, b).refine(p, p, size, iters=iters)
        errors.append(p2 - p1 - d)
    return np.array(errors)


@pytest.mark.parametrize("which", ["yfp", "retina", "hubble"])
def test_known_subpixel_shifts_recovered_within_005px_rms(which, request):
    rng = np.random.default_rng(7)
    if which == "yfp":
        base = request.getfixturevalue("yfp_tiles")[0]
    else:
        base = request.getfixturevalue(which)
    h, w = base.shape
    n = 6
    shifts = rng.uniform(-6, 6, (n, 2))
    # Start points with arbitrary fractional parts, window inside the image.
    points = np.column_stack([rng.uniform(256 + 8, w - 256 - 8, n), rng.uniform(256 + 8, h - 256 - 8, n)])
    err = shift_errors(base, shifts, points, 512, rng)
    rms = np.sqrt(np.mean(np.sum(err**2, axis=1)))
    assert rms < 0.05, f"{which}: RMS error {rms:.4f} px, errors {err.round(4).tolist()}"


def test_shift_sign_follows_spectralign(retina):
    """Content of image 2 to the right of / below image 1 gives a positive shift,
    and the refined points differ by that shift."""
    b = fourier_shift(retina, 3.0, 2.0)
    m = Matcher(retina, b, stats=True)
    p1, p2, st = m.refine((700, 700), (700, 700), 256, iters=1)
    assert isinstance(st, RefinementStats)
    assert st.shift[0] == pytest.approx(3.0, abs=0.15)
    assert st.shift[1] == pytest.approx(2.0, abs=0.15)
    np.testing.assert_allclose(p1, np.array([700, 700]) - st.shift / 2)
    np.testing.assert_allclose(p2, np.array([700, 700]) + st.shift / 2)


@pytest.mark.parametrize("apodization", ["both", "first"])
@pytest.mark.parametrize(
    "size, point, wht, rad, iters",
    [
        (512, (600.0, 600.0), -0.65, 5, 3),
        ((300, 201), (420.3, 515.7), -0.65, 5, 3),
        (127, (133.4, 250.25), -0.65, 3, 2),
        (256, (60.5, 700.9), -0.65, 5, 3),    # window partly outside the image (on content)
        (256, (700.2, 640.6), 0.0, 5, 2),      # plain cross-correlation
        (256, (700.2, 640.6), -1.0, 7, 2),     # phase correlation
        ((1024, 700), (705.3, 690.8), -0.65, 5, 2),  # large: transposed rows written around the caches
    ],
)
def test_agrees_with_numpy_oracle(retina, size, point, wht, rad, iters, apodization):
    rng = np.random.default_rng(3)
    a = noisy(retina, rng)
    b = noisy(fourier_shift(retina, 2.7, -1.4), rng)
    p2_start = (point[0] + 2.0, point[1] - 1.0)
    m = Matcher(a, b, stats=True)
    m.setprewhiten(wht)
    m.setpeakradius(rad)
    m.setapodization(apodization)
    p1, p2, st = m.refine(point, p2_start, size, iters=iters)
    q1, q2, hist = oracle.refine(a, b, point, p2_start, size, iters=iters, wht=wht, rad=rad,
                                 apodize=apodization)
    assert np.abs(p1 - q1).max() < 0.01
    assert np.abs(p2 - q2).max() < 0.01
    assert st.niters == len(hist)
    for k, ref in enumerate(hist):
        # Final points agree to 0.01 px (above); an intermediate jump of many
        # pixels may differ by float32 rounding relative to its size.
        np.testing.assert_allclose(st.shifts[k], ref[:2], rtol=1e-3, atol=0.01)
        np.testing.assert_allclose(st.peakwidths[k], ref[2:4], rtol=1e-2, atol=1e-3)
        # float32 vs float64: whitening lifts noise-level bins, so the SNR (a
        # quality heuristic) agrees to ~1%, the peak position to 1e-4 px.
        assert st.snrs[k] == pytest.approx(ref[4], rel=2e-2)


@pytest.fixture
def fused_min_pixels(dev_tools):
    """Sets which windows take the matcher's fused path (for matchers made
    afterwards) and restores the default afterwards."""
    previous = dev_tools.set_fused_min_pixels(192 * 192)
    yield dev_tools.set_fused_min_pixels
    dev_tools.set_fused_min_pixels(previous)


@pytest.mark.parametrize("size", [11, (12, 31), (33, 17), 64, (127, 130), (200, 150), (301, 263), (520, 384)])
def test_fused_and_2d_transform_paths_agree(retina, fused_min_pixels, size):
    # The same matches through FFTW's 2-D transforms and through the fused
    # path (1-D transforms of rows and column blocks), at sizes odd and even,
    # narrower than one column block, and with windows crossing the border.
    rng = np.random.default_rng(5)
    a = noisy(retina, rng)
    b = noisy(fourier_shift(retina, 1.3, -2.6), rng)
    w, h = (size, size) if isinstance(size, int) else size
    n = 12
    P1 = np.column_stack([rng.uniform(-w / 4, 1400 + w / 4, n), rng.uniform(-h / 4, 1400 + h / 4, n)])
    P2 = P1 + rng.uniform(-1.5, 1.5, (n, 2))
    results = []
    for pixels in (0, 2**62):
        fused_min_pixels(pixels)
        m = Matcher(a, b, stats=True)
        m.setpeakradius(min(5, (min(w, h) - 1) // 2))
        results.append(m.refine_many(P1, P2, size, iters=2, threads=2))
    fused, plain = results
    np.testing.assert_allclose(fused[0], plain[0], atol=2e-3)
    np.testing.assert_allclose(fused[1], plain[1], atol=2e-3)
    np.testing.assert_allclose(fused[2].shift, plain[2].shift, atol=2e-3)
    np.testing.assert_allclose(fused[2].peakwidth, plain[2].peakwidth, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(fused[2].snr, plain[2].snr, rtol=1e-3)
    np.testing.assert_array_equal(fused[2].niters, plain[2].niters)


@pytest.fixture
def team_min_pixels(dev_tools):
    """Sets which windows refine_many matches with teams of two threads per
    pair and restores the default afterwards."""
    previous = dev_tools.set_team_min_pixels(640 * 640)
    yield dev_tools.set_team_min_pixels
    dev_tools.set_team_min_pixels(previous)


@pytest.mark.parametrize("size", [(13, 21), (40, 33), 64, (301, 263)])
def test_teams_give_the_same_bits_as_one_thread(retina, fused_min_pixels, team_min_pixels, size):
    # Two threads on one pair split every step (moments, rows, column
    # blocks, rows back) and sum the partial results in order afterwards:
    # the result must equal one thread's to the last bit, at odd sizes,
    # narrow windows (one short column block) and windows crossing the border.
    fused_min_pixels(0)
    team_min_pixels(0)
    rng = np.random.default_rng(4)
    a = noisy(retina, rng)
    b = noisy(fourier_shift(retina, 0.8, 1.9), rng)
    w, h = (size, size) if isinstance(size, int) else size
    n = 9
    P1 = np.column_stack([rng.uniform(-w / 4, 1400 + w / 4, n), rng.uniform(-h / 4, 1400 + h / 4, n)])
    P2 = P1 + rng.uniform(-1.5, 1.5, (n, 2))
    m = Matcher(a, b, stats=True)
    m.setpeakradius(min(5, (min(w, h) - 1) // 2))
    one = m.refine_many(P1, P2, size, iters=3, threads=1)
    team = m.refine_many(P1, P2, size, iters=3, threads=2)
    for x, y in zip(one[:2], team[:2]):
        np.testing.assert_array_equal(x, y)
    for field in ("shift", "peakwidth", "snr", "niters"):
        np.testing.assert_array_equal(getattr(one[2], field), getattr(team[2], field))


def test_a_team_that_splits_up_gives_the_same_result(retina, dev_tools, fused_min_pixels, team_min_pixels):
    # A team whose helper keeps being paused splits up mid-call; forced here
    # after two pairs. The pairs before and after must equal one thread's.
    fused_min_pixels(0)
    team_min_pixels(0)
    rng = np.random.default_rng(6)
    a = noisy(retina, rng)
    b = noisy(fourier_shift(retina, -2.2, 0.7), rng)
    P1 = np.column_stack([rng.uniform(100, 1300, 16), rng.uniform(100, 1300, 16)])
    P2 = P1 + rng.uniform(-1.5, 1.5, (16, 2))
    m = Matcher(a, b, stats=True)
    one = m.refine_many(P1, P2, (96, 80), iters=2, threads=1)
    previous = dev_tools.set_team_wait_limit(-1.0)
    try:
        split = m.refine_many(P1, P2, (96, 80), iters=2, threads=2)
    finally:
        dev_tools.set_team_wait_limit(previous)
    np.testing.assert_array_equal(one[0], split[0])
    np.testing.assert_array_equal(one[1], split[1])
    np.testing.assert_array_equal(one[2].snr, split[2].snr)


def test_fused_path_agrees_with_numpy_oracle_at_small_odd_sizes(retina, fused_min_pixels):
    fused_min_pixels(0)
    rng = np.random.default_rng(9)
    a = noisy(retina, rng)
    b = noisy(fourier_shift(retina, -1.7, 0.6), rng)
    for size, point in (((13, 21), (300.4, 410.6)), ((40, 33), (15.2, 500.5)), (65, (800.7, 220.1))):
        m = Matcher(a, b)
        m.setpeakradius(3)
        p1, p2 = m.refine(point, (point[0] - 1, point[1] + 0.5), size, iters=2)
        q1, q2, _ = oracle.refine(a, b, point, (point[0] - 1, point[1] + 0.5), size, iters=2, wht=-0.65, rad=3,
                                  apodize="both")
        assert np.abs(p1 - q1).max() < 0.01, size
        assert np.abs(p2 - q2).max() < 0.01, size


def test_first_only_apodization_is_spectralign_and_less_accurate(retina):
    """spectralign's choice (apodize window 1 only) stays available; on real
    content it is measurably biased where the default is not."""
    rng = np.random.default_rng(5)
    errs = {"both": [], "first": []}
    for _ in range(4):
        d = rng.uniform(-4, 4, 2)
        p = rng.uniform(300, 1100, 2)
        b = fourier_shift(retina, *d)
        for mode in errs:
            m = Matcher(retina, b)
            m.setapodization(mode)
            p1, p2 = m.refine(p, p, 512, iters=3)
            errs[mode].append(p2 - p1 - d)
    rms = {k: float(np.sqrt(np.mean(np.sum(np.square(v), axis=1)))) for k, v in errs.items()}
    assert rms["both"] < 0.01
    assert rms["first"] < 0.2
    assert rms["both"] < rms["first"]
    with pytest.raises(ValueError, match="both' or 'first"):
        Matcher(retina, b).setapodization("none")


def test_tolerance_stops_early_like_spectralign(retina):
    b = fourier_shift(retina, 1.3, 0.4)
    m = Matcher(retina, b, stats=True)
    _, _, st = m.refine((700, 700), (700, 700), 256, iters=10, tolerance=0.05)
    assert st.niters < 10
    assert st.dist < 0.05
    assert all(d >= 0.05 for d in st.dists[:-1])
    _, _, hist = oracle.refine(retina, b, (700, 700), (700, 700), 256, iters=10, tolerance=0.05)
    assert len(hist) == st.niters


def test_stats_properties(retina):
    b = fourier_shift(retina, 2.0, 0.0)
    m = Matcher(retina, b, stats=True)
    p1, p2, st = m.refine((700, 700), (700, 700), 256, iters=3)
    assert st.niters == 3 and len(st.snrs) == 3 and len(st.peakwidths) == 3
    assert st.totaldist == pytest.approx(np.hypot(*np.sum(st.shifts, axis=0)))
    assert st.totaldist == pytest.approx(np.hypot(*(p2 - p1)), abs=1e-9)
    assert st.snr > 10
    assert "RefinementStats" in repr(st)
    # Without stats, refine returns the two points only.
    out = Matcher(retina, b).refine((700, 700), (700, 700), 256)
    assert len(out) == 2


def full_frame_phase_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Independent integer estimate of where b's origin lies in a's frame:
    zero-padded phase correlation of the whole images (NumPy only)."""
    h, w = a.shape
    shape = (2 * h, 2 * w)
    fa = np.fft.rfft2(a - a.mean(), shape)
    fb = np.fft.rfft2(b - b.mean(), shape)
    cross = fa * np.conj(fb)
    corr = np.fft.irfft2(cross / (np.abs(cross) + 1e-12), shape)
    iy, ix = np.unravel_index(np.argmax(corr), corr.shape)
    dy = iy if iy < h else iy - shape[0]
    dx = ix if ix < w else ix - shape[1]
    return np.array([dx, dy], dtype=float)


def test_yfp_tiles_overlap_offset_agrees_with_phase_correlation(yfp_tiles):
    """The two real, overlapping YFP tiles: confident matches along the seam
    agree with an independent full-frame phase correlation, and with each
    other up to a smooth trend (the tiles differ by a slight rotation)."""
    left, right = yfp_tiles
    offset = full_frame_phase_correlation(left, right)  # right's origin in left's frame
    assert 400 < offset[0] < 1150 and abs(offset[1]) < 100, offset  # one row, left to right
    m = Matcher(left, right)
    ys = np.arange(100.0, 1150.0, 50.0)
    P1 = np.column_stack([np.full(ys.size, (offset[0] + left.shape[1]) / 2), ys])
    Q1, Q2, st = m.refine_many(P1, P1 - offset, 256, iters=5)
    found = Q1 - Q2
    good = st.snr > 20  # sparse fluorescence: only part of the seam has structure
    assert good.sum() >= 5, st.snr.round(1)
    np.testing.assert_allclose(found[good].mean(axis=0), offset, atol=1.0)
    # A smooth trend in y (slight rotation plus lens distortion: quadratic)
    # explains the confident matches to 0.15 px.
    yy = Q1[good, 1]
    for axis in (0, 1):
        coef = np.polyfit(yy, found[good, axis], 2)
        resid = found[good, axis] - np.polyval(coef, yy)
        assert np.sqrt(np.mean(resid**2)) < 0.15, (axis, resid.round(3))


# 2-D path, fused path, fused path with teams of two threads per pair
@pytest.mark.parametrize("size", [(160, 144), (256, 232), (704, 640)])
def test_refine_many_equals_refine_and_threads_agree(retina, size):
    rng = np.random.default_rng(11)
    a = noisy(retina, rng)
    b = noisy(fourier_shift(retina, -3.3, 1.9), rng)
    n = 24
    P1 = np.column_stack([rng.uniform(100, 1300, n), rng.uniform(100, 1300, n)])
    P2 = P1 + rng.uniform(-2, 2, (n, 2))
    m = Matcher(a, b, stats=True)
    one = m.refine_many(P1, P2, size, iters=3, tolerance=0.01, threads=1)
    two = m.refine_many(P1, P2, size, iters=3, tolerance=0.01, threads=2)
    alln = m.refine_many(P1, P2, size, iters=3, tolerance=0.01, threads=0)
    for res in (two, alln):
        np.testing.assert_array_equal(one[0], res[0])
        np.testing.assert_array_equal(one[1], res[1])
        np.testing.assert_array_equal(one[2].snr, res[2].snr)
        np.testing.assert_array_equal(one[2].shift, res[2].shift)
        np.testing.assert_array_equal(one[2].niters, res[2].niters)
    for k in range(n):
        p1, p2, st = m.refine(P1[k], P2[k], size, iters=3, tolerance=0.01)
        np.testing.assert_array_equal(p1, one[0][k])
        np.testing.assert_array_equal(p2, one[1][k])
        np.testing.assert_array_equal(st.shift, one[2].shift[k])
        np.testing.assert_array_equal(st.peakwidth, one[2].peakwidth[k])
        assert st.snr == one[2].snr[k]
        assert st.niters == one[2].niters[k]


def test_refine_many_empty_and_batches(retina):
    m = Matcher(retina, retina)
    P1, P2, st = m.refine_many(np.zeros((0, 2)), np.zeros((0, 2)), 64)
    assert P1.shape == (0, 2) and P2.shape == (0, 2) and len(st) == 0
    assert "0 pairs" in repr(st)
    # More pairs than one C++ batch: results still in order.
    import spectralign_fast.match.matcher as mm

    old = mm._BATCH
    try:
        mm._BATCH = 5
        rng = np.random.default_rng(2)
        P = np.column_stack([rng.uniform(100, 1300, 12), rng.uniform(100, 1300, 12)])
        Q1, Q2, st = m.refine_many(P, P, 64, threads=2)
    finally:
        mm._BATCH = old
    R1, R2, st2 = m.refine_many(P, P, 64, threads=1)
    np.testing.assert_array_equal(Q1, R1)
    np.testing.assert_array_equal(st.snr, st2.snr)


def test_constant_window_gives_zero_shift_and_zero_snr():
    img = np.zeros((200, 200), np.float32)
    img[:, 100:] = np.random.default_rng(0).random((200, 100))
    m = Matcher(img, img, stats=True)
    p1, p2, st = m.refine((40, 100), (40, 100), 64, iters=3)
    assert st.snr == 0 and np.all(st.shift == 0) and np.all(st.peakwidth == 0)
    np.testing.assert_array_equal(p1, [40, 100])
    np.testing.assert_array_equal(p2, [40, 100])
    _, _, bs = m.refine_many([[40, 100], [150, 100]], [[40, 100], [150, 100]], 64)
    assert bs.snr[0] == 0 and bs.snr[1] > 5


def test_integer_inputs_are_accepted_and_scaled(camera):
    img8 = (camera * 255).astype(np.uint8)
    shifted8 = np.roll(img8, (2, 3), axis=(0, 1))
    p1, p2 = Matcher(img8, shifted8).refine((256, 256), (256, 256), 128, iters=3)
    np.testing.assert_allclose(p2 - p1, [3, 2], atol=0.05)


def test_fft_floor_benchmark_helper(dev_tools):
    """The benchmarks' FFT floor: every variant times something, bad arguments are refused."""
    for kwargs in ({}, {"r2c": 1}, {"packed": True}, {"packed": True, "threads": 2}):
        seconds = dev_tools.fft_floor(64, 48, 3, **kwargs)
        assert np.isfinite(seconds) and seconds > 0
    with pytest.raises(ValueError, match="r2c must be 2"):
        dev_tools.fft_floor(64, 64, 3, r2c=1, packed=True)
    with pytest.raises(ValueError, match="must be positive"):
        dev_tools.fft_floor(64, 64, 3, threads=0)
    with pytest.raises(ValueError, match="r2c must be 1 or 2"):
        dev_tools.fft_floor(64, 64, 3, r2c=3)
