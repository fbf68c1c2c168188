"""NonRigidCrossCorr: block-wise (piecewise-rigid) motion correction against known smooth
non-rigid motion on a photograph (synthetic.nonrigid_movie); scipy.ndimage.map_coordinates is
the independent oracle that makes the frames."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage
from skimage import data

import spectralign_fast as sf
from spectralign_fast.register.nonrigid_grid import block_grid, check_overlap, clean_blocks
from spectralign_fast.synthetic import nonrigid_movie

BLOCK = 128


@pytest.fixture(scope="module")
def movie():
    return nonrigid_movie(8)


@pytest.fixture(scope="module")
def fitted(movie):
    ref, frames, _ = movie
    return sf.NonRigidCrossCorr(block_size=BLOCK, threads=2).fit(frames, ref)


def _interior(a: np.ndarray, border: int = BLOCK // 2) -> np.ndarray:
    return a[..., border:-border, border:-border, :] if a.ndim >= 3 and a.shape[-1] == 2 else \
        a[..., border:-border, border:-border]


def test_field_error_per_frame_at_most_015_px(movie, fitted):
    _, frames, truth = movie
    model = fitted
    assert model.toarray().shape == (len(frames), 7, 7, 2)
    errors = [np.linalg.norm(_interior(model.field(i) - truth[i]), axis=-1).mean() for i in range(len(frames))]
    assert max(errors) <= 0.15, errors
    assert np.mean(errors) <= 0.10, errors
    # The motion is real: a rigid model would be far off.
    rigid = sf.CrossCorr().fit(frames, movie[0]).toarray()
    rigid_err = [np.linalg.norm(_interior(truth[i] - rigid[i]), axis=-1).mean() for i in range(len(frames))]
    assert min(rigid_err) > 0.5


def test_threads_bit_identical(movie, fitted):
    ref, frames, _ = movie
    one = sf.NonRigidCrossCorr(block_size=BLOCK, threads=1).fit(frames[:4], ref)
    two = sf.NonRigidCrossCorr(block_size=BLOCK, threads=2).fit(frames[:4], ref)
    np.testing.assert_array_equal(one.toarray(), two.toarray())
    np.testing.assert_array_equal(one.toarray(), fitted.toarray()[:4])
    for interp in ("linear", "cubic"):
        np.testing.assert_array_equal(one.transform(frames[:4], interpolation=interp, threads=1),
                                      one.transform(frames[:4], interpolation=interp, threads=2))


def test_transform_brings_frames_back_onto_the_reference(movie, fitted):
    ref, frames, truth = movie
    out = fitted.transform(frames, interpolation="cubic")
    assert out.shape == frames.shape and out.dtype == frames.dtype
    before = np.abs(_interior(frames - ref)).mean()
    after = np.abs(_interior(out - ref)).mean()
    noise = 0.02 * np.ptp(ref)
    assert after < 0.3 * before
    assert after < 1.05 * noise * np.sqrt(2 / np.pi)         # the noise's own mean |.|, no more
    # The oracle: the frames resampled through the true fields (scipy, cubic) agree as well.
    y, x = np.mgrid[0:512, 0:512].astype(np.float64)
    oracle = ndimage.map_coordinates(frames[0], [y + truth[0][..., 0], x + truth[0][..., 1]], order=3,
                                     mode="nearest")
    assert np.abs(_interior(out[0] - oracle)).mean() < 0.2 * np.abs(_interior(frames[0] - ref)).mean()


def test_convention_matches_crosscorr_on_a_pure_shift():
    cam = data.camera().astype(np.float32)
    ref = cam[64:320, 64:320]
    frames = np.stack([cam[61:317, 68:324], cam[66:322, 63:319]])   # content moved by (+3, -4), (-2, +1)
    model = sf.NonRigidCrossCorr(block_size=64).fit(frames, ref)
    d = model.toarray()
    rigid = sf.CrossCorr().fit(frames, ref).toarray()
    np.testing.assert_allclose(d[0], np.broadcast_to([3, -4], d[0].shape), atol=0.1)
    np.testing.assert_allclose(d[1], np.broadcast_to([-2, 1], d[1].shape), atol=0.1)
    np.testing.assert_allclose(np.median(d.reshape(2, -1, 2), axis=1), rigid, atol=0.05)
    f = model.field(0)
    assert f.shape == (256, 256, 2) and f.dtype == np.float32
    np.testing.assert_allclose(f, np.broadcast_to([3, -4], f.shape), atol=0.1)
    out = model.transform(frames)
    assert np.abs(out[:, 8:-8, 8:-8] - ref[8:-8, 8:-8]).mean() < 1.0    # of 0..255


def test_block_grid_and_overlap():
    sy, sx = block_grid((512, 300), (128, 100), (64, 0))
    np.testing.assert_array_equal(sy, np.arange(0, 385, 64))
    np.testing.assert_array_equal(sx, [0, 100, 200])
    assert check_overlap((0.5, 0), (128, 100)) == (64, 0)
    assert check_overlap((16,), (64, 64)) == (16, 16)
    frames = np.zeros((1, 300, 512), np.float32)
    frames[0] = data.camera()[:300].astype(np.float32)
    model = sf.NonRigidCrossCorr(block_size=(100, 128), block_overlap=(0, 0.5)).fit(frames, frames[0])
    assert model.toarray().shape == (1, 3, 7, 2)
    np.testing.assert_array_equal(model.block_starts[0], [0, 100, 200])
    np.testing.assert_allclose(model.centers[1], np.arange(0, 385, 64) + 63.5)
    np.testing.assert_allclose(model.toarray(), 0, atol=0.02)


@pytest.mark.parametrize("kwargs, message", [
    (dict(block_size=0), "block_size"),
    (dict(block_size=-16), "block_size"),
    (dict(block_size=(64, 3)), "block_size"),
    (dict(block_size=(64, 64, 64, 64)), "block_size"),
    (dict(block_overlap=1.0), "block_overlap"),
    (dict(block_overlap=-0.1), "block_overlap"),
    (dict(block_size=64, block_overlap=64), "block_overlap"),
    (dict(block_overlap=-3), "block_overlap"),
    (dict(whiten=0.5), "whiten"),
    (dict(taper=0.7), "taper"),
    (dict(upsampling="nearest"), "upsampling"),
    (dict(outlier_px=0), "outlier_px"),
    (dict(smooth=-1), "smooth"),
])
def test_bad_options_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sf.NonRigidCrossCorr(**kwargs)


def test_bad_inputs_raise_clear_errors():
    frames = np.zeros((2, 100, 100), np.float32)
    with pytest.raises(ValueError, match="larger than the frames"):
        sf.NonRigidCrossCorr(block_size=128).fit(frames)
    with pytest.raises(ValueError, match="larger than the frames"):
        sf.NonRigidCrossCorr(block_size=16).fit(np.zeros((2, 4, 100, 100), np.float32))
    with pytest.raises(ValueError, match="axes"):
        sf.NonRigidCrossCorr(block_size=(16, 16)).fit(np.zeros((2, 20, 100, 100), np.float32))
    with pytest.raises(ValueError, match="dimensions"):
        sf.NonRigidCrossCorr(block_size=16).fit(np.zeros((2, 2, 4, 100, 100), np.float32))
    with pytest.raises(ValueError, match="reference shape"):
        sf.NonRigidCrossCorr(block_size=32).fit(frames, np.zeros((50, 50)))
    with pytest.raises(TypeError, match="block_overlap"):
        sf.NonRigidCrossCorr(block_overlap="half")
    with pytest.raises(TypeError):
        sf.NonRigidCrossCorr(block_size=32).fit(np.zeros((2, 64, 64), bool))


def test_nan_frames_get_nan_displacements_with_a_warning(movie):
    ref, frames, _ = movie
    bad = frames[:3].copy()
    bad[1, 200, 300] = np.nan
    with pytest.warns(RuntimeWarning, match="NaN or inf"):
        model = sf.NonRigidCrossCorr(block_size=BLOCK).fit(bad, ref)
    d = model.toarray()
    assert np.all(np.isnan(d[1])) and np.all(np.isfinite(d[[0, 2]]))
    assert np.all(np.isnan(model.field(1)))
    with pytest.warns(RuntimeWarning, match="returned unshifted"):
        out = model.transform(bad)
    np.testing.assert_array_equal(out[1], bad[1])


def test_caller_arrays_and_memmaps_untouched(tmp_path, movie):
    ref, frames, _ = movie
    movie16 = np.clip(frames[:3], 0, 65535).astype(np.uint16)
    mm = np.lib.format.open_memmap(tmp_path / "m.npy", mode="w+", dtype=np.uint16, shape=movie16.shape)
    mm[:] = movie16
    mm.flush()
    before, ref_before = np.array(mm), ref.copy()
    model = sf.NonRigidCrossCorr(block_size=BLOCK).fit(mm, ref, batch=2)
    out = model.transform(mm, batch=2)
    assert out.dtype == np.uint16 and out.shape == mm.shape
    np.testing.assert_array_equal(np.asarray(mm), before)
    np.testing.assert_array_equal(ref, ref_before)
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy"), before)
    # Batches change nothing.
    np.testing.assert_array_equal(model.toarray(), sf.NonRigidCrossCorr(block_size=BLOCK).fit(movie16, ref)
                                  .toarray())
    with pytest.raises(ValueError, match="overlap"):
        model.transform(mm, out=np.asarray(mm))


def test_outliers_are_replaced_from_neighbours():
    d = np.zeros((1, 5, 5, 2))
    d[..., 0] = np.arange(5)[None, :, None] * 0.2          # a smooth ramp along rows
    q = np.full((1, 5, 5), 50.0, np.float32)
    wild, weak = d.copy(), q.copy()
    wild[0, 2, 2] = [9.0, -7.0]                             # far from its neighbours
    weak[0, 1, 3] = 1.0                                     # a peak no better than noise
    wild[0, 1, 3] = [3.0, 3.0]
    wild[0, 4, 0] = np.nan                                  # no contrast
    out, replaced = clean_blocks(wild, weak, min_quality=5.0, outlier_px=2.0, smooth=0.0)
    assert set(zip(*np.nonzero(replaced[0]))) == {(2, 2), (1, 3), (4, 0)}
    np.testing.assert_allclose(out, d, atol=0.21)          # the neighbours' median of a ramp
    assert np.all(np.isfinite(out))


def test_mean_reference_recovers_the_motion_up_to_the_mean_field():
    _, frames, truth = nonrigid_movie(12, seed=1)
    model = sf.NonRigidCrossCorr(threads=2).fit(frames)
    est = np.stack([model.field(i) for i in range(len(frames))])
    # Against the mean of the frames, fields are relative to where the frames sit on average.
    diff = _interior(est - truth)
    diff -= diff.mean(axis=0, keepdims=True)
    assert np.linalg.norm(diff, axis=-1).mean() < 0.15


def _volume_movie(frames: int = 3, seed: int = 2):
    """A textured volume (Gaussian-filtered noise, 40 x 128 x 128) moved per frame by a drift plus a
    3-D Gaussian bump of displacement; frames by cubic interpolation (scipy), noise 2% of the range.
    Returns the reference, the frames and the true fields (frame(x + d(x)) = reference(x))."""
    rng = np.random.default_rng(seed)
    ref = ndimage.gaussian_filter(rng.normal(size=(40, 128, 128)), 2.0)
    ref = (ref - ref.min()) / np.ptp(ref) * 1000
    grid = np.mgrid[0:40, 0:128, 0:128].astype(np.float64)

    def v(t, p):
        s = t / max(frames - 1, 1)
        w = np.exp(-((p[0] - 20) ** 2 / (2 * 16 ** 2) + (p[1] - 50 - 20 * s) ** 2 / (2 * 40 ** 2)
                     + (p[2] - 70) ** 2 / (2 * 40 ** 2)))
        amp = (0.8, 1.5 * (1 - s), -1.2)
        drift = (0.6 * s, 1.0 - s, -0.8 + 1.6 * s)
        return np.stack([drift[a] + amp[a] * w for a in range(3)])

    movie, truth = [], []
    for t in range(frames):
        vv = v(t, grid)
        f = ndimage.map_coordinates(ref, grid + vv, order=3, mode="nearest")
        movie.append((f + rng.normal(0, 0.02 * 1000, f.shape)).astype(np.float32))
        d = -vv
        for _ in range(8):
            d = -v(t, grid + d)
        truth.append(np.moveaxis(d, 0, -1).astype(np.float32))
    return ref.astype(np.float32), np.stack(movie), np.stack(truth)


def test_volumes_with_3d_blocks():
    ref, frames, truth = _volume_movie()
    # Blocks of 16 planes: short axes bias a tapered correlation towards zero, which the second
    # refinement pass removes (0.08 px here, against 0.11-0.14 px with one pass).
    one = sf.NonRigidCrossCorr(block_size=(16, 48, 48), refine=2, threads=1).fit(frames, ref)
    two = sf.NonRigidCrossCorr(block_size=(16, 48, 48), refine=2, threads=2).fit(frames, ref)
    d = one.toarray()
    assert d.shape == (3, 4, 5, 5, 3)
    np.testing.assert_array_equal(d, two.toarray())
    for i in range(len(frames)):
        f = one.field(i)
        assert f.shape == (40, 128, 128, 3)
        err = np.linalg.norm((f - truth[i])[8:-8, 24:-24, 24:-24], axis=-1).mean()
        assert err <= 0.15, (i, err)
    out = one.transform(frames, interpolation="cubic", threads=2)
    np.testing.assert_array_equal(out, one.transform(frames, interpolation="cubic", threads=1))
    inner = (slice(None), slice(8, -8), slice(24, -24), slice(24, -24))
    assert np.abs(out[inner] - ref[inner[1:]]).mean() < 0.5 * np.abs(frames[inner] - ref[inner[1:]]).mean()


def test_model_rebuilt_from_its_arrays_transforms_the_same(movie, fitted):
    _, frames, _ = movie
    rebuilt = sf.NonRigidModel(fitted.toarray(), shape=fitted.shape, block_size=fitted.block_size,
                               block_starts=fitted.block_starts)
    np.testing.assert_array_equal(rebuilt.transform(frames), fitted.transform(frames))
    np.testing.assert_array_equal(rebuilt.field(1), fitted.field(1))
    with pytest.raises(ValueError, match="deltas must have shape"):
        sf.NonRigidModel(fitted.toarray()[:, :3], shape=fitted.shape, block_size=fitted.block_size,
                         block_starts=fitted.block_starts)
    with pytest.raises(ValueError, match="frames"):
        fitted.transform(frames[:2])
    with pytest.raises(ValueError, match="interpolation"):
        fitted.transform(frames, interpolation="fourier")
    out = sf.NonRigidCrossCorr(block_size=BLOCK, refine=0).fit_and_transform(frames[:2], movie[0])
    assert out.shape == frames[:2].shape and out.dtype == np.float32
