"""spectralign_fast.warp against independent oracles: scipy.ndimage's
affine_transform / map_coordinates (float64) on real image content, exact
algebra (ramps) for the Catmull-Rom cubic, and plain-language refusals.

Tolerances: the core computes in float32 (coordinates in double) while scipy
computes in float64, so float results agree to about 1e-6 of the image range;
the tests allow 1e-5. Integer results are rounded half up in both, so they
may differ by one where the float value sits at a .5 boundary."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

import spectralign_fast as sf

ORDERS = (0, 1, 3)
MODES = ("constant", "nearest")


def rotation2(deg: float, centre, shift=(0.0, 0.0)) -> np.ndarray:
    """Homogeneous 3x3 (array axis order) rotating about `centre`, then shifting."""
    a = np.deg2rad(deg)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    c = np.asarray(centre, dtype=np.float64)
    M = np.eye(3)
    M[:2, :2] = R
    M[:2, 2] = c - R @ c + np.asarray(shift)
    return M


def affine3(deg: float, centre, shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Homogeneous 4x4: a rotation in the (y, x) plane, a shear of z along y, a shift."""
    a = np.deg2rad(deg)
    L = np.eye(3)
    L[1:, 1:] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    L[0, 1] = 0.015
    L[2, 0] = -0.03
    c = np.asarray(centre, dtype=np.float64)
    M = np.eye(4)
    M[:3, :3] = L
    M[:3, 3] = c - L @ c + np.asarray(shift)
    return M


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """skimage's camera, an odd crop, float32 in [0, 255]."""
    from skimage import data

    return data.camera()[3:260, 10:301].astype(np.float32)


@pytest.fixture(scope="module")
def astro() -> np.ndarray:
    from skimage import data

    return data.astronaut()[..., :3].mean(axis=-1).astype(np.float32)


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    """A 3-D stack of shifted crops of the camera photograph (odd shape)."""
    from skimage import data

    cam = data.camera().astype(np.float32)
    return np.stack([cam[40 + 3 * k:113 + 3 * k, 50 + 2 * k:131 + 2 * k] for k in range(19)])


def scipy_affine(img, M, order, mode, cval=0.0, output_shape=None):
    return ndi.affine_transform(img.astype(np.float64), M, order=order, mode=mode, cval=cval,
                                output_shape=output_shape, prefilter=order > 1)


def assert_close(out, ref, image, order):
    rng = float(np.ptp(image))
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5 * rng if order else 0)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("mode", MODES)
def test_2d_affine_matches_scipy(photo, order, mode):
    M = rotation2(7.3, np.array(photo.shape) / 2, shift=(3.31, -12.77))
    out = sf.warp(photo, M, order=order, mode=mode, cval=17.5)
    assert out.dtype == np.float32 and out.shape == photo.shape
    assert_close(out, scipy_affine(photo, M, order, mode, 17.5), photo, order)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("mode", MODES)
def test_2d_output_shape_and_scale(astro, order, mode):
    # Zoom-out with a small rotation into an odd, larger canvas: many pixels
    # fall outside the image, exercising both edge rules.
    M = rotation2(-2.1, (200, 230), shift=(-40.4, -61.7))
    M[:2, :2] *= 0.83
    out = sf.warp(astro, M, output_shape=(613, 577), order=order, mode=mode, cval=-3)
    assert out.shape == (613, 577)
    assert_close(out, scipy_affine(astro, M, order, mode, -3.0, (613, 577)), astro, order)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("mode", MODES)
def test_3d_affine_matches_scipy(volume, order, mode):
    M = affine3(4.1, np.array(volume.shape) / 2, shift=(0.37, -2.6, 1.9))
    out = sf.warp(volume, M, order=order, mode=mode, output_shape=(17, 80, 71))
    assert out.shape == (17, 80, 71)
    assert_close(out, scipy_affine(volume, M, order, mode, 0.0, (17, 80, 71)), volume, order)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("order", ORDERS)
