"""The SyN core kernels (_core.register field and step functions) against independent NumPy
oracles and, where installed, DIPY's Cython: composition, inversion, warping, up-sampling, the
Jacobian, step normalisation and the metrics' steps; bit-identity across thread counts; bad input."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from spectralign_fast import synthetic
from spectralign_fast._core import register as core


def _smooth_field(shape, scale, seed):
    rng = np.random.default_rng(seed)
    d = len(shape)
    f = ndimage.gaussian_filter(rng.normal(size=tuple(shape) + (d,)), [4.0] * d + [0.0])
    return (f * scale / np.abs(f).max()).astype(np.float32)


def _interp_zero_padded(field, pts):
    """DIPY's d-linear rule: zero outside (-1, n); missing corners count as zero; also whether
    all corners exist."""
    d = pts.shape[-1]
    out = np.zeros(pts.shape[:-1] + (field.shape[-1],))
    vals = field.reshape(field.shape[:d] + (-1,))
    base = np.floor(pts).astype(np.int64)
    frac = pts - base
    inside_all = np.ones(pts.shape[:-1], dtype=bool)
    valid = np.all((pts > -1) & (pts < np.array(field.shape[:d])), axis=-1)
    for corner in range(1 << d):
        bits = np.array([(corner >> (d - 1 - a)) & 1 for a in range(d)])
        idx = base + bits
        ok = np.all((idx >= 0) & (idx < np.array(field.shape[:d])), axis=-1) & valid
        inside_all &= ok
        w = np.prod(np.where(bits == 1, frac, 1 - frac), axis=-1)
        clipped = np.clip(idx, 0, np.array(field.shape[:d]) - 1)
        v = vals[tuple(clipped[..., a] for a in range(d))]
        out += np.where(ok[..., None], w[..., None] * v, 0.0)
    return out, inside_all & valid


def _grid(shape):
    return np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"), -1)


@pytest.mark.parametrize("shape", [(40, 52), (18, 22, 26)])
def test_compose_matches_the_oracle(shape):
    d = len(shape)
    d1, d2 = _smooth_field(shape, 3.0, 1), _smooth_field(shape, 3.0, 2)
    W = np.diag([0.5] * d + [1.0])
    comp, stats = core.compose_fields(d1, d2, np.eye(d + 1), W, 0.7)
    pts = _grid(shape) + d1.astype(np.float64) @ W[:d, :d].T
    val, inside = _interp_zero_padded(d2, pts)
    expected = np.where(inside[..., None], d1 + 0.7 * val, 0.0)
    np.testing.assert_allclose(comp, expected, atol=2e-6)
    norms = np.sqrt((expected[inside] ** 2).sum(-1))
    assert stats[0] == pytest.approx(norms.max(), rel=1e-5)
    # In place (out=d1) gives the same numbers, and so does a composition without its statistics.
    same = d1.copy()
    core.compose_fields(same, d2, np.eye(d + 1), W, 0.7, out=same)
    np.testing.assert_array_equal(same, comp)
    bare, none = core.compose_fields(d1, d2, np.eye(d + 1), W, 0.7, stats=False, threads=2)
    assert none is None
    np.testing.assert_array_equal(bare, comp)


@pytest.mark.parametrize("shape", [(48, 40), (20, 24, 18)])
def test_inverse_composes_to_the_identity(shape):
    d = len(shape)
    field = _smooth_field(shape, 2.0, 3)
    inv = core.invert_field(field, np.eye(d + 1), np.ones(d), 100, 1e-6)
    residual, _ = core.compose_fields(inv, field, np.eye(d + 1), np.eye(d + 1), 1.0)
    inner = tuple(slice(4, n - 4) for n in shape)
    assert np.abs(residual[inner]).max() < 0.05


def test_warp_matches_the_oracle_and_nearest_keeps_labels():
    img = synthetic.photograph("immunohistochemistry")[:64, :80].copy()
    field = _smooth_field(img.shape, 4.0, 4)
    out = core.warp_image(img, field, np.eye(3), np.eye(3), np.eye(3), list(img.shape))
    val, _ = _interp_zero_padded(img[..., None], _grid(img.shape) + field)
    np.testing.assert_allclose(out, val[..., 0], atol=2e-6)
    labels = (img * 7).astype(np.uint8)
    warped = core.warp_image(labels, field, np.eye(3), np.eye(3), np.eye(3), list(img.shape),
                             interpolation="nearest")
    assert warped.dtype == np.uint8 and set(np.unique(warped)) <= set(np.unique(labels)) | {0}


def test_resample_jacobian_and_normalize():
    field = _smooth_field((30, 34), 2.0, 5)
    up = core.resample_field(field, np.array([0.5, 0.5]), [59, 67])
    np.testing.assert_allclose(up[::2, ::2], field, atol=1e-6)
    # A linear field u = (A - I) x has Jacobian det(A) everywhere.
    A = np.array([[1.1, 0.2], [-0.1, 0.9]])
    lin = (_grid((20, 24)) @ (A - np.eye(2)).T).astype(np.float32)
    jac = core.jacobian_determinant(lin, np.diag([2.0, 2.0, 1.0]))
    np.testing.assert_allclose(jac, np.linalg.det(np.eye(2) + (A - np.eye(2)) / 2.0), rtol=1e-5)
    step = field.copy()
    nrm = core.normalize_step(step, np.array([1.0, 2.0]))
    inner = field.copy()
    inner[[0, -1], :] = 0
    inner[:, [0, -1]] = 0
    expected = np.sqrt(((inner / np.array([1.0, 2.0])) ** 2).sum(-1)).max()
    assert nrm == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(step, inner / expected, rtol=1e-6, atol=1e-7)


# 3-D steps: spacings that are all powers of two (multiplied by their reciprocals) and not.
@pytest.mark.parametrize("spacing", [(1.0, 2.0, 0.5), (1.0, 3.0, 0.7)])
def test_normalize_step_3d_matches_numpy(spacing):
    rng = np.random.default_rng(7)
    field = rng.standard_normal((9, 11, 13, 3)).astype(np.float32)
    step = field.copy()
    nrm = core.normalize_step(step, np.array(spacing), threads=2)
    inner = np.zeros_like(field)
    inner[1:-1, 1:-1, 1:-1] = field[1:-1, 1:-1, 1:-1]
    expected = np.sqrt(((inner.astype(np.float64) / np.array(spacing)) ** 2).sum(-1)).max()
    assert nrm == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(step, inner / expected, rtol=1e-6, atol=1e-7)


def _cc_oracle(static, moving, radius):
    """DIPY's CC step (before smoothing) with explicit window sums."""
    size = 2 * radius + 1
    box = lambda a: ndimage.uniform_filter(a.astype(np.float64), size, mode="constant") * size ** a.ndim
    count = box(np.ones_like(static))
    si, sj = box(static), box(moving)
    sii, sjj, sij = box(static * static), box(moving * moving), box(static * moving)
    im, jm = si / count, sj / count
    sfm = sij - jm * si - im * sj + count * jm * im
    sff = sii - 2 * im * si + count * im * im
    smm = sjj - 2 * jm * sj + count * jm * jm
    ii, ji = static - im, moving - jm
    temp = 2.0 * sfm / (sff * smm) * (ji - sfm / sff * ii)
    grad = np.stack(np.gradient(static.astype(np.float32)), -1)
    step = -temp[..., None] * grad
    inner = tuple(slice(radius, n - radius) for n in static.shape)
    out = np.zeros_like(step)
    out[inner] = step[inner]
    return out


