"""io.volumes: images with their grid-to-world matrix (NIfTI through nibabel; 2-D TIFF/PNG/JPEG
with the identity). Checked on nilearn's MNI152 template and synthetic anisotropic volumes."""
from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage

from spectralign_fast.io import read_volume, write_volume
from spectralign_fast.io.volumes import read_image, write_image


def anisotropic_affine() -> np.ndarray:
    """Voxels 0.8 x 1.5 x 3.0 mm, rotated a little, an oblique RAS+ grid."""
    a = np.deg2rad(7.0)
    R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    A = np.eye(4)
    A[:3, :3] = R @ np.diag([-0.8, 1.5, 3.0])
    A[:3, 3] = [40.0, -60.0, -25.0]
    return A


def test_aliases():
    assert read_volume is read_image and write_volume is write_image


def test_mni_template_round_trip(tmp_path):
    datasets = pytest.importorskip("nilearn.datasets")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = datasets.load_mni152_template(resolution=2)
        expected = np.asarray(img.get_fdata(), dtype=np.float32)
    path = write_image(tmp_path / "mni.nii.gz", expected, img.affine)
    data, g = read_image(path)
    assert data.dtype == np.float32 and data.shape == expected.shape and g.dtype == np.float64
    np.testing.assert_array_equal(data, expected)
    np.testing.assert_array_equal(g, np.asarray(img.affine, dtype=np.float64))
    np.testing.assert_allclose(np.sqrt((g[:3, :3] ** 2).sum(axis=0)), [2.0, 2.0, 2.0])


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_anisotropic_volume_keeps_its_grid_and_both_forms(tmp_path, suffix):
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(9, 7, 5)).astype(np.float32)
    A = anisotropic_affine()
    path = write_image(tmp_path / f"v{suffix}", vol, A)
    data, g = read_image(path)
    np.testing.assert_array_equal(data, vol)
    np.testing.assert_allclose(g, A, atol=1e-6)
    img = nib.load(path)
    assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
    np.testing.assert_allclose(img.get_sform(), A, atol=1e-6)
    np.testing.assert_allclose(img.get_qform(), A, atol=1e-5)
    np.testing.assert_allclose(img.header.get_zooms(), [0.8, 1.5, 3.0], atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == [f"v{suffix}"]


def test_sheared_grid_is_stored_as_sform_only(tmp_path):
    A = anisotropic_affine()
    A[0, 1] += 0.4  # a shear: a qform cannot hold it
    write_image(tmp_path / "s.nii.gz", np.ones((4, 4, 4)), A)
    img = nib.load(tmp_path / "s.nii.gz")
    assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 0
    np.testing.assert_allclose(read_image(tmp_path / "s.nii.gz")[1], A, atol=1e-6)


def test_scaled_integer_nifti_and_4d(tmp_path):
    raw = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    img = nib.Nifti1Image(raw, anisotropic_affine())
    img.header.set_slope_inter(0.5, 10.0)
    nib.save(img, tmp_path / "i.nii")
    data, _ = read_image(tmp_path / "i.nii")
    assert data.dtype == np.float32
    np.testing.assert_allclose(data, raw * 0.5 + 10.0)
    nib.save(nib.Nifti1Image(raw[..., None].astype(np.float32), np.eye(4)), tmp_path / "one.nii.gz")
    data, g = read_image(tmp_path / "one.nii.gz")
    assert data.shape == (3, 4, 5)
    nib.save(nib.Nifti1Image(np.zeros((3, 4, 5, 2), np.float32), np.eye(4)), tmp_path / "two.nii.gz")
    with pytest.raises(ValueError, match=r"shape \(3, 4, 5, 2\).*one volume"):
        read_image(tmp_path / "two.nii.gz")


def test_2d_nifti(tmp_path):
    g = np.array([[0.5, 0, 3.0], [0, 2.0, -1.0], [0, 0, 1]])
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_image(tmp_path / "p.nii.gz", img, g)
    data, g2 = read_image(tmp_path / "p.nii.gz")
    np.testing.assert_array_equal(data, img)
    np.testing.assert_allclose(g2, g)


def test_2d_image_files(tmp_path, camera):
    cam = (camera * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "c.tif", cam)
    PILImage.fromarray(cam).save(tmp_path / "c.png")
    for name in ("c.tif", "c.png"):
        data, g = read_image(tmp_path / name)
        assert data.dtype == np.float32
        np.testing.assert_array_equal(data, cam.astype(np.float32))  # values kept, not rescaled
        np.testing.assert_array_equal(g, np.eye(3))
    rgb = np.stack([cam, cam // 2, 255 - cam], axis=-1)
    PILImage.fromarray(rgb).save(tmp_path / "rgb.png")
    data, _ = read_image(tmp_path / "rgb.png")
    expected = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(data, expected, atol=1e-3)
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((5, 8, 8), np.float32))
    with pytest.raises(ValueError, match="only 2-D images"):
        read_image(tmp_path / "stack.tif")


def test_tiff_write(tmp_path):
    img = np.random.default_rng(1).normal(size=(40, 30))
    path = write_image(tmp_path / "o.tif", img, np.eye(3))
    data, g = read_image(path)
    np.testing.assert_array_equal(data, img.astype(np.float32))
    with pytest.raises(FileExistsError):
        write_image(path, img, np.eye(3))
    write_image(path, img * 2, np.eye(3), overwrite=True)
    np.testing.assert_array_equal(read_image(path)[0], (img * 2).astype(np.float32))
    with pytest.raises(ValueError, match="cannot store grid2world"):
        write_image(tmp_path / "g.tif", img, np.diag([2.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="2-D image"):
        write_image(tmp_path / "v.tif", np.zeros((3, 4, 5)), np.eye(4))
    with pytest.raises(ValueError, match="NIfTI"):
        write_image(tmp_path / "v.png", img, np.eye(3))


def test_bad_input(tmp_path):
    vol = np.zeros((4, 4, 4), np.float32)
    with pytest.raises(ValueError, match="must be 4x4"):
        write_image(tmp_path / "a.nii", vol, np.eye(3))
    with pytest.raises(ValueError, match="singular"):
        write_image(tmp_path / "a.nii", vol, np.diag([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="NaN or inf"):
        write_image(tmp_path / "a.nii", vol, np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="not affine"):
        write_image(tmp_path / "a.nii", vol, np.ones((4, 4)))
    with pytest.raises(ValueError, match="2-D or 3-D"):
        write_image(tmp_path / "a.nii", np.zeros((2, 2, 2, 2)), np.eye(5))
    with pytest.raises(TypeError, match="complex"):
        write_image(tmp_path / "a.nii", vol + 0j, np.eye(4))
    with pytest.raises(ValueError, match="unsupported image file"):
        write_image(tmp_path / "a.npy", vol, np.eye(4))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "none.nii.gz")
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(ValueError, match="cannot read NIfTI"):
        read_image(tmp_path / "bad.nii.gz")
    g = np.eye(4)
    before = g.copy()
    write_image(tmp_path / "ok.nii", vol, g)
    np.testing.assert_array_equal(g, before)
    with pytest.raises(FileExistsError):
        write_image(tmp_path / "ok.nii", vol, g)
