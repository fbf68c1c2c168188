"""The affine-registration metrics and scale space against independent NumPy/SciPy oracles:
values, analytic gradients against central finite differences for every transform type in
2-D and 3-D, determinism across thread counts."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage import data, transform as sktransform

import spectralign_fast.register as reg
from spectralign_fast.register import scalespace


def _camera(size: int = 96) -> np.ndarray:
    img = sktransform.resize(data.camera().astype(np.float64), (size, size), anti_aliasing=True)
    return img.astype(np.float32)


def _volume(size: int = 24) -> np.ndarray:
    rng = np.random.default_rng(3)
    vol = ndimage.gaussian_filter(rng.random((size, size + 2, size + 4)), 2.0)
    z, y, x = np.mgrid[:size, :size + 2, :size + 4]
    vol += 0.02 * np.exp(-((z - 10) ** 2 + (y - 12) ** 2 + (x - 9) ** 2) / 30.0)
    return vol.astype(np.float32)


def _bspline3(u: np.ndarray) -> np.ndarray:
    a = np.abs(u)
    return np.where(a < 1, 2 / 3 - a ** 2 + a ** 3 / 2, np.where(a < 2, (2 - a) ** 3 / 6, 0.0))


def _edge_weight(y: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A point's weight: per axis, smoothstep of its distance to the moving image's edge over
    one voxel (0 outside), multiplied over the axes."""
    hi = np.array(shape, dtype=np.float64)[:, None] - 1.0
    t = np.clip(np.minimum(y, hi - y), 0.0, 1.0)
    w = np.where((y >= 0) & (y <= hi), t * t * (3.0 - 2.0 * t), 0.0)
    return w.prod(axis=0)


def _mi_oracle(static: np.ndarray, moving: np.ndarray, index_map: np.ndarray, nbins: int) -> float:
    """Mattes MI written independently: every static voxel, scipy's linear interpolation,
    the static intensity in its nearest bin, the moving one's B-spline evaluated at every bin,
    each point weighted by its edge weight."""
    d = static.ndim
    idx = np.indices(static.shape).reshape(d, -1).astype(np.float64)
    y = index_map[:d, :d] @ idx + index_map[:d, d:]
    weight = _edge_weight(y, moving.shape)
    inside = weight > 0
    weight = weight[inside]
    mv = ndimage.map_coordinates(moving.astype(np.float64), y[:, inside], order=1)
    sv = static.astype(np.float64).ravel()[inside]

    def coords(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
        c = 2 + (v - lo) * (nbins - 4) / (hi - lo)
        return np.clip(c, 2, nbins - 2)
    bins = np.arange(nbins)
    nearest = np.minimum(coords(sv, static.min(), static.max()).astype(int), nbins - 3)
    ws = (nearest[:, None] == bins).astype(np.float64)
    wm = _bspline3(coords(mv, moving.min(), moving.max())[:, None] - bins)
    p = ws.T @ (wm * weight[:, None])
    p /= p.sum()
    a, b = p.sum(1), p.sum(0)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / np.outer(a, b)[nz])).sum())


def test_gaussian_smooth_matches_scipy():
    img = _camera(80)
    for sigma in (0.7, (2.0, 0.0), 3.0, 30.0):
        ours = scalespace.smooth(img, sigma, threads=2)
        ref = ndimage.gaussian_filter(img.astype(np.float64), sigma, mode="reflect", truncate=4.0)
        np.testing.assert_allclose(ours, ref, atol=2e-6)
    vol = _volume()
    ours = scalespace.smooth(vol, (1.0, 2.0, 0.5), threads=2)
    ref = ndimage.gaussian_filter(vol.astype(np.float64), (1.0, 2.0, 0.5), mode="reflect", truncate=4.0)
    np.testing.assert_allclose(ours, ref, atol=2e-6)
    assert np.array_equal(scalespace.smooth(vol, 1.5, threads=1), scalespace.smooth(vol, 1.5, threads=2))


