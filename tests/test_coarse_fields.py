"""SyN's fields on a coarser grid than the images (``field_spacing``): the core's restriction
and up-sampling against NumPy/SciPy oracles, and registrations with coarse fields against the
known deformation of a photograph."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import deformation_oracle as oracle
from spectralign_fast import synthetic
from spectralign_fast._core import register as core
from spectralign_fast.register import (CCMetric, ParzenMIMetric, SSDMetric, SymmetricDiffeomorphicRegistration,
                                       register_syn)
from spectralign_fast.register.deformable import auto_field_spacing


def _noise_field(shape, seed, smooth=0.0):
    rng = np.random.default_rng(seed)
    d = len(shape)
    f = rng.normal(size=tuple(shape) + (d,))
    if smooth:
        f = ndimage.gaussian_filter(f, [smooth] * d + [0.0])
    return f.astype(np.float32)


def _coarse_extent(n, f):  # written independently of the library's coarse_grid_shape
    return -(-(n - 1) // f) + 1


def _restrict_oracle(field, f, sigma):
    """Tent weights (f - |k|) / f^2 around every f-th voxel, scipy's 'reflect' edge, axis by
    axis; then scipy's Gaussian on the coarse grid with the rest of sigma."""
    out = field.astype(np.float64)
    d = field.ndim - 1
    for a in range(d):
        n = out.shape[a]
        m = _coarse_extent(n, f)
        acc = np.zeros(out.shape[:a] + (m,) + out.shape[a + 1:])
        for k in range(-(f - 1), f):
            idx = f * np.arange(m) + k
            idx = np.where(idx < 0, -idx - 1, idx)
            idx = np.where(idx >= n, 2 * n - idx - 1, idx)
            acc += (f - abs(k)) / f ** 2 * np.take(out, np.clip(idx, 0, n - 1), axis=a)
        out = acc
    rest = sigma ** 2 - (f * f - 1) / 6.0
    if rest > 0:
        out = ndimage.gaussian_filter(out, [np.sqrt(rest) / f] * d + [0.0], mode="reflect", truncate=4.0)
    return out


@pytest.mark.parametrize("shape, f, sigma", [((64, 51), 2, 5.0), ((33, 40), 3, 4.0), ((40, 41), 2, 0.5),
                                             ((23, 30, 19), 2, 5.0), ((20, 17, 26), 2, 2.0),
                                             ((13, 16, 22), 3, 6.0)])
def test_restrict_matches_the_oracle(shape, f, sigma):
    field = _noise_field(shape, 3)
    got = core.restrict_field(field, f, sigma)
    expected = _restrict_oracle(field, f, sigma)
    assert got.shape == tuple(_coarse_extent(n, f) for n in shape) + (len(shape),)
    np.testing.assert_allclose(got, expected, atol=2e-5 * np.abs(expected).max())


@pytest.mark.parametrize("shape", [(120, 97), (48, 57, 45)])
def test_restrict_approximates_smoothing_then_every_other_voxel(shape):
    # The raw step's use: a Gaussian of 5 voxels at full resolution, then every second voxel.
    # Away from the edges (where the two grids reflect about different points) within 2 %.
    d = len(shape)
    field = _noise_field(shape, 5)
    got = core.restrict_field(field, 2, 5.0)
    full = np.stack([ndimage.gaussian_filter(field[..., k].astype(np.float64), 5.0) for k in range(d)], -1)
    sub = full[tuple(slice(0, None, 2) for _ in range(d))]
    inner = tuple(slice(6, n - 6) for n in sub.shape[:-1])
    diff = got[tuple(slice(0, n) for n in sub.shape[:-1])] - sub
    assert np.sqrt((diff[inner] ** 2).mean()) < 0.02 * np.sqrt((sub[inner] ** 2).mean())


