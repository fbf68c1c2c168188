"""``spectralign-fast register`` end to end: files in, moved image and an ITK transform out."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
from scipy import ndimage
from skimage import data

from spectralign_fast.cli import main
from spectralign_fast.io import read_affine, read_volume


def test_register_2d_tiff_writes_image_and_itk_transform(tmp_path, capsys):
    src = data.camera().astype(np.float32) / 255.0
    static = np.ascontiguousarray(src[96:352, 96:352])
    moving = ndimage.shift(src, (-5.0, 7.0), order=1)[96:352, 96:352].astype(np.float32)
    tifffile.imwrite(tmp_path / "s.tif", static)
    tifffile.imwrite(tmp_path / "m.tif", moving)
    rc = main(["register", str(tmp_path / "s.tif"), str(tmp_path / "m.tif"), "-o", str(tmp_path / "out.tif"),
               "--transform", str(tmp_path / "t.tfm"), "--model", "rigid", "--quiet"])
    assert rc == 0
    affine = read_affine(tmp_path / "t.tfm")
    np.testing.assert_allclose(affine[:2, 2], [-5.0, 7.0], atol=0.05)  # moving[y] = static[y + (5, -7)]
    moved, g2w = read_volume(tmp_path / "out.tif")
    assert moved.shape == static.shape and np.array_equal(g2w, np.eye(3))
    assert np.abs(moved[20:-20, 20:-20] - static[20:-20, 20:-20]).mean() < 0.01
    # An existing output is refused without --overwrite (exit 2, one line on stderr).
    rc = main(["register", str(tmp_path / "s.tif"), str(tmp_path / "m.tif"), "-o", str(tmp_path / "out.tif")])
    assert rc == 2 and "exists" in capsys.readouterr().err


def test_register_nifti_honours_voxel_to_world(tmp_path):
    nib = pytest.importorskip("nibabel")
    datasets = pytest.importorskip("nilearn.datasets")
    img = datasets.load_mni152_template(resolution=2)
    vol = np.asarray(img.get_fdata(), dtype=np.float32)[::2, ::2, ::2].copy()
    g2w = img.affine @ np.diag([2.0, 2.0, 2.0, 1.0])
    moving = ndimage.shift(vol, (1.5, -1.0, 0.5), order=1).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, g2w), tmp_path / "s.nii.gz")
    nib.save(nib.Nifti1Image(moving, g2w), tmp_path / "m.nii.gz")
    rc = main(["register", str(tmp_path / "s.nii.gz"), str(tmp_path / "m.nii.gz"), "--model", "translation",
               "--transform", str(tmp_path / "t.txt"), "--quiet", "--initial", "mass"])
    assert rc == 0
    affine = read_affine(tmp_path / "t.txt", world="ras")
    # ndimage.shift: moving[y] = static[y - v], so static index x maps to moving index x + v.
    expected = g2w[:3, :3] @ np.array([1.5, -1.0, 0.5])
    np.testing.assert_allclose(affine[:3, 3], expected, atol=0.15)


def test_register_syn_writes_image_fields_and_report(tmp_path):
    import deformation_oracle as oracle

    from spectralign_fast.io import read_displacement_field

    src = data.immunohistochemistry().mean(axis=-1).astype(np.float32) / 255.0
    static = np.ascontiguousarray(src[::2, ::2][:192, :192])
    moving, truth = oracle.deformed_pair(static, max_displacement=4.0, bumps=4, seed=5)
    tifffile.imwrite(tmp_path / "s.tif", static)
    tifffile.imwrite(tmp_path / "m.tif", moving)
    rc = main(["register", str(tmp_path / "s.tif"), str(tmp_path / "m.tif"), "--model", "syn",
               "-o", str(tmp_path / "out.tif"), "--warp", str(tmp_path / "reg_"), "--level-iters", "50,50,20",
               "--report", str(tmp_path / "grid.png"), "--quiet"])
    assert rc == 0
    moved, _ = read_volume(tmp_path / "out.tif")
    inner = oracle.interior(static.shape)
    assert np.abs(moved - static)[inner].mean() < 0.4 * np.abs(moving - static)[inner].mean()
    for name in ("reg_0GenericAffine.mat", "reg_1Warp.nii.gz", "reg_1InverseWarp.nii.gz", "grid.png"):
        assert (tmp_path / name).stat().st_size > 0
    warp = read_displacement_field(tmp_path / "reg_1Warp.nii.gz")
    assert warp.field.shape == static.shape + (2,)
    assert np.sqrt(((warp.field - truth)[inner] ** 2).sum(-1).mean()) < 1.0


def test_register_syn_options_reach_register_syn_and_bad_ones_are_refused(tmp_path, capsys, monkeypatch):
    import spectralign_fast.cli.register as cli_register

    img = np.zeros((48, 48), np.float32)
    img[12:36, 10:30] = 1.0
    tifffile.imwrite(tmp_path / "s.tif", img)
    tifffile.imwrite(tmp_path / "m.tif", img)
    base = ["register", str(tmp_path / "s.tif"), str(tmp_path / "m.tif"), "-o", str(tmp_path / "o.tif"), "--quiet"]
    for extra, message in ((["--syn-step", "0.2"], "need --model syn"),
                           (["--model", "syn", "--syn-metric", "ssd", "--syn-sigma-diff", "2"], "cc or mi")):
        assert main(base + extra) == 2
        assert message in capsys.readouterr().err
    seen = {}

    def fake(*args, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(cli_register, "register_syn", fake)
    with pytest.raises(RuntimeError, match="stop here"):
        main(base + ["--model", "syn", "--syn-sigma-diff", "2", "--syn-step", "0.25"])
    assert seen["sigma_diff"] == 2.0 and seen["step_length"] == 0.25
    seen.clear()
    with pytest.raises(RuntimeError, match="stop here"):
        main(base + ["--model", "syn"])
    assert "sigma_diff" not in seen and "step_length" not in seen   # register_syn's own defaults