def test_scale_space_level_grid():
    img = _camera(97)
    g2w = np.diag([0.5, 0.5, 1.0])
    lev = scalespace.level(img, g2w, 4, 3.0, threads=1)
    assert lev.image.shape == (24, 24) and lev.factors == (4, 4)
    np.testing.assert_allclose(lev.grid2world, np.diag([2.0, 2.0, 1.0]))
    smooth = ndimage.gaussian_filter(img.astype(np.float64), 3.0)
    np.testing.assert_allclose(lev.image, smooth[0:96:4, 0:96:4], atol=2e-6)
    # Anisotropic voxels: DIPY's per-axis factors.
    assert scalespace.shrink_factors(4, np.array([1.0, 1.0, 2.5])) == (4, 4, 2)


@pytest.mark.parametrize("shift", [(7.0, 0.0), (2.3, -4.6)])
def test_mi_value_matches_oracle(shift):
    static = _camera(64)
    moving = ndimage.shift(static, (1.5, -2.0), order=1).astype(np.float32) ** 2
    metric = reg.MutualInformationMetric(32, jitter=False)
    metric.setup(reg.TranslationTransform2D(), static, moving)
    ours = -metric.distance(np.array(shift))
    index_map = np.eye(3)
    index_map[:2, 2] = shift
    assert ours == pytest.approx(_mi_oracle(static, moving, index_map, 32), rel=1e-7)
    hist = metric.joint_histogram(np.array(shift))
    assert hist.shape == (32, 32) and hist.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("shift", [(7.0, 0.0), (2.3, -4.6)])
def test_cc_value_matches_oracle(shift):
    static = _camera(64)
    moving = ndimage.shift(static, (1.5, -2.0), order=1).astype(np.float32)
    metric = reg.CorrelationMetric(jitter=False)
    metric.setup(reg.TranslationTransform2D(), static, moving)
    ours = -metric.distance(np.array(shift))
    # Pearson's r over the points, each weighted by its edge weight.
    idx = np.indices(static.shape).reshape(2, -1).astype(np.float64)
    y = idx + np.array(shift)[:, None]
    w = _edge_weight(y, moving.shape)
    keep = w > 0
    m = ndimage.map_coordinates(moving.astype(np.float64), y[:, keep], order=1)
    f = static.astype(np.float64).ravel()[keep]
    w = w[keep] / w[keep].sum()
    cf, cm = f - (w * f).sum(), m - (w * m).sum()
    r = (w * cf * cm).sum() / np.sqrt((w * cf ** 2).sum() * (w * cm ** 2).sum())
    assert ours == pytest.approx(r, rel=1e-7)


def _fd_check(metric: reg.Metric, transform: reg.Transform, params: np.ndarray, steps: np.ndarray) -> None:
    value, grad = metric.distance_and_gradient(params)
    assert value < 0
    numeric = np.empty_like(grad)
    for k in range(len(params)):
        e = np.zeros_like(params)
        e[k] = steps[k]
        numeric[k] = (metric.distance(params + e) - metric.distance(params - e)) / (2 * steps[k])
    scale = np.abs(numeric).max()
    np.testing.assert_allclose(grad, numeric, rtol=0.02, atol=0.02 * scale)


_TRANSFORMS_2D = [
    (reg.TranslationTransform2D(), [7.0, 0.4], [1e-3] * 2),
    (reg.RotationTransform2D(), [0.03], [1e-5]),
    (reg.RigidTransform2D(), [0.08, 3.1, -2.2], [1e-5, 1e-3, 1e-3]),
    (reg.RigidIsoScalingTransform2D(), [0.05, 2.0, 1.0, 1.04], [1e-5, 1e-3, 1e-3, 1e-5]),
    (reg.RigidScalingTransform2D(), [-0.04, 1.0, 3.0, 0.97, 1.05], [1e-5, 1e-3, 1e-3, 1e-5, 1e-5]),
    (reg.ScalingTransform2D(), [1.03], [1e-5]),
    (reg.AffineTransform2D(), [1.02, 0.05, 2.0, -0.03, 0.98, -1.5], [1e-5, 1e-5, 1e-3] * 2),
]


