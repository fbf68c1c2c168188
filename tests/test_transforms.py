"""N-D transforms in array order and the (x, y) <-> array-order rule."""
from __future__ import annotations

import numpy as np
import pytest

import spectralign_fast as sf
from spectralign_fast.transforms import AffineTransform, DisplacementField
from spectralign_fast.transforms.conventions import (affine_array_to_xy, affine_xy_to_array, points_array_to_xy,
                                                     points_xy_to_array)


def _rotation(deg, shift, center=(0.0, 0.0)):
    a = np.deg2rad(deg)
    lin = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    c = np.asarray(center)
    return AffineTransform.from_linear(lin, c - lin @ c + np.asarray(shift))


def test_xy_rule_matches_spectralign_affine():
    rng = np.random.default_rng(3)
    A = sf.Affine([[1.02, 0.05, 12.5], [-0.03, 0.97, -4.25]])
    pts_xy = rng.uniform(-50, 50, (20, 2))
    expect_xy = (A * pts_xy.T).T
    t = AffineTransform.from_xy(A)
    got = points_array_to_xy(t.apply(points_xy_to_array(pts_xy)))
    np.testing.assert_allclose(got, expect_xy, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(affine_array_to_xy(affine_xy_to_array(A)), np.asarray(A))
    np.testing.assert_array_equal(t.to_xy(), np.asarray(A))


def test_matrix_matches_scipy_rule():
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    img = np.arange(35, dtype=np.float64).reshape(5, 7)
    t = AffineTransform.translation([1.0, 2.0])
    out = scipy_ndimage.affine_transform(img, t.matrix, order=1, mode="constant")
    # output index (r, c) samples the input at (r + 1, c + 2)
    assert out[0, 0] == img[1, 2] and out[2, 3] == img[3, 5]
    np.testing.assert_array_equal(t.apply([[0.0, 0.0]]), [[1.0, 2.0]])


def test_composition_inverse_and_3d():
    a = _rotation(10, (3.0, -2.0), center=(50, 60))
    b = _rotation(-4, (0.5, 1.5))
    p = np.random.default_rng(0).uniform(0, 100, (10, 2))
    np.testing.assert_allclose((a @ b).apply(p), a.apply(b.apply(p)), atol=1e-12)
    np.testing.assert_allclose(a.inverse().apply(a.apply(p)), p, atol=1e-10)
    t3 = AffineTransform.from_linear(np.diag([1.0, 2.0, 0.5]), [1, 2, 3])
    assert t3.ndim == 3 and t3.matrix.shape == (4, 4)
    np.testing.assert_allclose(t3.inverse().apply(t3.apply([[1.0, 2.0, 3.0]])), [[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="only 2-D"):
        t3.to_xy()


def test_matrix_is_a_read_only_copy():
    m = np.eye(3)
    t = AffineTransform(m)
    m[0, 2] = 5
    assert t.matrix[0, 2] == 0
    with pytest.raises(ValueError):
        t.matrix[0, 0] = 2
    assert AffineTransform(np.eye(3)[:2]) == AffineTransform.identity(2)


@pytest.mark.parametrize("bad, err, msg", [
    (np.full((3, 3), np.nan), ValueError, "NaN"),
    (np.eye(5), ValueError, "homogeneous"),
    (np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1]]), ValueError, "last row"),
    (np.eye(3, dtype=complex), TypeError, "complex"),
    (np.array([["a"]]), TypeError, "real numbers"),
])
def test_bad_matrices(bad, err, msg):
    with pytest.raises(err, match=msg):
        AffineTransform(bad)


def test_singular_has_no_inverse():
    with pytest.raises(ValueError, match="singular"):
        AffineTransform([[1, 1, 0], [1, 1, 0], [0, 0, 1]]).inverse()


def test_field_from_affine_and_coordinates():
    t = _rotation(7, (2.0, -1.0), center=(4, 5))
    f = DisplacementField.from_affine(t, (9, 11))
    assert f.shape == (9, 11) and f.ndim == 2 and f.field.dtype == np.float32
    grid = np.stack(np.meshgrid(np.arange(9.0), np.arange(11.0), indexing="ij"), -1).reshape(-1, 2)
    np.testing.assert_allclose(f.coordinates().reshape(-1, 2), t.apply(grid), atol=1e-4)
    z = DisplacementField.zeros((4, 5, 6))
    assert z.ndim == 3 and not z.field.any()


@pytest.mark.parametrize("bad, err", [
    (np.zeros((4, 5, 3)), ValueError),
    (np.zeros((4, 5)), ValueError),
    (np.full((4, 5, 2), np.inf), ValueError),
    (np.zeros((0, 5, 2)), ValueError),
    (np.zeros((4, 5, 2), complex), TypeError),
])
def test_bad_fields(bad, err):
    with pytest.raises(err):
        DisplacementField(bad)


def test_caller_field_is_copied():
    arr = np.zeros((3, 4, 2))
    f = DisplacementField(arr)
    arr[:] = 1
    assert not f.field.any()


def test_warp_takes_the_transform_objects():
    img = np.random.default_rng(1).random((20, 30)).astype(np.float32)
    t = _rotation(5, (1.0, -2.0), center=(10, 15))
    np.testing.assert_array_equal(sf.warp(img, t), sf.warp(img, t.matrix))
    f = DisplacementField.from_affine(t, img.shape)
    np.testing.assert_allclose(sf.warp(img, f), sf.warp(img, t), atol=1e-4)
    np.testing.assert_array_equal(sf.warp(img, f), sf.warp(img, f.field))