def test_integer_images_round_half_up_and_clamp(photo, dtype, order):
    scale = 1 if dtype == np.uint8 else 257
    img = (photo * scale).round().astype(dtype)
    M = rotation2(5.0, (100, 120), shift=(0.4, -0.3))
    out = sf.warp(img, M, order=order, mode="nearest")
    assert out.dtype == dtype
    ref = scipy_affine(img, M, order, "nearest")
    expect = np.clip(np.floor(ref + 0.5), 0, np.iinfo(dtype).max)
    diff = np.abs(out.astype(np.int64) - expect)
    assert diff.max() <= (0 if order == 0 else 1)
    # Off by one only where the float value sits within float32 rounding of a
    # .5 boundary (about 4e-3 at 65535).
    assert np.mean(diff) < (1e-3 if dtype == np.uint8 else 1e-2)
    if order == 3:  # the cubic overshoots at sharp edges: clamped, not wrapped
        raw = scipy_affine(img.astype(np.float32), M, 3, "nearest")
        assert raw.min() < 0 or raw.max() > np.iinfo(dtype).max
        assert np.all(out[raw < -1] == 0)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("mode", MODES)
def test_2d_field_matches_map_coordinates(photo, order, mode):
    rng = np.random.default_rng(5)
    shape = (231, 263)
    field = ndi.gaussian_filter(rng.normal(0, 40, shape + (2,)), (9, 9, 0)).astype(np.float32)
    field[..., 1] += 4.3
    out = sf.warp(photo, field, order=order, mode=mode, cval=2.0)
    assert out.shape == shape
    coords = np.indices(shape, dtype=np.float64) + np.moveaxis(field.astype(np.float64), -1, 0)
    ref = ndi.map_coordinates(photo.astype(np.float64), coords, order=order, mode=mode, cval=2.0,
                              prefilter=order > 1)
    assert_close(out, ref, photo, order)


@pytest.mark.parametrize("order", ORDERS)
def test_3d_field_matches_map_coordinates(volume, order):
    rng = np.random.default_rng(6)
    shape = (15, 66, 77)
    field = ndi.gaussian_filter(rng.normal(0, 6, shape + (3,)), (3, 5, 5, 0))
    out = sf.warp(volume, field, order=order, mode="constant")   # float64 field: converted
    coords = np.indices(shape, dtype=np.float64) + np.moveaxis(field.astype(np.float32), -1, 0)
    ref = ndi.map_coordinates(volume.astype(np.float64), coords, order=order, mode="constant",
                              prefilter=order > 1)
    assert_close(out, ref, volume, order)


def test_field_of_zeros_is_identity_and_integer_field_is_a_shift(photo):
    zero = np.zeros(photo.shape + (2,), np.float32)
    for order in (0, 1):
        np.testing.assert_array_equal(sf.warp(photo, zero, order=order), photo)
    # The cubic B-spline goes through float32 coefficients: exact to rounding.
    np.testing.assert_allclose(sf.warp(photo, zero, order=3), photo, rtol=0, atol=1e-5 * 255)
    shift = zero.copy()
    shift[..., 0] = 3
    shift[..., 1] = -5
    out = sf.warp(photo, shift, mode="nearest")
    np.testing.assert_array_equal(out[:-3, 5:], photo[3:, :-5])


def test_catmull_rom_reproduces_quadratics(photo):
    """The Keys cubic reproduces polynomials up to degree 2 exactly (no
    prefilter): a warped quadratic ramp is the ramp at the mapped points."""
    y, x = np.indices((120, 140), dtype=np.float64)
    ramp = (0.01 * (x - 60) ** 2 + 0.5 * y - 0.2 * x + 3).astype(np.float32)
    M = rotation2(9.0, (60, 70), shift=(0.3, 0.45))
    out = sf.warp(ramp, M, order="catmull-rom")
    yy, xx = np.indices(ramp.shape, dtype=np.float64)
    src = np.einsum("ij,jkl->ikl", M[:2, :2], np.stack([yy, xx])) + M[:2, 2, None, None]
    expect = 0.01 * (src[1] - 60) ** 2 + 0.5 * src[0] - 0.2 * src[1] + 3
    inner = (src[0] >= 1) & (src[0] <= 117) & (src[1] >= 1) & (src[1] <= 137)
    assert inner.sum() > 10000
    np.testing.assert_allclose(out[inner], expect[inner], atol=1e-3)
    # Interpolating: integer shifts give the samples back.
    T = np.eye(3)
    T[:2, 2] = (2, -3)
    np.testing.assert_array_equal(sf.warp(photo, T, order="catmull-rom")[:-2, 3:], photo[2:, :-3])