@pytest.mark.parametrize("kind", ["mi", "cc"])
@pytest.mark.parametrize("transform,params,steps", _TRANSFORMS_2D,
                         ids=[type(t[0]).__name__ for t in _TRANSFORMS_2D])
def test_gradient_matches_finite_differences_2d(kind, transform, params, steps):
    # The static image is the moving one's interior, so that every static pixel stays inside
    # the moving image under the small perturbations (the overlap, and so the value, would
    # otherwise jump when a pixel crosses the edge).
    big = _camera(120)
    moving = ndimage.rotate(big, 3.0, reshape=False, order=1).astype(np.float32)
    if kind == "mi":
        moving = 1.0 - moving ** 2  # another modality: inverted, non-linear
    static = np.ascontiguousarray(big[14:-14, 14:-14])
    metric = reg.MutualInformationMetric() if kind == "mi" else reg.CorrelationMetric()
    g2w = np.array([[0.9, 0.0, -3.0], [0.0, 1.1, 2.0], [0.0, 0.0, 1.0]])
    offset = np.eye(3)
    offset[:2, 2] = 14
    metric.setup(transform, static, moving, g2w @ offset, g2w)
    _fd_check(metric, transform, np.array(params, dtype=float), np.array(steps))


_TRANSFORMS_3D = [
    (reg.TranslationTransform3D(), [1.2, -0.7, 0.4], [1e-3] * 3),
    (reg.RotationTransform3D(), [0.03, -0.02, 0.04], [1e-5] * 3),
    (reg.RigidTransform3D(), [0.03, -0.02, 0.04, 0.5, -1.0, 0.3], [1e-5] * 3 + [1e-3] * 3),
    (reg.RigidIsoScalingTransform3D(), [0.02, 0.01, -0.03, 0.5, 0.2, -0.4, 1.03], [1e-5] * 3 + [1e-3] * 3 + [1e-5]),
    (reg.RigidScalingTransform3D(), [0.02, 0.01, -0.03, 0.5, 0.2, -0.4, 1.03, 0.98, 1.01],
     [1e-5] * 3 + [1e-3] * 3 + [1e-5] * 3),
    (reg.ScalingTransform3D(), [0.98], [1e-5]),
    (reg.AffineTransform3D(), [1.01, 0.02, 0.0, 0.5, -0.01, 0.99, 0.03, -0.3, 0.0, 0.01, 1.02, 0.2],
     [1e-5, 1e-5, 1e-5, 1e-3] * 3),
]


@pytest.mark.parametrize("kind", ["mi", "cc"])
@pytest.mark.parametrize("transform,params,steps", _TRANSFORMS_3D,
                         ids=[type(t[0]).__name__ for t in _TRANSFORMS_3D])
def test_gradient_matches_finite_differences_3d(kind, transform, params, steps):
    big = _volume(32)
    moving = ndimage.shift(big, (0.6, -0.4, 0.9), order=1).astype(np.float32)
    if kind == "mi":
        moving = np.exp(-3.0 * moving).astype(np.float32)
    static = np.ascontiguousarray(big[5:-5, 5:-5, 5:-5])
    metric = reg.MutualInformationMetric() if kind == "mi" else reg.CorrelationMetric()
    g2w = np.diag([1.0, 1.2, 0.8, 1.0])
    g2w[:3, 3] = [-16.0, -18.0, -17.0]
    offset = np.eye(4)
    offset[:3, 3] = 5
    metric.setup(transform, static, moving, g2w @ offset, g2w)
    _fd_check(metric, transform, np.array(params, dtype=float), np.array(steps))