def _photo_crop(shape):
    """A crop of the IHC photograph of this 2-D shape, or a volume of shifted crops for a 3-D one."""
    photo = synthetic.photograph("immunohistochemistry")
    if len(shape) == 2:
        return photo[:shape[0], :shape[1]].copy()
    return np.stack([photo[3 * z:3 * z + shape[1], 2 * z:2 * z + shape[2]] for z in range(shape[0])])


# 2-D images run in bands of 32 rows: whole bands, a short last band, one band shorter than the window.
# Rows' interior runs are done eight voxels at a time: runs of a multiple of eight (104), of eight
# and some (52, 13), and of under eight (6); a volume as well.
@pytest.mark.parametrize("shape", [(96, 112), (75, 60), (9, 40), (20, 14), (12, 15, 21)])
def test_cc_step_matches_the_window_sum_oracle(shape):
    img = _photo_crop(shape)
    d = img.ndim
    moving = np.roll(img, 2, axis=-1).copy()
    res = core.cc_steps(img, moving, 4, np.ones(d), np.eye(d), 0.0, threads=2)
    np.testing.assert_allclose(res.forward, _cc_oracle(img, moving, 4), rtol=1e-4, atol=1e-6)
    assert res.forward_energy < 0


def test_steps_match_dipy():
    cc = pytest.importorskip("dipy.align.crosscorr")
    ssd = pytest.importorskip("dipy.align.sumsqdiff")
    img = synthetic.photograph("immunohistochemistry")[:80, :96].copy()
    moving = np.roll(img, 1, axis=0).copy()
    factors = np.asarray(cc.precompute_cc_factors_2d(img, moving, 3))
    grad = np.stack(np.gradient(img), -1).astype(np.float32)
    theirs, energy = cc.compute_cc_forward_step_2d(grad, factors, 3)
    ours = core.cc_steps(img, moving, 3, np.ones(2), np.eye(2), 0.0)
    np.testing.assert_allclose(ours.forward, np.asarray(theirs), rtol=2e-3, atol=1e-5)
    assert ours.forward_energy == pytest.approx(energy, rel=1e-5)
    theirs, energy = ssd.compute_ssd_demons_step_2d(img - moving, grad, 1.0, None)
    ours = core.ssd_steps(img, moving, np.ones(2), np.eye(2), 1e-9, 1, "demons")
    np.testing.assert_allclose(ours.forward, np.asarray(theirs), rtol=1e-4, atol=1e-5)
    assert ours.forward_energy == pytest.approx(energy, rel=1e-6)