def as_big_endian(a):
    return a.astype(a.dtype.newbyteorder(">"))


def unaligned(a):
    buf = np.zeros(a.nbytes + 1, np.uint8)
    view = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    view[...] = a
    return view


@pytest.mark.parametrize("layout", ["fortran", "negative", "step", "big-endian", "unaligned", "broadcast"])
def test_any_layout_gives_the_contiguous_result(photo, layout):
    M = rotation2(3.0, (120, 140), shift=(0.25, 1.5))
    img = photo[:200, :240].copy()
    if layout == "fortran":
        arg = np.asfortranarray(img)
    elif layout == "negative":
        arg = img[::-1, ::-1][::-1, ::-1]
        arg = np.ascontiguousarray(img[::-1, ::-1])[::-1, ::-1]
    elif layout == "step":
        big = np.zeros((400, 480), np.float32)
        big[::2, ::2] = img
        arg = big[::2, ::2]
    elif layout == "big-endian":
        arg = as_big_endian(img)
    elif layout == "unaligned":
        arg = unaligned(img)
        assert not arg.flags.aligned
    else:
        img = np.broadcast_to(img[100], img.shape)
        arg = img
    before = np.array(arg, copy=True)
    out = sf.warp(arg, M, order=1, mode="nearest")
    np.testing.assert_array_equal(out, sf.warp(np.ascontiguousarray(img), M, order=1, mode="nearest"))
    np.testing.assert_array_equal(arg, before)
    if layout == "broadcast":  # zero strides: every row the same
        assert arg.strides[0] == 0


def test_3d_broadcast_and_negative_strides(volume):
    M = affine3(2.0, (9, 36, 40))
    plane = volume[4]
    arg = np.broadcast_to(plane[::-1], (6,) + plane.shape)
    out = sf.warp(arg, M, order=1)
    np.testing.assert_array_equal(out, sf.warp(np.ascontiguousarray(arg), M, order=1))


@pytest.mark.parametrize("order", ORDERS + ("catmull-rom",))
def test_bit_identical_for_every_thread_count(photo, volume, order):
    M2 = rotation2(4.4, (128, 145), shift=(0.3, -0.8))
    M3 = affine3(3.3, (9, 36, 40), shift=(0.2, 0.1, -0.4))
    field = np.random.default_rng(1).normal(0, 3, (40, 50, 60, 3)).astype(np.float32)
    runs = {t: (sf.warp(photo, M2, order=order, threads=t),
                sf.warp(volume, M3, order=order, mode="nearest", threads=t),
                sf.warp(volume, field, order=order, threads=t)) for t in (1, 2, 3, 7)}
    for t in (2, 3, 7):
        for a, b in zip(runs[1], runs[t]):
            assert a.tobytes() == b.tobytes()


def test_callers_arrays_are_left_alone(photo):
    img = photo.copy()
    M = rotation2(5, (10, 10))
    Mc = M.copy()
    field = np.ones(photo.shape + (2,), np.float64)
    fc = field.copy()
    for order in ORDERS:
        sf.warp(img, M, order=order)
        sf.warp(img, field, order=order)
    np.testing.assert_array_equal(img, photo)
    np.testing.assert_array_equal(M, Mc)
    np.testing.assert_array_equal(field, fc)


def test_matrix_forms(photo):
    M = rotation2(2.0, (50, 60), shift=(1.1, 0.2))

    class Transform:
        matrix = M

    ref = sf.warp(photo, M)
    np.testing.assert_array_equal(sf.warp(photo, M[:2]), ref)
    np.testing.assert_array_equal(sf.warp(photo, Transform()), ref)
    np.testing.assert_array_equal(sf.warp(photo, M.tolist()), ref)