@pytest.mark.parametrize("kind", ["mi", "cc"])
@pytest.mark.parametrize("dim", [2, 3])
def test_gradient_is_exact_where_points_cross_the_moving_edge(kind, dim):
    # Static and moving of the same extent, rotated and shifted: thousands of points lie
    # within a voxel of the moving image's edge, where their weight ramps to 0; with a hard
    # in/out rule the value would jump as each one crosses and the gradient would miss it.
    if dim == 2:
        static = _camera(96)
        moving = ndimage.rotate(static, 4.0, reshape=False, order=1).astype(np.float32)
        transform = reg.RigidTransform2D()
        params, steps = np.array([0.05, 3.3, -2.6]), np.array([1e-5, 1e-3, 1e-3])
    else:
        static = _volume(24)
        moving = ndimage.shift(static, (0.6, -0.4, 0.9), order=1).astype(np.float32)
        transform = reg.RigidTransform3D()
        params = np.array([0.03, -0.02, 0.04, 1.3, -2.1, 0.7])
        steps = np.array([1e-5] * 3 + [1e-3] * 3)
    if kind == "mi":
        moving = (1.0 - moving ** 2).astype(np.float32)
    metric = reg.MutualInformationMetric() if kind == "mi" else reg.CorrelationMetric()
    metric.setup(transform, static, moving)
    _fd_check(metric, transform, params, steps)


@pytest.mark.parametrize("kind", ["mi", "cc"])
def test_metric_is_bit_identical_across_threads_and_runs(kind):
    static = _camera(128)
    moving = ndimage.rotate(static, 5.0, reshape=False, order=1).astype(np.float32)
    results = []
    for threads in (1, 2, 3, 1):
        metric = reg.MutualInformationMetric() if kind == "mi" else reg.CorrelationMetric()
        metric.setup(reg.AffineTransform2D(), static, moving, threads=threads)
        v, g = metric.distance_and_gradient(np.array([1.01, 0.02, 1.5, -0.02, 0.99, -0.7]))
        results.append((v, g.tobytes()))
    assert all(r == results[0] for r in results)


def test_masks_and_sampling():
    static = _camera(96)
    moving = ndimage.shift(static, (2.0, 1.0), order=1).astype(np.float32)
    smask = np.zeros(static.shape, bool)
    smask[20:70, 10:80] = True
    metric = reg.MutualInformationMetric(jitter=False)
    metric.setup(reg.TranslationTransform2D(), static, moving, static_mask=smask)
    masked = metric.distance(np.array([2.0, 1.0]))
    # The oracle on the masked region: the same static voxels, the same map.
    sub = static[20:70, 10:80]
    index_map = np.eye(3)
    index_map[:2, 2] = [22.0, 11.0]
    assert masked == pytest.approx(-_mi_oracle(sub, moving, index_map, 32), rel=1e-7)
    sampled = reg.MutualInformationMetric(sampling_proportion=0.3)
    sampled.setup(reg.TranslationTransform2D(), static, moving)
    a = sampled.distance_and_gradient(np.array([2.0, 1.0]))
    sampled.setup(reg.TranslationTransform2D(), static, moving, threads=1)
    b = sampled.distance_and_gradient(np.array([2.0, 1.0]))
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    assert a[0] < metric.distance(np.array([0.0, 0.0]))


def test_metric_setup_refuses_bad_input():
    static = _camera(32)
    metric = reg.MutualInformationMetric()
    t = reg.TranslationTransform2D()
    with pytest.raises(ValueError, match="NaN"):
        bad = static.copy()
        bad[3, 3] = np.nan
        metric.setup(t, bad, static)
    with pytest.raises(ValueError, match="constant"):
        metric.setup(t, static, np.ones_like(static))
    with pytest.raises(ValueError, match="selects no voxel"):
        metric.setup(t, static, static, static_mask=np.zeros(static.shape))
    with pytest.raises(ValueError, match="3-D"):
        metric.setup(t, static, _volume())
    with pytest.raises(ValueError, match="singular"):
        metric.setup(t, static, static, np.zeros((3, 3)) + np.eye(3) * [1, 0, 1])
    with pytest.raises(ValueError, match="2 parameters"):
        metric.setup(t, static, static)
        metric.distance(np.zeros(3))
    with pytest.raises(ValueError, match="nbins"):
        reg.MutualInformationMetric(nbins=4)
    with pytest.raises(ValueError, match="sampling_proportion"):
        reg.MutualInformationMetric(sampling_proportion=0.0)
    with pytest.raises(RuntimeError, match="setup"):
        reg.CorrelationMetric().distance(np.zeros(2))
