"""ANTs/ITK displacement-field files and DIPY's mapping layout (issue 17): SimpleITK applies what
we write to the same result as DiffeomorphicMap.transform; round trips; bad input."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from spectralign_fast import synthetic
from spectralign_fast.io.displacement_fields import (read_displacement_field, write_ants_transforms,
                                                     write_displacement_field)
from spectralign_fast.io.volumes import write_image
from spectralign_fast.register import DiffeomorphicMap, read_mapping, write_mapping


def _field(shape, scale, seed):
    rng = np.random.default_rng(seed)
    d = len(shape)
    f = ndimage.gaussian_filter(rng.normal(size=tuple(shape) + (d,)), [5.0] * d + [0.0])
    return (f * scale / np.abs(f).max()).astype(np.float32)


def _result_map(shape, g2w, affine, u):
    """A map like a registration result: transform(moving) samples moving at affine(x + u(x))."""
    d = len(shape)
    m = DiffeomorphicMap(d, shape, g2w, shape, g2w, shape, g2w, np.linalg.inv(affine))
    m.forward = -u
    m.backward = u
    m.is_inverse = True
    return m


def test_simpleitk_applies_our_2d_files_like_transform(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    moving = synthetic.photograph("immunohistochemistry")[:120, :140].copy()
    shape = moving.shape
    affine = np.array([[1.0, 0.03, 1.5], [-0.02, 1.0, -2.0], [0, 0, 1]])
    u = _field(shape, 3.0, 1)
    m = _result_map(shape, np.eye(3), affine, u)
    ours = m.transform(moving)
    files = write_ants_transforms(tmp_path / "reg_", affine, m.get_forward_field(), m.get_backward_field(),
                                  np.eye(3))
    warp = sitk.ReadImage(str(files.warp), sitk.sitkVectorFloat64)
    assert warp.GetDimension() in (2, 3)
    if warp.GetDimension() == 3:  # some ITK builds keep the Z = 1 axis: drop it
        warp = warp[:, :, 0]
    composite = sitk.CompositeTransform([sitk.ReadTransform(str(files.affine)),
                                         sitk.DisplacementFieldTransform(warp)])
    img = sitk.GetImageFromArray(moving)
    theirs = sitk.GetArrayFromImage(sitk.Resample(img, img, composite, sitk.sitkLinear, 0.0))
    inner = (slice(10, -10), slice(10, -10))
    assert np.abs(theirs - ours)[inner].max() < 1e-3


def test_simpleitk_applies_our_3d_files_like_transform(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    datasets = pytest.importorskip("nilearn.datasets")
    tpl = datasets.load_mni152_template(resolution=2)
    moving = np.asarray(tpl.get_fdata(), dtype=np.float32)[10:60, 20:70, 15:55].copy()
    g2w = np.asarray(tpl.affine, dtype=np.float64).copy()
    g2w[:3, 3] += g2w[:3, :3] @ [10, 20, 15]
    g2w[0, :3] *= -1  # a left-right flip, so LPS and RAS differ in more than a sign convention
    shape = moving.shape
    c, s = np.cos(0.05), np.sin(0.05)
    affine = np.array([[c, -s, 0, 1.0], [s, c, 0, -2.0], [0, 0, 1, 0.5], [0, 0, 0, 1]])
    u = _field(shape, 4.0, 2)  # mm, RAS axes
    m = _result_map(shape, g2w, affine, u)
    ours = m.transform(moving)
    files = write_ants_transforms(tmp_path / "reg_", affine, m.get_forward_field(), m.get_backward_field(), g2w)
    write_image(tmp_path / "moving.nii.gz", moving, g2w)
    img = sitk.ReadImage(str(tmp_path / "moving.nii.gz"), sitk.sitkFloat32)
    composite = sitk.CompositeTransform([sitk.ReadTransform(str(files.affine)),
                                         sitk.DisplacementFieldTransform(
                                             sitk.ReadImage(str(files.warp), sitk.sitkVectorFloat64))])
    theirs = np.transpose(sitk.GetArrayFromImage(sitk.Resample(img, img, composite, sitk.sitkLinear, 0.0)),
                          (2, 1, 0))
    # Away from the edges, where samples can leave the volume (ITK and DIPY treat the last half
    # voxel differently), both resample to the same values.
    inner = (slice(8, -8),) * 3
    scale = np.abs(moving).max()
    assert np.abs(theirs - ours)[inner].max() < 1e-3 * scale


@pytest.mark.parametrize("world", ["ras", "lps", "array"])
def test_round_trip(tmp_path, world):
    u = _field((12, 14, 10), 2.0, 3)
    g2w = np.array([[2.0, 0, 0, -10], [0, 0, 2.5, 4], [0, -2.0, 0, 7], [0, 0, 0, 1]])
    p = write_displacement_field(tmp_path / "w.nii.gz", u, g2w, world=world)
    back = read_displacement_field(p, world=world)
    np.testing.assert_allclose(back.field, u, atol=1e-6)
    np.testing.assert_allclose(back.grid2world, g2w, atol=1e-5)
    with pytest.raises(FileExistsError):
        write_displacement_field(p, u, g2w, world=world)


def test_dipy_mapping_layout(tmp_path):
    shape = (10, 12, 9)
    g2w = np.diag([2.0, 2.0, 2.0, 1.0])
    m = _result_map(shape, g2w, np.eye(4), _field(shape, 1.0, 4))
    write_image(tmp_path / "s.nii.gz", np.ones(shape, np.float32), g2w)
    p = write_mapping(m, tmp_path / "map.nii.gz")
    back = read_mapping(p, str(tmp_path / "s.nii.gz"), str(tmp_path / "s.nii.gz"))
    np.testing.assert_array_equal(back.get_forward_field(), m.get_forward_field())
    img = np.random.default_rng(0).random(shape).astype(np.float32)
    np.testing.assert_allclose(back.transform(img), m.transform(img), atol=1e-6)
    dipy_public = pytest.importorskip("dipy.align._public")
    theirs = dipy_public.read_mapping(str(p), str(tmp_path / "s.nii.gz"), str(tmp_path / "s.nii.gz"))
    np.testing.assert_allclose(np.asarray(theirs.transform(img)), m.transform(img), atol=1e-5)


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        write_displacement_field(tmp_path / "a.nii.gz", np.zeros((5, 5, 3)), np.eye(3))
    bad = np.zeros((5, 5, 2))
    bad[1, 1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_displacement_field(tmp_path / "a.nii.gz", bad, np.eye(3))
    with pytest.raises(ValueError, match="NIfTI"):
        write_displacement_field(tmp_path / "a.tif", np.zeros((5, 5, 2)), np.eye(3))
    with pytest.raises(ValueError, match="singular"):
        write_displacement_field(tmp_path / "a.nii.gz", np.zeros((5, 5, 2)), np.zeros((3, 3)))
    with pytest.raises(FileNotFoundError):
        read_displacement_field(tmp_path / "missing.nii.gz")
    assert not list(tmp_path.iterdir())
