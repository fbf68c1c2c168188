"""Z positions against a reference z-stack (register.zdrift): real anatomy, known fractional z.

The z-stack is 21 axial 1 mm slices of nilearn's MNI152 template; every frame is the template
resampled (cubic) at a known fractional z between them, shifted in-plane by up to 5 px, with noise.
A NumPy oracle recomputes the correlations independently.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage

from spectralign_fast.register.zdrift import estimate_z_positions

Z0, NZ = 50, 21


@pytest.fixture(scope="module")
def volume():
    nilearn = pytest.importorskip("nilearn.datasets")
    vol = np.asarray(nilearn.load_mni152_template(resolution=1).get_fdata(), np.float32)
    vol = np.ascontiguousarray(np.transpose(vol, (2, 1, 0))[:, ::-1])  # (z, y, x)
    return vol / vol.max()


@pytest.fixture(scope="module")
def movie(volume):
    rng = np.random.default_rng(0)
    n = 40
    ztrue = 3 + 14 * (0.5 + 0.5 * np.sin(np.linspace(0, 3, n))) + rng.uniform(-0.3, 0.3, n)
    yy, xx = np.mgrid[0:volume.shape[1], 0:volume.shape[2]].astype(float)
    frames = []
    for z in ztrue:
        dy, dx = rng.uniform(-5, 5, 2)
        f = ndimage.map_coordinates(volume, [np.full_like(yy, Z0 + z), yy + dy, xx + dx], order=3, mode="nearest")
        frames.append(f + rng.normal(0, 0.02, f.shape))
    return np.array(frames, np.float32), ztrue, volume[Z0:Z0 + NZ].copy()


def test_fractional_z_recovered(movie):
    frames, ztrue, zstack = movie
    zp = estimate_z_positions(frames, zstack)
    err = np.abs(zp.z - ztrue)
    assert err.mean() < 0.1 and err.max() < 0.25, (err.mean(), err.max())
    assert zp.correlation.shape == (len(frames), NZ) and zp.correlation.dtype == np.float32
    assert np.all((zp.peak > 0.2) & (zp.peak <= 1.0)) and not zp.at_edge.any()


def test_threads_identical_and_inputs_untouched(movie, tmp_path):
    frames, _, zstack = movie
    mm = np.lib.format.open_memmap(tmp_path / "movie.npy", mode="w+", dtype=np.float32, shape=frames.shape)
    mm[:] = frames
    mm.flush()
    ro = np.load(tmp_path / "movie.npy", mmap_mode="r")
    before_f, before_z = frames.copy(), zstack.copy()
    a = estimate_z_positions(frames, zstack, threads=1)
    b = estimate_z_positions(ro, zstack, threads=2)
    np.testing.assert_array_equal(a.correlation, b.correlation)
    np.testing.assert_array_equal(a.z, b.z)
    np.testing.assert_array_equal(frames, before_f)
    np.testing.assert_array_equal(zstack, before_z)


def _oracle(frames, zstack, max_shift, taper=0.125):
    """Phase-correlation peaks with NumPy: mean/std normalised, raised-cosine taper, zero padding
    to the same FFT sizes, peak over |shift| <= max_shift."""
    def fast(n):
        m = max(n, 1)
        while True:
            k = m
            for p in (2, 3, 5, 7):
                while k % p == 0:
                    k //= p
            if k == 1:
                return m
            m += 1

    def edge(n):
        ramp = max(1, int(round(taper * n)))
        d = np.minimum(np.arange(n), n - 1 - np.arange(n))
        return np.where(d < ramp, 0.5 - 0.5 * np.cos(np.pi * (d + 0.5) / ramp), 1.0)

    h, w = zstack.shape[1:]
    win = np.outer(edge(h), edge(w))
    ph, pw = fast(h), fast(w)

    def spec(img):
        x = img.astype(np.float64)
        x = (x - x.mean()) / x.std() * win
        return np.fft.rfft2(x, s=(ph, pw))

    R = [np.conj(spec(p)) for p in zstack]
    out = np.empty((len(frames), len(zstack)))
    sy, sx = max_shift
    for k, f in enumerate(frames):
        F = spec(f)
        for z, r in enumerate(R):
            p = F * r
            p = p / np.maximum(np.abs(p), 1e-30)
            c = np.fft.irfft2(p, s=(ph, pw))
            win_rows = np.r_[0:sy + 1, ph - sy:ph]
            win_cols = np.r_[0:sx + 1, pw - sx:pw]
            out[k, z] = c[np.ix_(win_rows, win_cols)].max()
    return out


def test_against_numpy_oracle(movie):
    frames, _, zstack = movie
    zp = estimate_z_positions(frames[:5], zstack[::4], max_shift=(12, 9))
    want = _oracle(frames[:5], zstack[::4], (12, 9))
    np.testing.assert_allclose(zp.correlation, want, atol=2e-3, rtol=1e-3)


def test_nan_constant_and_edge_frames(movie, volume):
    frames, _, zstack = movie
    f = frames[:4].copy()
    f[1, 10, 10] = np.nan
    f[2] = 0.5
    f[3] = volume[Z0 + NZ + 1]  # two planes beyond the last
    with pytest.warns(RuntimeWarning, match="NaN or inf"):
        zp = estimate_z_positions(f, zstack)
    assert np.isfinite(zp.z[0]) and np.isnan(zp.z[1]) and np.isnan(zp.z[2])
    assert np.isnan(zp.correlation[1]).all() and (zp.correlation[2] == 0).all()
    assert zp.at_edge[3] and zp.z[3] == NZ - 1


def test_bad_input(movie):
    frames, _, zstack = movie
    with pytest.raises(ValueError, match="must match"):
        estimate_z_positions(frames[:, :-1], zstack)
    with pytest.raises(ValueError, match="3-D"):
        estimate_z_positions(frames[0], zstack)
    with pytest.raises(ValueError, match="at least 2"):
        estimate_z_positions(frames, zstack[:1])
    with pytest.raises(ValueError, match="whiten"):
        estimate_z_positions(frames, zstack, whiten=0.5)
    with pytest.raises(ValueError, match="max_shift"):
        estimate_z_positions(frames, zstack, max_shift=(-1, 3))
    bad = zstack.copy()
    bad[3, 0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        estimate_z_positions(frames, bad)
    with pytest.raises(TypeError, match="numeric"):
        estimate_z_positions(np.array([["a"]], dtype=object), zstack)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        estimate_z_positions(frames[:2].astype(np.uint16), zstack)  # integer movies are fine
