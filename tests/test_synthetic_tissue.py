"""synthetic_tissue: the known truths are self-consistent, checked without any registration.
The images sampled through the true maps reproduce the generated images; the maps have the
requested size and are diffeomorphisms; the point sets correspond as stated."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("scipy")
pytest.importorskip("skimage")

from scipy import ndimage  # noqa: E402
from scipy.interpolate import RegularGridInterpolator  # noqa: E402
from scipy.spatial import Delaunay  # noqa: E402

from spectralign_fast import synthetic_tissue as st  # noqa: E402


def _pixel_grid(shape):
    r, c = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    return np.column_stack([r.ravel(), c.ravel()]).astype(np.float64)


@pytest.fixture(scope="module")
def pair():
    return st.fluorescence_pair()


@pytest.fixture(scope="module")
def clouds():
    return st.cell_point_clouds()


@pytest.fixture(scope="module")
def atlas():
    pytest.importorskip("nilearn")
    return st.atlas_slice()


def test_fluorescence_shapes_and_coordinates(pair):
    assert pair.J.shape == (3, 256, 256) and pair.I.shape == (1, 230, 230)
    assert pair.J.min() >= 0 and pair.J.max() <= 1
    for x, n in zip(pair.xI + pair.xJ, (230, 230, 256, 256)):
        np.testing.assert_array_equal(x, np.arange(n, dtype=np.float64))
    assert 0.5 < pair.tissue_mask.mean() < 0.95


def test_target_sampled_through_the_true_map_reproduces_the_source(pair):
    # Sampled from the downsampled target here, from the full-resolution photograph there:
    # equal within interpolation error.
    mapped = pair.source_to_target(_pixel_grid(pair.I.shape[1:]))
    grey = ndimage.map_coordinates(st.to_grey(pair.J), mapped.T, order=3, mode="mirror")
    grey = grey.reshape(pair.I.shape[1:])
    m = pair.tissue_mask
    assert np.corrcoef(grey[m], 1 - pair.I[0][m])[0, 1] > 0.99
    assert np.sqrt(np.mean((grey[m] - (1 - pair.I[0][m])) ** 2)) < 0.02
    # A wrong map (the affine part shifted by two pixels) is clearly worse.
    wrong = ndimage.map_coordinates(st.to_grey(pair.J), (mapped + [2.0, 0.0]).T, order=3,
                                    mode="mirror").reshape(pair.I.shape[1:])
    assert np.corrcoef(wrong[m], 1 - pair.I[0][m])[0, 1] < 0.9


def test_fluorescence_map_parts(pair):
    grid = _pixel_grid(pair.I.shape[1:])
    affine = grid @ pair.true_affine[:2, :2].T + pair.true_affine[:2, 2]
    disp = np.linalg.norm(pair.source_to_target(grid) - affine, axis=1)
    assert disp.max() == pytest.approx(5.0, abs=1e-9)
    # Linear part zoom * rotation by 10 degrees; source centre to target centre + translation.
    t = np.radians(10.0)
    np.testing.assert_allclose(pair.true_affine[:2, :2],
                               1.1 * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]))
    np.testing.assert_allclose(pair.true_affine[:2, :2] @ [114.5, 114.5] + pair.true_affine[:2, 2],
                               [127.5 + 3.0, 127.5 - 4.0])
    np.testing.assert_array_equal(pair.true_affine[2], [0, 0, 1])
    other = st.fluorescence_pair(max_displacement=2.0, seed=3)
    assert np.linalg.norm(other.displacement(grid), axis=1).max() == pytest.approx(2.0, abs=1e-9)
    assert not np.allclose(other.displacement(grid) / 2, pair.displacement(grid) / 5)


def test_fluorescence_map_is_a_diffeomorphism(pair):
    grid = _pixel_grid(pair.I.shape[1:])
    h = 0.5
    cols = [(pair.source_to_target(grid + h * e) - pair.source_to_target(grid - h * e)) / (2 * h)
            for e in np.eye(2)]
    jac = np.stack(cols, axis=-1)                              # [n, a, b] = dT_a / dx_b
    assert np.linalg.det(jac).min() > 0.9
    analytic = pair.true_affine[:2, :2] + pair.displacement.jacobian(grid)
    np.testing.assert_allclose(jac, analytic, atol=1e-3)
    # Globally one-to-one: x + A^-1 d(x) with |A^-1 grad d| < 1 (a contraction plus identity).
    inv = np.linalg.inv(pair.true_affine[:2, :2])
    assert np.linalg.norm(inv @ pair.displacement.jacobian(grid), 2, axis=(1, 2)).max() < 0.5


def test_landmarks_have_the_stated_noise(pair):
    pi, pj = pair.landmarks(k=4, noise_px=0.0, seed=1)
    assert pi.shape == pj.shape == (4, 2)
    np.testing.assert_allclose(pj, pair.source_to_target(pi), atol=1e-12)
    assert pair.tissue_mask[tuple(pi.astype(int).T)].all()
    spread = np.linalg.norm(pi[:, None] - pi[None], axis=-1)
    assert spread[~np.eye(4, dtype=bool)].min() > 80          # well spread over 230 px
    pi, pj = pair.landmarks(k=2000, noise_px=1.5, seed=2)
    err = pj - pair.source_to_target(pi)
    np.testing.assert_allclose(err.std(axis=0), 1.5, rtol=0.08)
    np.testing.assert_allclose(err.mean(axis=0), 0.0, atol=0.15)


def test_tissue_points_lie_in_the_tissue(pair):
    p = pair.tissue_points(500, seed=4)
    assert p.shape == (500, 2)
    np.testing.assert_array_equal(p, pair.tissue_points(500, seed=4))
    assert pair.tissue_mask[tuple(np.rint(p).astype(int).T)].all()
    assert (pair.I[0][tuple(np.rint(p).astype(int).T)] > 0.05).mean() > 0.95


def test_cell_clouds_counts_and_correspondences(clouds):
    n, m = len(clouds.points_source), len(clouds.points_target)
    assert 200 < n < 400
    kept = n - round(0.1 * n)
    assert len(clouds.matched_source) == len(clouds.matched_target) == kept
    assert m == kept + round(0.05 * n)
    assert len(set(clouds.matched_source)) == kept and len(set(clouds.matched_target)) == kept
    np.testing.assert_allclose(clouds.points_target[clouds.matched_target],
                               clouds.source_to_target(clouds.points_source[clouds.matched_source]),
                               atol=1e-9, rtol=0)
    # Spurious target points: inside the hull of T(cells), not the image of any cell.
    spurious = np.setdiff1d(np.arange(m), clouds.matched_target)
    mapped = clouds.source_to_target(clouds.points_source)
    assert (Delaunay(mapped).find_simplex(clouds.points_target[spurious]) >= 0).all()
    gaps = np.linalg.norm(clouds.points_target[spurious][:, None] - mapped[None], axis=-1)
    assert gaps.min() > 1e-6
    # Shuffled: the target order does not follow the source order.
    assert not np.all(np.diff(clouds.matched_target) > 0)


def test_cells_sit_on_haematoxylin_and_the_map_has_the_stated_size(clouds):
    from skimage.color import rgb2hed

    hema = rgb2hed(np.moveaxis(clouds.image, 0, -1))[..., 0]
    at_cells = hema[tuple(clouds.points_source.astype(int).T)]
    assert np.median(at_cells) > np.percentile(hema, 85)
    grid = _pixel_grid(clouds.image.shape[1:])
    assert np.linalg.norm(clouds.displacement(grid), axis=1).max() == pytest.approx(5.0, abs=1e-9)
    np.testing.assert_allclose(np.linalg.svd(clouds.true_affine[:2, :2], compute_uv=False), 1.1)
    other = st.cell_point_clouds(dropout=0.0, extra=0.0, seed=5)
    assert len(other.points_target) == len(other.points_source) == len(other.matched_target)


def test_too_large_a_displacement_is_refused():
    with pytest.raises(ValueError, match="too large"):
        st.fluorescence_pair(max_displacement=60.0)


def test_atlas_and_slice_shapes(atlas):
    assert atlas.I.shape == (1, 94, 116, 98) and atlas.J.shape == (1, 1, 116, 98)
    assert atlas.I.min() == 0 and atlas.I.max() == 1
    for x, n in zip(atlas.xI, atlas.I.shape[1:]):
        np.testing.assert_array_equal(x, np.arange(n) * 2.0)
    np.testing.assert_array_equal(atlas.xJ[0], [0.0])
    np.testing.assert_array_equal(atlas.xJ[1], atlas.xI[1])
    assert 0.3 < atlas.brain_mask.mean() and 0.35 < (atlas.J > 0.1).mean() < 0.9
    rot = atlas.A_true[:3, :3]
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0)
    # The tilt: the plane's normal is 8 and 5 degrees off the z axis (about y, then x).
    assert np.degrees(np.arccos(rot[0, 0])) == pytest.approx(np.degrees(np.arccos(
        np.cos(np.radians(8.0)) * np.cos(np.radians(5.0)))))


def test_slice_equals_the_atlas_sampled_through_the_true_map(atlas):
    r, c = np.meshgrid(atlas.xJ[1], atlas.xJ[2], indexing="ij")
    points = np.column_stack([np.zeros(r.size), r.ravel(), c.ravel()])
    at = atlas.target_to_atlas(points)
    sampler = RegularGridInterpolator(tuple(atlas.xI), atlas.I[0], bounds_error=False,
                                      fill_value=0.0)
    np.testing.assert_allclose(atlas.J[0, 0], sampler(at).reshape(r.shape), atol=1e-10)
    # In-plane displacement: largest magnitude 2 voxels = 4 mm; the plane's normal part is 0.
    plain = points @ atlas.A_true[:3, :3].T + atlas.A_true[:3, 3]
    moved = np.linalg.norm(at - plain, axis=1)
    assert moved.max() == pytest.approx(4.0, abs=1e-9)
    normal = atlas.A_true[:3, 0]
    np.testing.assert_allclose((at - plain) @ normal, 0.0, atol=1e-9)
    # The slice centre goes to the atlas's intensity centre of mass.
    centre = np.array([0.0, 115 / 2 * 2, 97 / 2 * 2])
    np.testing.assert_allclose(centre @ atlas.A_true[:3, :3].T + atlas.A_true[:3, 3],
                               np.array(ndimage.center_of_mass(atlas.I[0])) * 2.0)


def test_slice_points_are_in_the_brain(atlas):
    p = atlas.slice_points(300, seed=1)
    assert p.shape == (300, 3) and (p[:, 0] == 0).all()
    sampler = RegularGridInterpolator(tuple(atlas.xI), atlas.I[0], bounds_error=False,
                                      fill_value=0.0)
    assert (sampler(atlas.target_to_atlas(p)) > 0.05).all()