@pytest.mark.parametrize("kind", ["cc", "ssd_gn", "em", "mi", "invert", "warp"])
def test_threads_give_identical_bits(kind):
    img = synthetic.photograph("immunohistochemistry")[:70, :90].copy()
    moving = np.roll(img, 2, axis=0).copy()
    sp, di = np.ones(2), np.eye(2)

    def run(threads):
        if kind == "cc":
            r = core.cc_steps(img, moving, 4, sp, di, 2.0, threads=threads)
        elif kind == "ssd_gn":
            r = core.ssd_steps(img, moving, sp, di, 4.0, 5, "gauss_newton", levels_below=3, threads=threads)
        elif kind == "em":
            r = core.em_steps(img, moving, None, None, sp, di, 64, 1.0, 5, True, "gauss_newton", levels_below=2,
                              threads=threads)
        elif kind == "mi":
            r = core.mi_steps(img, moving, 32, sp, di, 2.0, threads=threads)
        elif kind == "invert":
            return core.invert_field(_smooth_field(img.shape, 3.0, 7), np.eye(3), sp, 20, 1e-4, threads=threads)
        else:
            return core.warp_image(img, _smooth_field(img.shape, 3.0, 7), np.eye(3), np.eye(3), np.eye(3),
                                   list(img.shape), threads=threads)
        return np.concatenate([r.forward.ravel(), r.backward.ravel(), [r.forward_energy, r.backward_energy]])

    a, b = run(1), run(3)
    np.testing.assert_array_equal(a, b)


def test_bad_input():
    f = np.zeros((10, 12, 2), np.float32)
    with pytest.raises(ValueError, match="components"):
        core.compose_fields(np.zeros((10, 12, 3), np.float32), f, np.eye(3), np.eye(3), 1.0)
    with pytest.raises(ValueError, match="out cannot be d2"):
        core.compose_fields(f.copy(), f, np.eye(3), np.eye(3), 1.0, out=f)
    with pytest.raises(TypeError, match="float32"):
        core.compose_fields(f, f.copy(), np.eye(3), np.eye(3), 1.0, out=np.zeros((10, 12, 2)))
    with pytest.raises(ValueError, match="finite"):
        core.compose_fields(f, f, np.full((3, 3), np.nan), np.eye(3), 1.0)
    with pytest.raises(ValueError, match="spacing"):
        core.invert_field(f, np.eye(3), np.array([1.0, 0.0]), 5, 1e-3)
    with pytest.raises(TypeError, match="writeable"):
        core.normalize_step(np.zeros((10, 12, 2)), np.ones(2))
    img = np.ones((10, 12), np.float32)
    with pytest.raises(ValueError, match="radius"):
        core.cc_steps(img, img, 6, np.ones(2), np.eye(2), 1.0)
    with pytest.raises(ValueError, match="step_type"):
        core.ssd_steps(img, img, np.ones(2), np.eye(2), 1.0, 1, "newton")
    with pytest.raises(ValueError, match="share one grid"):
        core.mi_steps(img, np.ones((10, 13), np.float32), 32, np.ones(2), np.eye(2), 1.0)
    with pytest.raises(TypeError, match="nearest"):
        core.warp_image(img.astype(np.int8), f, np.eye(3), np.eye(3), np.eye(3), [10, 12], interpolation="nearest")