def test_nan_pixels_propagate_locally(photo):
    img = photo.copy()
    img[100, 100] = np.nan
    out = sf.warp(img, np.eye(3) + np.array([[0, 0, 0.5], [0, 0, 0.5], [0, 0, 0]]))
    assert np.isnan(out[99:101, 99:101]).all()
    assert np.isnan(out).sum() == 4


@pytest.mark.parametrize("bad, err, words", [
    (dict(transform=np.full((3, 3), np.nan)), ValueError, "NaN"),
    (dict(transform=np.array([[1, 2, 0], [2, 4, 0], [0, 0, 1.0]])), ValueError, "singular"),
    (dict(transform=np.array([[1, 0, 0], [0, 1, 0], [0.1, 0, 1.0]])), ValueError, "last row"),
    (dict(transform=np.eye(4)), ValueError, "(3, 3)"),
    (dict(transform=np.zeros((10, 10, 3), np.float32)), ValueError, "output_shape + (2,)"),
    (dict(transform=np.full((10, 10, 2), np.inf, np.float32)), ValueError, "NaN or infinite"),
    (dict(transform=np.zeros((10, 10, 2), np.int32)), TypeError, "float32"),
    (dict(output_shape=(0, 10)), ValueError, ">= 1"),
    (dict(output_shape=(10,)), ValueError, "2 entries"),
    (dict(output_shape=(2**31, 4)), ValueError, "absurd"),
    (dict(output_shape=(2**30, 2**30)), ValueError, "memory"),
    (dict(order=2), ValueError, "order"),
    (dict(order=True), ValueError, "order"),
    (dict(mode="reflect"), ValueError, "mode"),
    (dict(cval=np.nan), ValueError, "finite"),
    (dict(threads=-1), ValueError, ">= 0"),
    (dict(image=np.zeros((5, 5))), TypeError, "float32"),
    (dict(image=np.zeros((5, 5), np.int16)), TypeError, "float32"),
    (dict(image=np.zeros(5, np.float32)), ValueError, "2-D or 3-D"),
    (dict(image=np.zeros((0, 5), np.float32)), ValueError, "empty"),
])
def test_bad_input_is_refused_in_plain_words(bad, err, words):
    args = dict(image=np.ones((20, 20), np.float32), transform=np.eye(3))
    args.update(bad)
    image, transform = args.pop("image"), args.pop("transform")
    with pytest.raises(err, match=None) as info:
        sf.warp(image, transform, **args)
    assert words in str(info.value)


def test_core_refuses_bad_input_too():
    from spectralign_fast import _core

    img = np.ones((8, 8), np.float32)
    with pytest.raises(ValueError, match="NaN"):
        _core.sample.warp_affine(img, np.full((3, 3), np.nan), [8, 8], "linear", "constant", 0.0, 1)
    with pytest.raises(ValueError, match="singular"):
        _core.sample.warp_affine(img, np.diag([1.0, 0.0, 1.0]), [8, 8], "linear", "constant", 0.0, 1)
    with pytest.raises(ValueError, match="NaN or infinite"):
        _core.sample.warp_field(img, np.full((8, 8, 2), np.nan, np.float32), "linear", "constant", 0.0, 1)
    with pytest.raises(ValueError, match="kernel"):
        _core.sample.warp_affine(img, np.eye(3), [8, 8], "lanczos", "constant", 0.0, 1)
    with pytest.raises(ValueError, match="positive"):
        _core.sample.warp_affine(img, np.eye(3), [8, -1], "linear", "constant", 0.0, 1)


@pytest.mark.parametrize("mode", MODES)
def test_prefilter_matches_scipy_spline_filter(photo, mode):
    from spectralign_fast import _core

    coef, pad = _core.sample.bspline_coefficients(photo, mode, 2)
    a = photo.astype(np.float64)
    if mode == "nearest":
        a = np.pad(a, 12, mode="edge")
    ref = ndi.spline_filter(a, 3, mode="mirror" if mode == "constant" else "nearest")
    assert pad == (12 if mode == "nearest" else 0)
    np.testing.assert_allclose(coef, ref, rtol=0, atol=1e-6 * np.ptp(photo))
