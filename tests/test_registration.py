"""Stack registration (CrossCorr): sign convention, accuracy on real photographs,
thunder-registration's integer algorithm (tests/thunder_oracle.py), volumes,
per-plane mode, memmaps, Dask, threads, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter, gaussian_filter1d
from scipy.ndimage import shift as nd_shift

import spectralign_fast as sf
import thunder_oracle
from conftest import fourier_shift
from spectralign_fast import _core


def crop_stack(photo: np.ndarray, shifts, size: int, origin=(100, 100)) -> np.ndarray:
    """Frames whose content is displaced by integer d: frame[i] == reference[i - d],
    cut from the photo (content enters at the edges as in a real movie)."""
    y0, x0 = origin
    return np.array([photo[y0 - dy:y0 - dy + size, x0 - dx:x0 - dx + size] for dy, dx in shifts])


def drift_stack(photo: np.ndarray, n: int, size: int, seed: int, noise: float = 0.02, amplitude: float = 10.0):
    """A smooth random drift (gaussian-filtered random walk scaled to +-amplitude px)
    applied to a crop of the photo with a band-limited subpixel shift, plus noise.
    Returns (frames, reference, true (dy, dx) per frame)."""
    rng = np.random.default_rng(seed)
    walk = gaussian_filter1d(rng.standard_normal((n, 2)).cumsum(axis=0), 2, axis=0)
    walk -= walk.mean(axis=0)
    walk *= amplitude / np.abs(walk).max()
    m = int(amplitude) + 4
    y0 = (photo.shape[0] - size) // 2
    x0 = (photo.shape[1] - size) // 2
    big = photo[y0 - m:y0 + size + m, x0 - m:x0 + size + m]
    ref = big[m:m + size, m:m + size].copy()
    frames = np.array([fourier_shift(big, dx, dy)[m:m + size, m:m + size] for dy, dx in walk])
    frames += rng.normal(0, noise, frames.shape).astype(np.float32)
    return frames.astype(np.float32), ref, walk


def shift_nd(a: np.ndarray, d, pad: int = 8) -> np.ndarray:
    """Band-limited n-D shift: out(x) = a(x - d), mirrored by pad first."""
    p = np.pad(a.astype(np.float64), pad, mode="symmetric")
    ks = np.meshgrid(*[np.fft.fftfreq(n) for n in p.shape], indexing="ij")
    phase = sum(k * dd for k, dd in zip(ks, d))
    out = np.fft.ifftn(np.fft.fftn(p) * np.exp(-2j * np.pi * phase)).real
    return out[tuple(slice(pad, -pad) for _ in p.shape)]


def photo_volume(photo: np.ndarray, depth: int, size: int, seed: int, pad: int = 8) -> np.ndarray:
    """A (depth + 2 pad, size + 2 pad, size + 2 pad) volume of real content: each
    plane a crop of the photo a few pixels from the previous one (content that
    continues along z, as in a specimen), lightly smoothed along z."""
    rng = np.random.default_rng(seed)
    offs = np.cumsum(rng.integers(-3, 4, (depth + 2 * pad, 2)), axis=0) + 200
    vol = np.array([photo[o0:o0 + size + 2 * pad, o1:o1 + size + 2 * pad] for o0, o1 in offs])
    return gaussian_filter(vol, (0.7, 0, 0)).astype(np.float32)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    from conftest import grey
    return grey(data.astronaut())


# --- sign convention and thunder-registration's integer algorithm ----------------------


def test_sign_convention_and_transform_undoes_it(camera):
    shifts = [(3, -2), (0, 0), (-5, 7), (1, 1), (6, 4)]
    frames = crop_stack(camera, shifts, 256)
    ref = camera[100:356, 100:356]
    model = sf.CrossCorr(subpixel=False).fit(frames, ref)
    # frame[i] == reference[i - d]  ->  delta == d, in array (row, col) order
    np.testing.assert_array_equal(model.toarray(), np.array(shifts, dtype=float))
    assert model[(2,)].delta == [-5.0, 7.0]
    registered = model.transform(frames)
    assert registered.shape == frames.shape and registered.dtype == frames.dtype
    for (dy, dx), r in zip(shifts, registered):
        # Away from the edges (filled by nearest), the reference is restored exactly.
        ys = slice(max(0, -dy), 256 - max(0, dy))
        xs = slice(max(0, -dx), 256 - max(0, dx))
        np.testing.assert_array_equal(r[ys, xs], ref[ys, xs])
    # Subpixel refinement keeps the sign and stays close.
    sub = sf.CrossCorr().fit(frames, ref).toarray()
    np.testing.assert_allclose(sub, shifts, atol=0.05)


def test_transform_matches_thunder_apply_nearest_edges(camera):
    frame = camera[:128, :128]
    d = sf.Displacement([3, -4])
    np.testing.assert_array_equal(d.apply(frame), thunder_oracle.shift_integer(frame, [3, -4]))
    # Edge filling is the nearest edge pixel: rows 125..127 repeat row 127.
    out = d.apply(frame)
    np.testing.assert_array_equal(out[-3:], np.repeat(thunder_oracle.shift_integer(frame, [3, -4])[-1:], 3, 0))


@pytest.mark.parametrize("seed", [0, 1])
def test_integer_shifts_equal_thunder_oracle(retina, seed):
    rng = np.random.default_rng(seed)
    shifts = rng.integers(-12, 13, (12, 2))
    frames = crop_stack(retina, shifts, 200, origin=(600, 500))
    ref = retina[600:800, 500:700]
    # thunder's algorithm is plain cross-correlation: whiten=0, integer peak.
    oracle = thunder_oracle.fit(frames, ref)
    ours = sf.CrossCorr(subpixel=False, whiten=0).fit(frames, ref).toarray()
    np.testing.assert_array_equal(ours, oracle)
    # Whitened (the default), the integer shifts are recovered exactly; plain
    # cross-correlation of a real photograph need not (edges, low frequencies).
    np.testing.assert_array_equal(sf.CrossCorr(subpixel=False).fit(frames, ref).toarray(), shifts)
    # Subpixel refinement of small frames (200 px, shifts up to 12 px) feels
    # the content entering at the edges: about 0.1 px at worst.
    err = np.abs(sf.CrossCorr().fit(frames, ref).toarray() - shifts)
    assert err.mean() <= 0.05 and err.max() <= 0.15


def test_integer_shifts_volumes_equal_thunder_oracle(astronaut):
    vol = photo_volume(astronaut, 24, 64, seed=2)
    rng = np.random.default_rng(3)
    shifts = rng.integers(-4, 5, (6, 3))
    frames = np.array([vol[8 - a:8 - a + 24, 8 - b:8 - b + 64, 8 - c:8 - c + 64] for a, b, c in shifts])
    ref = vol[8:32, 8:72, 8:72]
    oracle = thunder_oracle.fit(frames, ref)
    ours = sf.CrossCorr(subpixel=False, whiten=0).fit(frames, ref).toarray()
    np.testing.assert_array_equal(ours, oracle)
    np.testing.assert_array_equal(sf.CrossCorr(subpixel=False).fit(frames, ref).toarray(), shifts)
    registered = sf.CrossCorr(subpixel=False).fit_and_transform(frames, ref)
    np.testing.assert_array_equal(registered[:, 4:-4, 4:-4, 4:-4], np.broadcast_to(ref, frames.shape)[:, 4:-4, 4:-4, 4:-4])


# --- accuracy ---------------------------------------------------------------------


def test_smooth_drift_subpixel_accuracy(retina):
    frames, ref, truth = drift_stack(retina, 40, 512, seed=3)
    model = sf.CrossCorr().fit(frames, ref)
    err = np.abs(model.toarray() - truth)
    assert err.mean() <= 0.05, err.mean()
    assert err.max() <= 0.2
    # Integer peaks are within half a pixel (+ noise) of the truth, and worse.
    integer = sf.CrossCorr(subpixel=False).fit(frames, ref).toarray()
    assert np.abs(integer - truth).mean() > 4 * err.mean()
    # Registering brings every frame onto the reference (interior) as well
    # as the true displacements do; what is left is the noise.
    def residual(stack):
        return np.abs(stack[:, 16:-16, 16:-16] - ref[16:-16, 16:-16]).mean()
    exact = sf.RegistrationModel({(i,): sf.Displacement(d) for i, d in enumerate(truth)})
    assert residual(model.transform(frames)) <= 1.02 * residual(exact.transform(frames))
    assert residual(model.transform(frames)) < 0.6 * residual(frames)


def test_mean_reference_with_iterations(retina):
    # reference=None: a mean of registered frames (iterations >= 1, default 1), or the plain
    # mean of the frames (iterations=0), which the drift blurs; displacements are relative
    # to the mean position (a common offset).
    frames, _, truth = drift_stack(retina, 40, 512, seed=3)
    d0 = sf.CrossCorr().fit(frames, iterations=0).toarray()
    d1 = sf.CrossCorr().fit(frames, iterations=1).toarray()
    d3 = sf.CrossCorr().fit(frames, iterations=3).toarray()
    default = sf.CrossCorr().fit(frames).toarray()   # a mean reference: one registration of its frames
    np.testing.assert_array_equal(default, d1)
    e0, e1, e3 = (np.abs(d - truth - np.median(d - truth, axis=0)).mean() for d in (d0, d1, d3))
    assert e1 <= 0.05, e1
    assert e3 <= 0.05, e3
    assert e1 < e0
    # With a given reference the default is no re-estimation.
    ref = frames[0]
    np.testing.assert_array_equal(sf.CrossCorr().fit(frames, ref).toarray(),
                                  sf.CrossCorr().fit(frames, ref, iterations=0).toarray())


def test_mean_reference_leaves_each_frame_out(retina):
    # Without leaving a frame's own share out of the mean, its (whitened)
    # noise correlates with itself at lag 0 and drags the estimate there.
    frames, _, truth = drift_stack(retina, 40, 512, seed=3)
    ref = frames.mean(axis=0)
    core = _core.stackreg.StackRegCore(ref[None], -0.65, True, [])
    naive, _ = core.fit(frames, 0, 1)
    loo, _ = core.fit(frames, 0, 1, 1.0 / len(frames))
    np.testing.assert_allclose(loo, sf.CrossCorr(taper=0).fit(frames, iterations=0).toarray(), atol=1e-3)

    def spread(d):
        return np.abs(d - truth - np.median(d - truth, axis=0)).mean()
    assert spread(loo) < 0.5 * spread(naive)


def test_volume_subpixel_accuracy(astronaut):
    vol = photo_volume(astronaut, 64, 96, seed=5)
    ref = vol[8:72, 8:104, 8:104]
    rng = np.random.default_rng(6)
    truth = rng.uniform(-3, 3, (6, 3))
    frames = np.array([shift_nd(vol, d)[8:72, 8:104, 8:104] for d in truth]).astype(np.float32)
    frames += rng.normal(0, 0.01, frames.shape).astype(np.float32)
    model = sf.CrossCorr().fit(frames, ref)
    assert model.toarray().shape == (6, 3)
    err = np.abs(model.toarray() - truth)
    assert err.mean() <= 0.05, err.mean()
    assert err.max() <= 0.2


def test_axis_mode_separate_shifts_per_plane(astronaut):
    # Volumes (T, Z, Y, X) whose Z planes each move by their own integer shift.
    rng = np.random.default_rng(7)
    t, z, size = 4, 5, 96
    ref = np.array([astronaut[50 + 40 * k:50 + 40 * k + size, 150:150 + size] for k in range(z)])
    shifts = rng.integers(-6, 7, (t, z, 2))
    frames = np.array([[astronaut[50 + 40 * k - dy:50 + 40 * k - dy + size, 150 - dx:150 - dx + size]
                        for k, (dy, dx) in enumerate(s)] for s in shifts])
    plain = sf.CrossCorr(axis=0, subpixel=False, whiten=0).fit(frames, ref)
    np.testing.assert_array_equal(plain.toarray(), thunder_oracle.fit(frames, ref, axis=0))
    model = sf.CrossCorr(axis=0, subpixel=False).fit(frames, ref)
    assert model.toarray().shape == (t, z, 2)
    np.testing.assert_array_equal(model.toarray(), shifts)
    assert isinstance(model[0], sf.LocalDisplacement) and model[0].axis == 0
    registered = model.transform(frames)
    np.testing.assert_array_equal(registered[:, :, 8:-8, 8:-8], np.broadcast_to(ref, frames.shape)[:, :, 8:-8, 8:-8])
    # Subpixel default; and planes along another axis (axis=2: X planes, shifts in (Z, Y)).
    err = np.abs(sf.CrossCorr(axis=0).fit(frames, ref).toarray() - shifts)
    assert err.mean() <= 0.05 and err.max() <= 0.2
    vol = np.moveaxis(frames, 1, 3)  # (T, Y, X, Z): planes along the last volume axis
    m2 = sf.CrossCorr(axis=2, subpixel=False).fit(vol, np.moveaxis(ref, 0, 2))
    np.testing.assert_array_equal(m2.toarray(), shifts)
    np.testing.assert_array_equal(m2.transform(vol), np.moveaxis(registered, 1, 3))


def test_max_shift_limits_the_search(camera):
    shifts = [(9, -2), (2, 1)]
    frames = crop_stack(camera, shifts, 256)
    ref = camera[100:356, 100:356]
    free = sf.CrossCorr(subpixel=False).fit(frames, ref).toarray()
    np.testing.assert_array_equal(free, shifts)
    limited = sf.CrossCorr(subpixel=False, max_shift=5).fit(frames, ref).toarray()
    assert np.all(np.abs(limited) <= 5)
    np.testing.assert_array_equal(limited[1], shifts[1])
    per_axis = sf.CrossCorr(max_shift=(10, 3)).fit(frames, ref).toarray()
    np.testing.assert_allclose(per_axis, shifts, atol=0.05)


def test_whitening_modes_agree_on_clean_shifts(camera):
    shifts = [(4, -3), (-2, 6)]
    frames = crop_stack(camera, shifts, 256)
    ref = camera[100:356, 100:356]
    for whiten in (0.0, -0.65, -1.0):
        got = sf.CrossCorr(whiten=whiten, subpixel=False).fit(frames, ref).toarray()
        np.testing.assert_array_equal(got, shifts)


# --- transform ------------------------------------------------------------------------


def test_linear_transform_equals_scipy_shift(camera):
    frames = np.stack([camera[:200, :220], camera[200:400, 100:320]])
    deltas = np.array([[2.3, -1.7], [-0.45, 3.9]])
    out = _core.stackreg.shift_frames(frames, deltas, "linear", 1)
    for f, d, o in zip(frames, deltas, out):
        expect = nd_shift(f.astype(np.float64), -d, order=1, mode="nearest")
        np.testing.assert_allclose(o, expect, atol=2e-6)


def test_cubic_transform_equals_numpy_oracle(camera):
    frames = np.stack([camera[:150, :170], camera[150:300, 100:270]])
    deltas = np.array([[1.25, -2.6], [-7.5, 0.3]])
    out = _core.stackreg.shift_frames(frames, deltas, "cubic", 1)
    for f, d, o in zip(frames, deltas, out):
        np.testing.assert_allclose(o, thunder_oracle.shift_cubic(f, d), atol=2e-6)
    # Volumes: separable along all three axes.
    vol = np.stack([camera[k * 20:k * 20 + 50, :60] for k in range(6)])[None]
    d3 = np.array([[0.4, -1.3, 2.2]])
    for interp in ("linear", "cubic"):
        out3 = _core.stackreg.shift_frames(vol, d3, interp, 1)[0]
        expect = (nd_shift(vol[0].astype(np.float64), -d3[0], order=1, mode="nearest") if interp == "linear"
                  else thunder_oracle.shift_cubic(vol[0], d3[0]))
        np.testing.assert_allclose(out3, expect, atol=2e-6)


def test_fourier_transform_is_band_limited(camera):
    smooth = gaussian_filter(camera[100:300, 50:290], 1.0)
    m = 20  # interior: away from the edge filling
    for d in ([0.3, -0.7], [2.5, 3.25], [-7.4, 0.1]):
        truth = fourier_shift(smooth, -d[1], -d[0])[m:-m, m:-m]
        got = _core.stackreg.shift_frames(smooth[None], np.array([d]), "fourier", 1)[0][m:-m, m:-m]
        lin = _core.stackreg.shift_frames(smooth[None], np.array([d]), "linear", 1)[0][m:-m, m:-m]
        assert np.abs(got - truth).max() < 0.25 * np.abs(lin - truth).max()
        assert np.abs(got - truth).max() < 0.01
    # Integer displacements copy pixels; volumes work; threads agree.
    frames = np.stack([camera[:120, :130], camera[120:240, 100:230]])
    np.testing.assert_array_equal(_core.stackreg.shift_frames(frames, np.array([[3.0, -2.0], [0.0, 5.0]]), "fourier", 1),
                                  _core.stackreg.shift_frames(frames, np.array([[3.0, -2.0], [0.0, 5.0]]), "linear", 1))
    deltas = np.array([[0.5, -1.25], [2.75, 0.4]])
    np.testing.assert_array_equal(_core.stackreg.shift_frames(frames, deltas, "fourier", 1),
                                  _core.stackreg.shift_frames(frames, deltas, "fourier", 2))
    vol = gaussian_filter(np.stack([camera[k * 30:k * 30 + 60, :70] for k in range(10)]), 1.0)
    got3 = _core.stackreg.shift_frames(vol[None], np.array([[0.5, -1.5, 2.0]]), "fourier", 1)[0]
    truth3 = shift_nd(vol, [-0.5, 1.5, -2.0], pad=16)
    assert np.abs(got3 - truth3)[3:-3, 10:-10, 10:-10].max() < 0.02


def test_integer_dtypes_rounded_and_clamped(camera):
    # A hard edge: cubic overshoots beyond 0..255, the output is clamped.
    img = np.zeros((64, 64), np.uint8)
    img[:, 32:] = 255
    frames = np.stack([img, img])
    model = sf.RegistrationModel({(0,): sf.Displacement([0, 0.5]), (1,): sf.Displacement([0, -0.25])})
    out = model.transform(frames, interpolation="cubic")
    assert out.dtype == np.uint8
    f32 = _core.stackreg.shift_frames(frames.astype(np.float32), model.toarray(), "cubic", 1)
    assert f32.min() < 0 and f32.max() > 255
    np.testing.assert_array_equal(out, np.clip(np.rint(f32), 0, 255).astype(np.uint8))
    u16 = (camera[:100, :100] * 65535).astype(np.uint16)[None]
    out16 = sf.RegistrationModel({(0,): sf.Displacement([1.5, 0.5])}).transform(u16)
    assert out16.dtype == np.uint16
    f = nd_shift(u16[0].astype(np.float64), [-1.5, -0.5], order=1, mode="nearest")
    assert np.abs(out16[0].astype(np.float64) - f).max() <= 0.51


# --- inputs: memmap, dask, threads ------------------------------------------------------


def test_memmap_in_batches_equals_in_memory(tmp_path, retina):
    import tifffile

    frames, ref, _ = drift_stack(retina, 12, 256, seed=4, amplitude=5)
    u16 = np.clip(frames * 60000, 0, 65535).astype(np.uint16)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, u16)
    before = path.read_bytes()
    mm = tifffile.memmap(path)
    assert isinstance(mm, np.memmap)
    cc = sf.CrossCorr(threads=2)
    in_memory = cc.fit(np.array(mm))
    batched = cc.fit(mm, batch=5)  # 3 batches
    np.testing.assert_array_equal(batched.toarray(), in_memory.toarray())
    out_path = tmp_path / "registered.tif"
    out = tifffile.memmap(out_path, shape=u16.shape, dtype=u16.dtype)
    result = batched.transform(mm, batch=5, out=out)
    assert result is out
    out.flush()
    np.testing.assert_array_equal(tifffile.imread(out_path), in_memory.transform(np.array(mm)))
    assert path.read_bytes() == before  # input never modified


def test_dask_per_block_equals_numpy(camera):
    da = pytest.importorskip("dask.array")
    import dask

    shifts = [(3, -2), (1, 4), (-2, -2), (0, 5), (4, 0), (-3, 1), (2, 2)]
    frames = crop_stack(camera, shifts, 128).astype(np.float32)
    ref = camera[100:228, 100:228]
    np_model = sf.CrossCorr().fit(frames, ref)
    darr = da.from_array(frames, chunks=(3, 64, 128))  # spatial chunks get merged per block
    with dask.config.set(scheduler="threads"):
        dk_model = sf.CrossCorr().fit(darr, ref)
        np.testing.assert_array_equal(dk_model.toarray(), np_model.toarray())
        out = dk_model.transform(darr)
        assert isinstance(out, da.Array)
        np.testing.assert_array_equal(out.compute(), np_model.transform(frames))
        # reference=None and iterations on Dask equal NumPy's.
        np.testing.assert_allclose(sf.CrossCorr().fit(darr, iterations=1).toarray(),
                                   sf.CrossCorr().fit(frames, iterations=1).toarray(), atol=1e-6)


def test_dask_per_block_function_pickles():
    import pickle

    from spectralign_fast.register import crosscorr as registration

    assert pickle.loads(pickle.dumps(registration._fit_block)) is registration._fit_block
    assert pickle.loads(pickle.dumps(registration._transform_block)) is registration._transform_block


def test_threads_one_and_two_equal(retina):
    frames, ref, _ = drift_stack(retina, 10, 256, seed=8, amplitude=5)
    m1 = sf.CrossCorr(threads=1).fit(frames, ref)
    m2 = sf.CrossCorr(threads=2).fit(frames, ref)
    np.testing.assert_array_equal(m1.toarray(), m2.toarray())
    np.testing.assert_array_equal(m1.transform(frames, threads=1), m1.transform(frames, threads=2))
    np.testing.assert_array_equal(m1.transform(frames, interpolation="cubic", threads=1),
                                  m1.transform(frames, interpolation="cubic", threads=2))


def test_inputs_not_modified_and_model_api(camera):
    frames = crop_stack(camera, [(1, 2), (3, -1)], 128)
    copy = frames.copy()
    ref = camera[100:228, 100:228].copy()
    rcopy = ref.copy()
    model = sf.CrossCorr().fit(frames, ref, iterations=1)
    model.transform(frames)
    sf.CrossCorr().fit_and_transform(frames)
    np.testing.assert_array_equal(frames, copy)
    np.testing.assert_array_equal(ref, rcopy)
    assert len(model) == 2 and set(model.transformations) == {(0,), (1,)}
    assert model[1] is model[(1,)]
    text = repr(model)
    assert "RegistrationModel" in text and "CrossCorr" in text and "2 frames" in text
    assert repr(sf.Displacement([1.5, -2])) == "Displacement(delta=[1.5, -2.0])"
    # A model built by hand (thunder-style dict) transforms too.
    manual = sf.RegistrationModel({(0,): sf.Displacement([1, 2]), (1,): sf.Displacement([3, -1])})
    np.testing.assert_array_equal(manual.transform(frames)[:, 8:-8, 8:-8],
                                  np.broadcast_to(ref, frames.shape)[:, 8:-8, 8:-8])
    np.testing.assert_array_equal(sf.Displacement([1, 2]).toarray(), [1.0, 2.0])


# --- bad input --------------------------------------------------------------------------


def test_nan_frame_gets_nan_displacement_and_warning(camera):
    frames = crop_stack(camera, [(1, 2), (3, -1), (0, 0)], 128).astype(np.float32)
    frames[1, 5, 5] = np.nan
    with pytest.warns(RuntimeWarning, match="NaN or inf"):
        model = sf.CrossCorr().fit(frames)
    d = model.toarray()
    assert np.isnan(d[1]).all() and np.isfinite(d[[0, 2]]).all()
    # transform: the NaN-displacement frame is returned unshifted, with a warning.
    with pytest.warns(RuntimeWarning, match="returned unshifted"):
        out = model.transform(frames)
    np.testing.assert_array_equal(out[1], frames[1])
    with pytest.warns(RuntimeWarning, match="returned unshifted"):
        np.testing.assert_array_equal(model[1].apply(frames[1]), frames[1])


def test_constant_frame_gets_zero_displacement(camera):
    frames = crop_stack(camera, [(1, 2), (0, 0)], 128).astype(np.float32)
    frames[1] = 0.5
    d = sf.CrossCorr().fit(frames, camera[100:228, 100:228]).toarray()
    np.testing.assert_array_equal(d[1], [0.0, 0.0])


def test_bad_inputs_have_clear_errors(camera):
    frames = crop_stack(camera, [(1, 2), (0, 0)], 64)
    cc = sf.CrossCorr()
    with pytest.raises(ValueError, match="reference shape"):
        cc.fit(frames, camera[:32, :32])
    with pytest.raises(ValueError, match=r"\(T, Y, X\)"):
        cc.fit(frames[0])
    with pytest.raises(ValueError, match="empty stack"):
        cc.fit(frames[:0])
    with pytest.raises(ValueError, match="NaN or inf"):
        ref = frames[0].copy()
        ref[0, 0] = np.inf
        cc.fit(frames, ref)
    with pytest.raises(ValueError, match="constant"):
        cc.fit(frames, np.ones((64, 64)))
    with pytest.raises(TypeError, match="integer or floating"):
        cc.fit(frames > 0.5)
    with pytest.raises(ValueError, match="whiten"):
        sf.CrossCorr(whiten=0.5)
    with pytest.raises(ValueError, match="axis"):
        sf.CrossCorr(axis=0).fit(frames)
    with pytest.raises(ValueError, match="axis"):
        sf.CrossCorr(axis=5)
    with pytest.raises(ValueError, match="max_shift"):
        sf.CrossCorr(max_shift=-1)
    with pytest.raises(ValueError, match="max_shift"):
        sf.CrossCorr(max_shift=(1, 2, 3)).fit(frames)
    with pytest.raises(ValueError, match="threads"):
        sf.CrossCorr(threads=-1)
    model = cc.fit(frames)
    with pytest.raises(ValueError, match="2 transformations"):
        model.transform(np.concatenate([frames, frames]))
    with pytest.raises(ValueError, match="interpolation"):
        model.transform(frames, interpolation="quintic")
    with pytest.raises(ValueError, match="interpolation"):
        _core.stackreg.shift_frames(frames.astype(np.float32), np.zeros((2, 2)), "spline", 1)
    with pytest.raises(ValueError, match="overlap"):
        f32 = frames.astype(np.float32)
        model.transform(f32, out=f32)
    with pytest.raises(ValueError, match="shape"):
        model.transform(frames, out=np.empty((2, 64, 63), frames.dtype))
    with pytest.raises(ValueError, match="out must"):
        _core.stackreg.shift_frames(frames.astype(np.float32), np.zeros((2, 2)), "linear", 1,
                          np.empty(frames.shape, np.float64))


# --- Reliability: a frame registered to its own mean (issue "Reliability", finding 5) -------


@pytest.mark.parametrize("iterations", [0, 1, None])
def test_single_frame_against_its_own_mean_does_not_move(camera, iterations):
    frame = camera[100:228, 100:228][None].astype(np.float32)
    frame = frame + np.random.default_rng(0).normal(0, 0.05, frame.shape).astype(np.float32)
    model = sf.CrossCorr().fit(frame, iterations=iterations)
    np.testing.assert_array_equal(model.toarray(), [[0.0, 0.0]])
    np.testing.assert_array_equal(sf.CrossCorr().fit_and_transform(frame, iterations=iterations), frame)
    vol = np.stack([camera[100:164, 100:164]] * 4)[None].astype(np.float32)
    np.testing.assert_array_equal(sf.CrossCorr(axis=0).fit(vol).toarray(), np.zeros((1, 4, 2)))


def test_only_one_finite_frame_is_its_own_mean(camera):
    frames = np.stack([camera[100:228, 100:228]] * 3).astype(np.float32)
    frames[0, 5, 5] = np.nan
    frames[2, 0, 0] = np.inf
    with pytest.warns(RuntimeWarning, match="2 frame"):
        d = sf.CrossCorr().fit(frames).toarray()
    assert np.isnan(d[0]).all() and np.isnan(d[2]).all()
    np.testing.assert_array_equal(d[1], [0.0, 0.0])


def test_single_frame_on_dask_does_not_move(camera):
    da = pytest.importorskip("dask.array")
    import dask

    frame = camera[100:228, 100:228][None].astype(np.float32)
    with dask.config.set(scheduler="threads"):
        np.testing.assert_array_equal(sf.CrossCorr().fit(da.from_array(frame)).toarray(), [[0.0, 0.0]])


def test_integer_stack_registers_like_its_float_copy(retina):
    # Issue "Reliability": the re-estimated mean reference was rounded to the input's integer
    # type, moving integer stacks' displacements by up to 0.0018 px against the same data as float.
    frames, _, _ = drift_stack(retina, 12, 128, seed=3, noise=0.02)
    u16 = np.rint(np.clip(frames, 0, 1) * 4095).astype(np.uint16)
    d_int = sf.CrossCorr().fit(u16, iterations=2).toarray()
    d_float = sf.CrossCorr().fit(u16.astype(np.float32), iterations=2).toarray()
    np.testing.assert_allclose(d_int, d_float, rtol=0, atol=1e-6)