@pytest.mark.parametrize("shape, sigma", [((60, 70), 1.5), ((61, 70), 5.0), ((7, 45), 3.0), ((12, 7), 2.0),
                                          ((23, 31, 19), 2.0), ((14, 9, 22), 5.0), ((9, 11, 7), 1.0)])
def test_step_smoothing_is_scipys_gaussian_per_component(shape, sigma):
    # Line counts that are and are not multiples of the four lines smoothed together, lines
    # shorter than the kernel (reflected more than once), lines of values in whole groups of 16,
    # with a partial last group and of under 16 values; 2-D and 3-D.
    img = _photo_crop(shape)
    d = img.ndim
    moving = np.roll(img, 1, axis=-1).copy()
    raw = core.cc_steps(img, moving, 3, np.ones(d), np.eye(d), 0.0)
    smooth = core.cc_steps(img, moving, 3, np.ones(d), np.eye(d), sigma)
    for got, step in ((smooth.forward, raw.forward), (smooth.backward, raw.backward)):
        expected = np.stack([ndimage.gaussian_filter(step[..., k].astype(np.float64), sigma)
                             for k in range(d)], -1)
        scale = np.abs(expected).max()
        np.testing.assert_allclose(got, expected, atol=1e-5 * scale)


def test_buffers_given_to_the_core_are_filled_in_place():
    img = synthetic.photograph("immunohistochemistry")[:50, :60].copy()
    moving = np.roll(img, 1, axis=0).copy()
    fwd, bwd = np.empty(img.shape + (2,), np.float32), np.empty(img.shape + (2,), np.float32)
    res = core.cc_steps(img, moving, 3, np.ones(2), np.eye(2), 1.0, forward_out=fwd, backward_out=bwd)
    assert res.forward is fwd or np.shares_memory(res.forward, fwd)
    np.testing.assert_array_equal(fwd, core.cc_steps(img, moving, 3, np.ones(2), np.eye(2), 1.0).forward)
    field = np.zeros(img.shape + (2,), np.float32)
    out = np.empty(img.shape, np.float32)
    core.warp_image(img, field, np.eye(3), np.eye(3), np.eye(3), list(img.shape), out=out)
    np.testing.assert_array_equal(out, img)
    inv = np.zeros_like(field)
    core.invert_field(field + 0.5, np.eye(3), np.ones(2), 10, 1e-4, out=inv)
    np.testing.assert_array_equal(inv, core.invert_field(field + 0.5, np.eye(3), np.ones(2), 10, 1e-4))
    assert np.abs(inv[5:-5, 5:-5] + 0.5).max() < 0.05
    with pytest.raises(TypeError, match="writeable"):
        core.cc_steps(img, moving, 3, np.ones(2), np.eye(2), 1.0, forward_out=np.empty(img.shape + (2,)))
    with pytest.raises(ValueError, match="different"):
        core.cc_steps(img, moving, 3, np.ones(2), np.eye(2), 1.0, forward_out=fwd, backward_out=fwd)
    with pytest.raises(TypeError, match="out_shape"):
        core.warp_image(img, field, np.eye(3), np.eye(3), np.eye(3), list(img.shape), out=np.empty((3, 3), np.float32))
    with pytest.raises(ValueError, match="start or out"):
        core.invert_field(field, np.eye(3), np.ones(2), 5, 1e-3, start=field, out=inv)
    # A work buffer for the residual (SyN reuses one): the same bits, and it must be its own.
    work = np.full_like(field, np.nan)
    inv2 = np.zeros_like(field)
    core.invert_field(field + 0.5, np.eye(3), np.ones(2), 10, 1e-4, out=inv2, work=work)
    np.testing.assert_array_equal(inv2, inv)
    with pytest.raises(ValueError, match="buffer of its own"):
        core.invert_field(field + 0.5, np.eye(3), np.ones(2), 10, 1e-4, out=inv2, work=inv2)
    with pytest.raises(ValueError, match="work must have"):
        core.invert_field(field + 0.5, np.eye(3), np.ones(2), 10, 1e-4, out=inv2, work=work[1:])