@pytest.mark.parametrize("shape, f", [((64, 51), 2), ((31, 40), 3), ((23, 30, 19), 2), ((13, 16, 22), 3)])
def test_upsample_matches_scipy_linear(shape, f):
    d = len(shape)
    coarse = _noise_field(tuple(_coarse_extent(n, f) for n in shape), 9, smooth=1.0)
    got = core.upsample_field(coarse, f, list(shape))
    pts = np.indices(shape).reshape(d, -1) / f
    expected = np.stack([ndimage.map_coordinates(coarse[..., k].astype(np.float64), pts, order=1).reshape(shape)
                         for k in range(d)], -1)
    np.testing.assert_allclose(got, expected, atol=1e-6 * np.abs(expected).max())
    # Every f-th voxel is a node, exactly.
    np.testing.assert_array_equal(got[tuple(slice(0, None, f) for _ in range(d))],
                                  coarse[tuple(slice(0, -(-n // f)) for n in shape)])


@pytest.mark.parametrize("shape, f", [((64, 51), 2), ((23, 30, 19), 2), ((13, 16, 22), 3)])
def test_warp_through_a_coarse_field_is_warp_through_its_upsampling(shape, f):
    # A reading the field on every f-th voxel (SyN's coarse fields): the core up-samples each
    # field row as upsample_field does, so the result is the same to the last bit, with an
    # affine on the output side too (the moving image's pre-alignment); a matrix off by 1e-13
    # (products of inverses) takes the same path.
    d = len(shape)
    img = synthetic.photograph("immunohistochemistry")[:shape[-2], :shape[-1]].astype(np.float32)
    if d == 3:
        img = np.stack([np.roll(img, 3 * k, axis=1) for k in range(shape[0])])
    coarse = 3.0 * _noise_field(tuple(_coarse_extent(n, f) for n in shape), 4, smooth=1.5)
    dense = core.upsample_field(coarse, f, list(shape))
    A = np.diag([1.0 / f] * d + [1.0])
    B = np.eye(d + 1)
    B[:d, d] = 0.75
    B[0, 1] = 0.02
    W = np.eye(d + 1)
    W[:d, :d] *= 0.9
    for idx_out, disp in ((np.eye(d + 1), np.eye(d + 1)), (B, W)):
        expected = core.warp_image(img, dense, np.eye(d + 1), idx_out, disp, list(shape))
        np.testing.assert_array_equal(core.warp_image(img, coarse, A, idx_out, disp, list(shape)), expected)
        np.testing.assert_array_equal(core.warp_image(img, coarse, A + 1e-13, idx_out, disp, list(shape)), expected)
    # Not every f-th voxel (another offset): d-linear interpolation per voxel, close but its own.
    shifted = A.copy()
    shifted[0, d] = 0.25
    other = core.warp_image(img, coarse, shifted, np.eye(d + 1), np.eye(d + 1), list(shape))
    assert not np.array_equal(other, core.warp_image(img, dense, np.eye(d + 1), np.eye(d + 1), np.eye(d + 1),
                                                     list(shape)))


@pytest.mark.parametrize("shape", [(70, 91), (21, 30, 26)])
def test_threads_give_identical_bits(shape):
    field = _noise_field(shape, 1)
    c1, c3 = core.restrict_field(field, 2, 5.0, threads=1), core.restrict_field(field, 2, 5.0, threads=3)
    np.testing.assert_array_equal(c1, c3)
    np.testing.assert_array_equal(core.upsample_field(c1, 2, list(shape), threads=1),
                                  core.upsample_field(c1, 2, list(shape), threads=3))


def test_out_buffers_and_bad_input():
    field = _noise_field((20, 25), 2)
    coarse = np.empty((11, 13, 2), np.float32)
    got = core.restrict_field(field, 2, 3.0, out=coarse)
    assert got is coarse or np.shares_memory(got, coarse)
    np.testing.assert_array_equal(coarse, core.restrict_field(field, 2, 3.0))
    dense = np.empty((20, 25, 2), np.float32)
    core.upsample_field(coarse, 2, [20, 25], out=dense)
    np.testing.assert_array_equal(dense, core.upsample_field(coarse, 2, [20, 25]))
    with pytest.raises(ValueError, match="needs 14"):
        core.upsample_field(coarse, 2, [20, 26])
    with pytest.raises(ValueError, match="factor must be 1 to 16"):
        core.restrict_field(field, 0, 3.0)
    with pytest.raises(ValueError, match="sigma must be finite"):
        core.restrict_field(field, 2, -1.0)
    with pytest.raises(ValueError, match="coarse grid's shape"):
        core.restrict_field(field, 2, 3.0, out=np.empty((10, 13, 2), np.float32))
    with pytest.raises(ValueError, match="dimension"):
        core.upsample_field(coarse, 2, [20, 25, 3])
    field0 = field.copy()
    core.restrict_field(field, 2, 3.0)
    np.testing.assert_array_equal(field, field0)


def test_field_spacing_needs_smoothed_steps():
    with pytest.raises(ValueError, match="smoothed steps"):
        SymmetricDiffeomorphicRegistration(SSDMetric(2), field_spacing=2)
    with pytest.raises(ValueError, match="field_spacing"):
        SymmetricDiffeomorphicRegistration(CCMetric(2), field_spacing=0)
    with pytest.raises(ValueError, match="does not smooth its steps"):
        SSDMetric(2).set_field_grid(2)
    img = np.zeros((40, 40), np.float32)
    img[10:30, 10:30] = 1.0
    with pytest.raises(ValueError, match="field_spacing must be"):
        register_syn(img, img, prealign=None, level_iters=[2], field_spacing="coarse")


@pytest.fixture(scope="module")
def slide_case():
    img = synthetic.photograph("immunohistochemistry")
    static = img[:384, :384].astype(np.float32)
    moving, truth = oracle.deformed_pair(static, max_displacement=6.0, bumps=6, seed=3)
    return static, moving, truth


@pytest.fixture(scope="module")
def slide_results(slide_case):
    static, moving, _ = slide_case
    return {fs: register_syn(static, moving, prealign=None, field_spacing=fs) for fs in (1, 2)}


def test_coarse_fields_recover_the_deformation_as_well(slide_case, slide_results):
    static, _, truth = slide_case
    region = oracle.interior(static.shape)
    err = {fs: oracle.rms(r.mapping.get_forward_field().astype(np.float64), truth, region)
           for fs, r in slide_results.items()}
    # Measured: 0.047 px on the image grid, 0.043 on every second voxel (bumps of up to 6 px).
    assert err[2] < 0.08 and err[1] < 0.08, err
    assert abs(err[2] - err[1]) < 0.02, err
    mapping = slide_results[2].mapping
    # The result is on the static grid either way, does not fold and is inverse consistent.
    assert mapping.get_forward_field().shape == static.shape + (2,)
    assert mapping.get_backward_field().shape == static.shape + (2,)
    assert float(mapping.jacobian_determinant().min()) > 0
    fwd = mapping.get_forward_field().astype(np.float64)
    bwd = mapping.get_backward_field().astype(np.float64)
    round_trip = fwd + oracle.sample_field(bwd, oracle.identity_points(static.shape) + np.moveaxis(fwd, -1, 0))
    assert np.sqrt((round_trip[region] ** 2).sum(-1)).max() < 0.1


def test_auto_field_spacing_follows_the_step_smoothing(slide_case, slide_results):
    static, moving, _ = slide_case
    auto = register_syn(static, moving, prealign=None, level_iters=[5, 5, 2])
    explicit = register_syn(static, moving, prealign=None, level_iters=[5, 5, 2], field_spacing=2)
    np.testing.assert_array_equal(auto.mapping.forward, explicit.mapping.forward)
    dipy_smoothing = register_syn(static, moving, prealign=None, level_iters=[5, 5, 2], sigma_diff=None)
    fine = register_syn(static, moving, prealign=None, level_iters=[5, 5, 2], sigma_diff=None, field_spacing=1)
    np.testing.assert_array_equal(dipy_smoothing.mapping.forward, fine.mapping.forward)
    # Mutual information keeps the image grid unless asked (it lost accuracy on the 2 mm brain).
    crop = (slice(0, 128), slice(0, 128))
    mi_auto = register_syn(static[crop], moving[crop], metric="mi", prealign=None, level_iters=[3, 2])
    mi_fine = register_syn(static[crop], moving[crop], metric="mi", prealign=None, level_iters=[3, 2],
                           field_spacing=1)
    np.testing.assert_array_equal(mi_auto.mapping.forward, mi_fine.mapping.forward)
    assert auto_field_spacing(CCMetric(2, sigma_diff=4.0)) == 2
    assert auto_field_spacing(CCMetric(2, sigma_diff=3.9)) == 1
    assert auto_field_spacing(ParzenMIMetric(2, sigma_diff=5.0)) == 1


def test_coarse_fields_threads_give_identical_bits(slide_case):
    static, moving, _ = slide_case
    crop = (slice(0, 160), slice(0, 150))
    maps = [register_syn(static[crop], moving[crop], prealign=None, level_iters=[10, 10, 5], threads=t).mapping
            for t in (1, 2)]
    np.testing.assert_array_equal(maps[0].forward, maps[1].forward)
    np.testing.assert_array_equal(maps[0].backward, maps[1].backward)


def test_coarse_fields_with_mutual_information(slide_case):
    static, moving, truth = slide_case
    cross = (1.0 - moving) ** 2
    sdr = SymmetricDiffeomorphicRegistration(ParzenMIMetric(2, sigma_diff=5.0), level_iters=[100, 100, 25],
                                             step_length=0.15, ss_sigma_factor=0.5, field_spacing=2)
    mapping = sdr.optimize(static, cross)
    region = oracle.interior(static.shape)
    # Measured: 0.051 px (2.84 before registration; 0.059 with fields on the image grid).
    assert oracle.rms(mapping.get_forward_field().astype(np.float64), truth, region) < 0.1
    assert sdr.metric.field_factor == 1  # the metric object is left as it was given
