"""Affine transform files (io.transform_files): round trips in every format, SimpleITK reading
what we write and resampling a real image (camera; nilearn's MNI152 template) the same as our
oracle, and we reading what SimpleITK writes. Malformed and unsupported files are refused.

Convention: an affine maps static (fixed) world points to moving world points; resampling moving
onto the static grid samples moving at index inv(Gm) @ A @ Gs @ static_index (Gs, Gm: grid2world).
"""
from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from spectralign_fast.io import read_affine, read_volume, write_affine, write_volume

sitk = pytest.importorskip("SimpleITK")
ndimage = pytest.importorskip("scipy.ndimage")
scipy_io = pytest.importorskip("scipy.io")

F3 = np.diag([-1.0, -1.0, 1.0, 1.0])


def rotation(d: int, rng: np.random.Generator, degrees: float) -> np.ndarray:
    if d == 2:
        a = np.deg2rad(degrees)
        return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = np.deg2rad(degrees)
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K


def random_affine(d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    A = np.eye(d + 1)
    A[:d, :d] = rotation(d, rng, 12.0) @ (np.eye(d) + 0.05 * rng.normal(size=(d, d)))
    A[:d, d] = rng.normal(scale=5.0, size=d)
    return A


def basis(d: int, world: str) -> np.ndarray:
    """C with p_itk = C p_ours."""
    C = np.eye(d + 1)
    if world == "ras":
        C[0, 0] = C[1, 1] = -1
    elif world == "array":
        C[:d, :d] = np.eye(d)[::-1]
    return C


def sitk_matrix(t, d: int) -> np.ndarray:
    """The homogeneous matrix of any SimpleITK transform, from where it sends points."""
    pts = np.vstack([np.zeros(d), np.eye(d) * 10.0])
    out = np.array([t.TransformPoint(tuple(float(v) for v in p)) for p in pts])
    H = np.eye(d + 1)
    H[:d, d] = out[0]
    H[:d, :d] = (out[1:] - out[0]).T / 10.0
    return H


def interior_close(ours: np.ndarray, theirs: np.ndarray, margin: int, scale: float,
                   median: float = 1e-4, p99: float = 2e-2) -> None:
    sl = tuple(slice(margin, n - margin) for n in ours.shape)
    diff = np.abs(ours[sl].astype(np.float64) - theirs[sl].astype(np.float64)) / scale
    assert np.median(diff) < median, np.median(diff)
    assert np.percentile(diff, 99) < p99, np.percentile(diff, 99)


@pytest.fixture(scope="module")
def mni(tmp_path_factory):
    """nilearn's bundled MNI152 template at 2 mm, written to a NIfTI (our writer) and read back:
    (path, data, grid2world)."""
    datasets = pytest.importorskip("nilearn.datasets")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = datasets.load_mni152_template(resolution=2)
        data = np.asarray(img.get_fdata(), dtype=np.float32)
    path = tmp_path_factory.mktemp("mni") / "mni.nii.gz"
    write_volume(path, data, img.affine)
    vol, g = read_volume(path)
    np.testing.assert_array_equal(vol, data)
    np.testing.assert_allclose(g, img.affine)
    return path, vol, g


# ----------------------------------------------------------------------------- round trips

SUFFIXES = [".tfm", ".mat", ".txt", ".csv", ".dat"]


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("world", [None, "ras", "array", "lps"])
def test_round_trip(tmp_path, d, suffix, world):
    A = random_affine(d, seed=d)
    path = write_affine(tmp_path / f"t{suffix}", A, world=world)
    B = read_affine(path, world=world)
    assert B.shape == (d + 1, d + 1) and B.dtype == np.float64
    np.testing.assert_allclose(B, A, rtol=0, atol=1e-12)
    assert [p.name for p in tmp_path.iterdir()] == [f"t{suffix}"]  # no temporary left behind


def test_plain_matrix_file_is_exact_and_says_its_convention(tmp_path):
    A = random_affine(3, seed=4)
    write_affine(tmp_path / "m.txt", A)
    text = (tmp_path / "m.txt").read_text()
    assert text.startswith("# spectralign_fast affine (4x4 homogeneous)")
    assert "STATIC" in text and "# world: ras" in text
    rows = [line for line in text.splitlines() if not line.startswith("#")]
    assert np.array_equal(np.array([[float(v) for v in r.split()] for r in rows]), A)  # bit-exact
    assert np.array_equal(read_affine(tmp_path / "m.txt"), A)
    # A plain file is not converted, so reading it in another world is refused.
    with pytest.raises(ValueError, match="records world 'ras'"):
        read_affine(tmp_path / "m.txt", world="array")
    # One without a header (another tool's) is read as it is.
    np.savetxt(tmp_path / "bare.txt", A)
    np.testing.assert_array_equal(read_affine(tmp_path / "bare.txt", world="lps"), A)


def test_itk_text_named_txt_as_ants_does(tmp_path):
    A = random_affine(3, seed=5)
    write_affine(tmp_path / "ants.txt", A, format="itk")
    assert (tmp_path / "ants.txt").read_text().startswith("#Insight Transform File V1.0\n")
    np.testing.assert_allclose(read_affine(tmp_path / "ants.txt"), A, atol=1e-12)
    H = sitk_matrix(sitk.ReadTransform(str(tmp_path / "ants.txt")), 3)
    np.testing.assert_allclose(H, F3 @ A @ F3, atol=1e-9)


def test_mat_layout_is_what_itk_and_scipy_read(tmp_path):
    """vnl_matlab_write's layout: each variable a little-endian double column vector, the
    transform's parameters first (named by its type), then 'fixed'."""
    A = random_affine(3, seed=6)
    write_affine(tmp_path / "a.mat", A)
    raw = (tmp_path / "a.mat").read_bytes()
    name = b"AffineTransform_double_3_3\0"
    assert struct.unpack_from("<5i", raw, 0) == (0, 12, 1, 0, len(name))
    m = scipy_io.loadmat(tmp_path / "a.mat")
    H = F3 @ A @ F3
    np.testing.assert_allclose(m["AffineTransform_double_3_3"].ravel(),
                               np.concatenate([H[:3, :3].ravel(), H[:3, 3]]), rtol=0, atol=0)
    assert m["AffineTransform_double_3_3"].shape == (12, 1)
    np.testing.assert_array_equal(m["fixed"], np.zeros((3, 1)))
    # A file as ANTs may write it (float precision, a centre) through scipy's v4 writer.
    c = np.array([10.0, -20.0, 5.0])
    M, t = H[:3, :3], H[:3, 3] - c + H[:3, :3] @ c  # y = M (x - c) + t + c
    scipy_io.savemat(tmp_path / "ants.mat", {
        "AffineTransform_float_3_3": np.concatenate([M.ravel(), t]).astype(np.float32)[:, None],
        "fixed": c.astype(np.float32)[:, None]}, format="4")
    np.testing.assert_allclose(read_affine(tmp_path / "ants.mat"), A, atol=1e-4)


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("suffix", [".tfm", ".mat"])
@pytest.mark.parametrize("world", ["ras", "array", "lps"])
def test_simpleitk_reads_what_we_write(tmp_path, d, suffix, world):
    A = random_affine(d, seed=7)
    path = write_affine(tmp_path / f"t{suffix}", A, world=world)
    t = sitk.ReadTransform(str(path))
    C = basis(d, world)
    np.testing.assert_allclose(sitk_matrix(t, d), C @ A @ C, atol=1e-9)


# ----------------------------------------------------------------------------- resampling

def camera_affine() -> np.ndarray:
    """A moderate affine in array order about the middle of the 512x512 camera image."""
    A = np.eye(3)
    A[:2, :2] = rotation(2, np.random.default_rng(0), 9.0) @ np.array([[1.05, 0.04], [-0.02, 0.95]])
    centre = np.array([256.0, 256.0])
    A[:2, 2] = centre - A[:2, :2] @ centre + np.array([7.5, -4.25])
    return A


@pytest.fixture(scope="module")
def camera32():
    data = pytest.importorskip("skimage.data")
    return data.camera().astype(np.float32)


def sitk_resample_2d(img: np.ndarray, transform) -> np.ndarray:
    ref = sitk.GetImageFromArray(img)
    out = sitk.Resample(ref, ref, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


@pytest.mark.parametrize("suffix", [".tfm", ".mat"])
def test_we_write_simpleitk_resamples_camera_like_our_oracle(tmp_path, camera32, suffix):
    A = camera_affine()
    path = write_affine(tmp_path / f"cam{suffix}", A)  # 2-D default: world="array"
    theirs = sitk_resample_2d(camera32, sitk.ReadTransform(str(path)))
    ours = ndimage.affine_transform(camera32, A, order=1)  # Gs = Gm = identity
    interior_close(ours, theirs, margin=40, scale=255.0)


@pytest.mark.parametrize("suffix", [".tfm", ".mat"])
def test_simpleitk_writes_we_read_camera(tmp_path, camera32, suffix):
    t = sitk.AffineTransform(2)
    t.SetMatrix((0.97, -0.18, 0.15, 1.02))
    t.SetTranslation((6.5, -3.0))
    t.SetCenter((250.0, 270.0))
    sitk.WriteTransform(t, str(tmp_path / f"s{suffix}"))
    A = read_affine(tmp_path / f"s{suffix}")
    theirs = sitk_resample_2d(camera32, t)
    ours = ndimage.affine_transform(camera32, A, order=1)
    interior_close(ours, theirs, margin=40, scale=255.0)


def brain_affine(g: np.ndarray, shape) -> np.ndarray:
    """A rotation of 10 degrees about the volume's centre (RAS mm), a little scale and a shift."""
    centre = (g @ np.append((np.asarray(shape) - 1) / 2.0, 1.0))[:3]
    A = np.eye(4)
    A[:3, :3] = rotation(3, np.random.default_rng(3), 10.0) * 1.03
    A[:3, 3] = centre - A[:3, :3] @ centre + np.array([4.0, -6.0, 3.0])
    return A


def sitk_resample_nifti(path: Path, transform) -> np.ndarray:
    img = sitk.ReadImage(str(path), sitk.sitkFloat32)
    out = sitk.Resample(img, img, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0)  # ITK's (z, y, x) -> nibabel's (i, j, k)


@pytest.mark.parametrize("suffix", [".tfm", ".mat"])
def test_we_write_simpleitk_resamples_mni_like_our_oracle(tmp_path, mni, suffix):
    nii, vol, g = mni
    A = brain_affine(g, vol.shape)
    path = write_affine(tmp_path / f"brain{suffix}", A)  # 3-D default: world="ras"
    theirs = sitk_resample_nifti(nii, sitk.ReadTransform(str(path)))
    ours = ndimage.affine_transform(vol, np.linalg.inv(g) @ A @ g, order=1)
    interior_close(ours, theirs, margin=6, scale=float(vol.max()))
    # The identity would differ a lot: the check can fail.
    assert np.abs(ours - vol).mean() > 20 * np.abs(ours - theirs).mean()


@pytest.mark.parametrize("suffix", [".tfm", ".mat"])
def test_simpleitk_writes_we_read_mni(tmp_path, mni, suffix):
    nii, vol, g = mni
    t = sitk.AffineTransform(3)
    R = rotation(3, np.random.default_rng(8), -8.0) @ np.diag([1.02, 0.97, 1.0])
    t.SetMatrix(tuple(R.ravel()))
    t.SetTranslation((3.0, -2.0, 5.0))
    t.SetCenter((-10.0, 20.0, 15.0))  # LPS mm
    sitk.WriteTransform(t, str(tmp_path / f"s{suffix}"))
    A = read_affine(tmp_path / f"s{suffix}")
    theirs = sitk_resample_nifti(nii, t)
    ours = ndimage.affine_transform(vol, np.linalg.inv(g) @ A @ g, order=1)
    interior_close(ours, theirs, margin=6, scale=float(vol.max()))


# ----------------------------------------------------------------------------- other ITK types

def _sitk_transforms():
    rng = np.random.default_rng(11)
    out = []
    t = sitk.Euler3DTransform((1.0, -2.0, 3.0), 0.1, -0.2, 0.3, (4.0, 5.0, -6.0))
    out.append(("euler3d", t))
    t = sitk.Euler3DTransform((1.0, -2.0, 3.0), 0.1, -0.2, 0.3, (4.0, 5.0, -6.0))
    t.SetComputeZYX(True)
    out.append(("euler3d_zyx", t))
    v = rng.normal(size=3)
    v = tuple(0.3 * v / np.linalg.norm(v))
    t = sitk.VersorRigid3DTransform()
    t.SetParameters(v + (1.0, 2.0, 3.0))
    out.append(("versor_rigid", t))
    t = sitk.VersorRigid3DTransform()
    t.SetParameters(v + (1.0, 2.0, 3.0))
    t.SetCenter((5.0, 6.0, -7.0))
    out.append(("versor_rigid_centred", t))
    t = sitk.Similarity3DTransform()
    t.SetParameters(v + (1.0, -2.0, 0.5, 1.1))
    t.SetCenter((2.0, 0.0, -1.0))
    out.append(("similarity3d", t))
    out.append(("translation3d", sitk.TranslationTransform(3, (1.5, -2.5, 3.5))))
    out.append(("translation2d", sitk.TranslationTransform(2, (1.5, -2.5))))
    out.append(("euler2d", sitk.Euler2DTransform((3.0, 4.0), 0.4, (1.0, -1.0))))
    t = sitk.Similarity2DTransform(0.9, 0.3, (2.0, 1.0), (5.0, 6.0))
    out.append(("similarity2d", t))
    t = sitk.ScaleTransform(3, (1.1, 0.9, 1.2))
    t.SetCenter((1.0, 2.0, 3.0))
    out.append(("scale3d", t))
    a = sitk.AffineTransform(3)
    a.SetMatrix(tuple((np.eye(3) + 0.1 * rng.normal(size=(3, 3))).ravel()))
    a.SetTranslation((1.0, 2.0, 3.0))
    a.SetCenter((-3.0, 2.0, 1.0))
    comp = sitk.CompositeTransform([a, sitk.Euler3DTransform((0.0, 1.0, 2.0), 0.2, 0.1, -0.1, (1.0, 0.0, 0.0))])
    out.append(("composite3d", comp))
    return out


@pytest.mark.parametrize("suffix", [".tfm", ".mat"])
@pytest.mark.parametrize("name,transform", _sitk_transforms(), ids=[n for n, _ in _sitk_transforms()])
def test_other_itk_transform_types(tmp_path, suffix, name, transform):
    d = transform.GetDimension()
    if suffix == ".mat" and name.startswith("composite"):
        pytest.skip("ITK writes composite transforms to text files (.tfm) or HDF5 only")
    path = tmp_path / f"{name}{suffix}"
    sitk.WriteTransform(transform, str(path))
    A = read_affine(path, world="lps")
    np.testing.assert_allclose(A, sitk_matrix(transform, d), atol=1e-9)


# ----------------------------------------------------------------------------- refusals

ITK3 = "#Insight Transform File V1.0\n#Transform 0\nTransform: {name}\nParameters: {p}\nFixedParameters: {f}\n"


@pytest.mark.parametrize("text,match", [
    ("", "no 'Transform:' line"),
    ("#Insight Transform File V1.0\nTransform AffineTransform_double_3_3\n", "expected 'Name: value'"),
    ("#Insight Transform File V1.0\nParameters: 1 0 0 1 0 0\n", "before any 'Transform:' line"),
    (ITK3.format(name="AffineTransform_double_3_3", p="1 0 0 0 1 0 0 0 1 0 0", f="0 0 0"),
     "needs 12 Parameters, the file has 11"),
    (ITK3.format(name="AffineTransform_double_3_3", p="1 0 0 0 1 0 0 0 x 0 0 0", f="0 0 0"),
     "are not all numbers"),
    (ITK3.format(name="AffineTransform_double_3_3", p="1 0 0 0 1 0 0 0 1 0 0 0", f="0"),
     "needs 3 FixedParameters"),
    (ITK3.format(name="AffineTransform_double_3_3", p="1 0 0 0 1 0 0 0 0 0 0 0", f="0 0 0"),
     "singular"),
    (ITK3.format(name="AffineTransform_double_3_3", p="1 0 0 0 1 0 0 0 nan 0 0 0", f="0 0 0"),
     "NaN or inf"),
    (ITK3.format(name="BSplineTransform_double_3_3", p="1 2 3", f="0 0 0"),
     "unsupported transform type 'BSplineTransform'"),
    (ITK3.format(name="DisplacementFieldTransform_double_3_3", p="", f=""),
     "unsupported transform type 'DisplacementFieldTransform'"),
    (ITK3.format(name="AffineTransform_double_3_2", p="1", f="0"), "maps 3-D to 2-D"),
    (ITK3.format(name="Euler3DTransform_double_2_2", p="0 0 0 0 0 0", f="0 0 0"), "Euler3DTransform is 3-D"),
    (ITK3.format(name="Affine", p="1", f="0"), "unrecognised transform type"),
    (ITK3.format(name="TranslationTransform_double_2_2", p="1 2", f="") * 2, "2 separate transforms"),
    ("#Insight Transform File V1.0\nTransform: AffineTransform_double_2_2\nColour: red\n", "unknown tag 'Colour'"),
])
def test_malformed_itk_text_is_refused(tmp_path, text, match):
    (tmp_path / "bad.tfm").write_text(text)
    with pytest.raises(ValueError, match=match):
        read_affine(tmp_path / "bad.tfm")


def test_malformed_mat_is_refused(tmp_path):
    good = (tmp_path / "good.mat")
    write_affine(good, random_affine(3))
    raw = good.read_bytes()
    cases = {
        "truncated.mat": (raw[:-8], "truncated"),
        "header.mat": (raw[:12], "truncated MATLAB v4 header"),
        "nofixed.mat": (raw[:20 + 27 + 12 * 8], "no 'fixed'"),
        "garbage.mat": (b"\x7f" * 64, "not a MATLAB v4 file"),
        "empty.mat": (b"", "empty"),
    }
    for name, (blob, match) in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(ValueError, match=match):
            read_affine(tmp_path / name)
    scipy_io.savemat(tmp_path / "v5.mat", {"AffineTransform_double_3_3": np.zeros((12, 1))})
    with pytest.raises(ValueError, match="MATLAB v5"):
        read_affine(tmp_path / "v5.mat")
    scipy_io.savemat(tmp_path / "matrix.mat", {"AffineTransform_double_3_3": np.eye(4), "fixed": np.zeros((3, 1))},
                     format="4")
    with pytest.raises(ValueError, match="4x4 matrix"):
        read_affine(tmp_path / "matrix.mat")


@pytest.mark.parametrize("text,match", [
    ("1 0 0\n0 1 0\n", "2x3"),
    ("1 0 0 0 0\n" * 5, "5x5"),
    ("1 0 0\n0 1\n0 0 1\n", "different lengths"),
    ("1 0 0\n0 1 0\n0 0 a\n", "not a row of numbers"),
    ("1 0 0\n0 1 0\n0.5 0 1\n", "not affine"),
    ("1 0 0\n2 0 0\n0 0 1\n", "singular"),
    ("1 0 0\n0 1 inf\n0 0 1\n", "NaN or inf"),
    ("# only a comment\n", "no matrix rows"),
])
def test_malformed_plain_matrix_is_refused(tmp_path, text, match):
    (tmp_path / "m.txt").write_text(text)
    with pytest.raises(ValueError, match=match):
        read_affine(tmp_path / "m.txt")


@pytest.mark.parametrize("suffix", [".tfm", ".mat", ".txt"])
@pytest.mark.parametrize("matrix,match", [
    (np.zeros((3, 3)), "not affine"),
    (np.diag([1.0, 0.0, 1.0]), "singular"),
    (np.array([[1.0, 0, np.nan], [0, 1, 0], [0, 0, 1]]), "NaN or inf"),
    (np.eye(5), "3x3 .2-D. or 4x4"),
    (np.eye(3)[:, :2], "3x3 .2-D. or 4x4"),
])
def test_bad_matrices_are_not_written(tmp_path, suffix, matrix, match):
    with pytest.raises(ValueError, match=match):
        write_affine(tmp_path / f"t{suffix}", matrix)
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_complex_and_unknown_options(tmp_path):
    with pytest.raises(TypeError, match="complex"):
        write_affine(tmp_path / "t.tfm", np.eye(3, dtype=complex))
    with pytest.raises(ValueError, match="world must be"):
        write_affine(tmp_path / "t.tfm", np.eye(3), world="mni")
    with pytest.raises(ValueError, match="format must be"):
        write_affine(tmp_path / "t.tfm", np.eye(3), format="nifti")
    with pytest.raises(ValueError, match="world must be"):
        read_affine(write_affine(tmp_path / "t.tfm", np.eye(3)), world="RAS+")


def test_overwrite_only_when_asked(tmp_path):
    path = write_affine(tmp_path / "t.tfm", np.eye(4))
    with pytest.raises(FileExistsError):
        write_affine(path, random_affine(3))
    np.testing.assert_array_equal(read_affine(path), np.eye(4))
    write_affine(path, random_affine(3), overwrite=True)
    np.testing.assert_allclose(read_affine(path), random_affine(3), atol=1e-12)
    with pytest.raises(TypeError, match="overwrite"):
        write_affine(path, np.eye(4), overwrite="yes")


def test_caller_matrix_untouched_and_2x3_accepted(tmp_path):
    A = random_affine(2)[:2]
    copy = A.copy()
    write_affine(tmp_path / "t.tfm", A)
    np.testing.assert_array_equal(A, copy)
    np.testing.assert_allclose(read_affine(tmp_path / "t.tfm")[:2], A, atol=1e-12)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_affine(tmp_path / "none.tfm")
    with pytest.raises(ValueError, match="not a regular file"):
        read_affine(tmp_path)
    with pytest.raises(FileNotFoundError):
        write_affine(tmp_path / "no" / "t.tfm", np.eye(3))
    (tmp_path / "bin.tfm").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_affine(tmp_path / "bin.tfm")
