"""Affine registration against known truth on real image content: scikit-image's photographs
warped by known affines (mono- and cross-modality), and the MNI152 brain template in 3-D.

The truth: static = source cropped at offset o_s; moving[y] = source(B @ y + o). A static point
x is the source point x + o_s = B y + o, so the true static-to-moving map is
y = inv(B) (x + o_s - o). Errors are RMS over every static pixel of |A x - A_true x|."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage import color, data, transform

import spectralign_fast.register as reg


def _grey(name: str) -> np.ndarray:
    img = getattr(data, name)()
    if img.ndim == 3:
        img = color.rgb2gray(img[..., :3])
    img = img.astype(np.float64)
    if max(img.shape) > 512:  # retina (1411 px): the whole fundus, not a featureless crop of it
        img = transform.resize(img, (512, 512), anti_aliasing=True)
    return (img - img.min()) / (img.max() - img.min())


def _affine_2d(angle_deg: float, scale: tuple[float, float], shear: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag(scale)


def make_pair(name: str, angle: float, scale: tuple[float, float], shear: float, shift: tuple[float, float],
              *, size: int = 320, noise: float = 0.02, modality: str = "same", seed: int = 0
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(static, moving, true static-to-moving affine) in array index coordinates."""
    src = _grey(name)
    n = src.shape[0]
    o_s = (np.array(src.shape[:2]) - size) // 2
    static = src[o_s[0]:o_s[0] + size, o_s[1]:o_s[1] + size]
    b = _affine_2d(angle, scale, shear)
    centre = np.array([size / 2.0, size / 2.0])
    # moving[y] = src(B (y - centre) + centre + o_s + shift)
    o = -b @ centre + centre + o_s + np.array(shift)
    moving = ndimage.affine_transform(src, b, offset=o, output_shape=(size, size), order=3, mode="nearest")
    rng = np.random.default_rng(seed)
    moving = np.clip(moving + noise * rng.standard_normal(moving.shape), 0, 1)
    static = np.clip(static + noise * rng.standard_normal(static.shape), 0, 1)
    if modality == "other":
        moving = 1.0 - moving ** 2
    binv = np.linalg.inv(b)
    truth = np.eye(3)
    truth[:2, :2] = binv
    truth[:2, 2] = binv @ (o_s - o)
    assert n >= size
    return static.astype(np.float32), moving.astype(np.float32), truth


def rms_error(found: np.ndarray, truth: np.ndarray, shape: tuple[int, ...]) -> float:
    d = len(shape)
    pts = np.indices(shape).reshape(d, -1).astype(np.float64)
    diff = (found[:d, :d] - truth[:d, :d]) @ pts + (found[:d, d] - truth[:d, d])[:, None]
    return float(np.sqrt((diff ** 2).sum(axis=0).mean()))


_MONO = [
    ("camera", 12.0, (1.05, 0.95), 0.03, (15.0, -22.0)),
    ("astronaut", -8.0, (0.92, 0.92), 0.0, (-30.0, 12.0)),
    ("retina", 15.0, (1.1, 1.0), -0.05, (8.0, 25.0)),
    ("brick", 5.0, (1.0, 1.0), 0.0, (6.0, -9.0)),
]


@pytest.mark.parametrize("name,angle,scale,shear,shift", _MONO, ids=[c[0] for c in _MONO])
def test_affine_2d_mono_modal(name, angle, scale, shear, shift):
    static, moving, truth = make_pair(name, angle, scale, shear, shift)
    result = reg.register_affine(static, moving, metric="cc")
    err = rms_error(result.affine, truth, static.shape)
    assert err <= 0.05, f"{name}: RMS error {err:.4f} px (correlation)"
    # Mutual information, the default, on the same pairs: about 0.04 px on the low-contrast
    # fundus (0.09 px before the overlap's soft edge), below 0.01 px elsewhere.
    result = reg.register_affine(static, moving)
    err = rms_error(result.affine, truth, static.shape)
    assert err <= 0.05, f"{name}: RMS error {err:.4f} px (MI)"


@pytest.mark.parametrize("name,angle,scale,shear,shift", _MONO[:3], ids=[c[0] for c in _MONO[:3]])
def test_affine_2d_cross_modality(name, angle, scale, shear, shift):
    static, moving, truth = make_pair(name, angle, scale, shear, shift, modality="other")
    result = reg.register_affine(static, moving, metric="mi")
    err = rms_error(result.affine, truth, static.shape)
    assert err <= 0.2, f"{name}: RMS error {err:.4f} px"


def test_dipy_api_and_ret_metric():
    static, moving, truth = make_pair("camera", 6.0, (1.0, 1.0), 0.0, (5.0, -4.0), size=256)
    affreg = reg.AffineRegistration(reg.MutualInformationMetric(32), level_iters=[200, 100, 50],
                                    sigmas=[3.0, 1.0, 0.0], factors=[4, 2, 1], verbosity=0)
    c_of_mass = reg.transform_centers_of_mass(static, np.eye(3), moving, np.eye(3))
    rigid = affreg.optimize(static, moving, reg.RigidTransform2D(), None, np.eye(3), np.eye(3),
                            starting_affine=c_of_mass.affine)
    amap, xopt, fopt = affreg.optimize(static, moving, reg.AffineTransform2D(), None, np.eye(3), np.eye(3),
                                       starting_affine=rigid.affine, ret_metric=True)
    assert rms_error(amap.affine, truth, static.shape) < 0.1
    assert xopt.shape == (6,) and fopt < 0
    # xopt is DIPY's parameter vector about the world origin, relative to the last level's start.
    assert len(affreg.levels_report) == 3 and all(r.evaluations > 0 for r in affreg.levels_report)
    moved = amap.transform(moving)
    assert moved.shape == static.shape and moved.dtype == np.float32
    inside = (slice(40, -40), slice(40, -40))
    assert np.abs(moved[inside] - static[inside]).mean() < 0.03
    back = amap.transform_inverse(static)
    assert back.shape == moving.shape
    pts = np.array([[10.0, 20.0], [100.0, 50.0]])
    np.testing.assert_allclose(amap.transform_points_inverse(amap.transform_points(pts)), pts, atol=1e-9)


def test_params0_and_starting_affine_mean_what_dipy_says():
    static, moving, truth = make_pair("camera", 0.0, (1.0, 1.0), 0.0, (4.0, -3.0), size=256)
    t = reg.TranslationTransform2D()
    affreg = reg.AffineRegistration(level_iters=[0], sigmas=[0.0], factors=[1], verbosity=0)
    amap = affreg.optimize(static, moving, t, np.array([4.0, -3.0]))
    np.testing.assert_allclose(amap.affine, [[1, 0, 4], [0, 1, -3], [0, 0, 1]])
    start = np.array([[1.0, 0, 1], [0, 1.0, 2], [0, 0, 1]])
    amap = affreg.optimize(static, moving, t, np.array([4.0, -3.0]), starting_affine=start)
    np.testing.assert_allclose(amap.affine, t.param_to_matrix(np.array([4.0, -3.0])) @ start)


def test_stage_levels_coarse_and_all():
    """The intermediate stages skip the finest level by default, the final one runs every level;
    "all" is DIPY's chain. Both recover the truth; the levels are shared between stages."""
    static, moving, truth = make_pair("astronaut", 9.0, (1.04, 0.97), 0.02, (7.0, -5.0), size=256)
    coarse = reg.register_affine(static, moving, threads=1)
    full = reg.register_affine(static, moving, stage_levels="all", threads=1)
    assert [(st.model, [lv.level for lv in st.levels]) for st in coarse.stages] == [
        ("translation", [2, 1]), ("rigid", [2, 1]), ("affine", [2, 1, 0])]
    assert [(st.model, [lv.level for lv in st.levels]) for st in full.stages] == [
        ("translation", [2, 1, 0]), ("rigid", [2, 1, 0]), ("affine", [2, 1, 0])]
    assert all(lv.static_shape == (64, 64) for st in coarse.stages for lv in st.levels if lv.level == 2)
    for result in (coarse, full):
        assert rms_error(result.affine, truth, static.shape) < 0.05
    # The work "coarse" saves is at full resolution. (Total evaluation counts are not compared:
    # on the cheap coarse levels they move by tens with last-bit changes of the start, e.g.
    # after other tests in the same process have used other FFT plans.)
    def full_resolution(result: reg.AffineResult) -> int:
        return sum(lv.evaluations for st in result.stages for lv in st.levels if lv.level == 0)
    assert full_resolution(coarse) < full_resolution(full)
    # A single level: every stage runs it.
    one = reg.register_affine(static, moving, level_iters=[100], sigmas=[0.0], factors=[1], threads=1)
    assert [[lv.level for lv in st.levels] for st in one.stages] == [[0], [0], [0]]
    with pytest.raises(ValueError, match="stage_levels"):
        reg.register_affine(static, moving, stage_levels="fine")


def test_registration_is_deterministic_across_threads():
    static, moving, _ = make_pair("retina", 7.0, (1.0, 1.0), 0.0, (3.0, 2.0), size=192)
    a = reg.register_affine(static, moving, model="rigid", threads=1).affine
    b = reg.register_affine(static, moving, model="rigid", threads=2).affine
    c = reg.register_affine(static, moving, model="rigid", threads=2).affine
    assert np.array_equal(a, b) and np.array_equal(b, c)


def test_caller_arrays_untouched_and_bad_input():
    static, moving, _ = make_pair("camera", 3.0, (1.0, 1.0), 0.0, (2.0, 2.0), size=128)
    s0, m0 = static.copy(), moving.copy()
    reg.register_affine(static, moving, model="translation", level_iters=[20, 10, 5])
    assert np.array_equal(static, s0) and np.array_equal(moving, m0)
    with pytest.raises(ValueError, match="2-D but moving is 3-D"):
        reg.register_affine(static, np.random.default_rng(0).random((4, 4, 4)))
    bad = moving.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        reg.register_affine(static, bad)
    with pytest.raises(ValueError, match="constant"):
        reg.register_affine(static, np.full_like(static, 0.5))
    with pytest.raises(ValueError, match="selects no voxel"):
        reg.register_affine(static, moving, static_mask=np.zeros(static.shape, bool))
    with pytest.raises(ValueError, match="singular"):
        reg.register_affine(static, moving, static_grid2world=np.diag([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="6 values"):
        reg.AffineRegistration().optimize(static, moving, reg.AffineTransform2D(), np.zeros(5))
    with pytest.raises(ValueError, match="model"):
        reg.register_affine(static, moving, model="elastic")
    with pytest.raises(ValueError, match="same length"):
        reg.AffineRegistration(level_iters=[10, 10], sigmas=[1.0], factors=[1, 2])


def _mni(kind: str = "t1") -> tuple[np.ndarray, np.ndarray]:
    datasets = pytest.importorskip("nilearn.datasets")
    img = (datasets.load_mni152_template(resolution=2) if kind == "t1"
           else datasets.load_mni152_gm_template(resolution=2))
    vol = np.asarray(img.get_fdata(), dtype=np.float32)
    return vol, np.asarray(img.affine, dtype=np.float64)


def _rotation_3d(angles_deg: tuple[float, float, float]) -> np.ndarray:
    a, b, c = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _warp_volume(vol: np.ndarray, b: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """moving[y] = vol(B (y - c) + c + shift) in index space; returns (moving, true index map
    static index -> moving index)."""
    c = (np.array(vol.shape) - 1) / 2.0
    o = -b @ c + c + shift
    moving = ndimage.affine_transform(vol, b, offset=o, order=3, mode="constant")
    truth = np.eye(4)
    binv = np.linalg.inv(b)
    truth[:3, :3] = binv
    truth[:3, 3] = -binv @ o
    return moving.astype(np.float32), truth


@pytest.mark.parametrize("modality", ["same", "gm"])
def test_affine_3d_mni_template(modality):
    vol, g2w = _mni()
    b = _rotation_3d((10.0, -6.0, 12.0)) @ np.diag([1.04, 0.97, 1.0])
    source = vol if modality == "same" else _mni("gm")[0] * 100.0
    moving, truth_index = _warp_volume(source, b, np.array([6.0, -8.0, 4.0]))
    result = reg.register_affine(vol, moving, static_grid2world=g2w, moving_grid2world=g2w)
    found_index = np.linalg.inv(g2w) @ result.affine @ g2w
    err = rms_error(found_index, truth_index, vol.shape)
    assert err <= (0.1 if modality == "same" else 0.3), f"{modality}: RMS error {err:.4f} voxels"


_LARGE = [
    ("camera", 90.0, (1.0, 1.0), 0.0, (10.0, -12.0)),
    ("astronaut", 180.0, (1.1, 1.1), 0.0, (-14.0, 6.0)),
    ("brick", 30.0, (0.9, 0.9), 0.0, (20.0, 20.0)),
    ("coins", -30.0, (1.2, 1.2), 0.02, (-25.0, 18.0)),
]


@pytest.mark.parametrize("name,angle,scale,shear,shift", _LARGE, ids=[f"{c[0]}-{c[1]:g}" for c in _LARGE])
def test_large_rotations_need_no_params0(name, angle, scale, shear, shift):
    static, moving, truth = make_pair(name, angle, scale, shear, shift, size=256)
    result = reg.register_affine(static, moving)
    err = rms_error(result.affine, truth, static.shape)
    assert err <= 0.1, f"{name} {angle} deg: RMS error {err:.4f} px ({result.initial_method})"
    assert result.initial_method.startswith("initial_affine")


@pytest.mark.slow
def test_agrees_with_dipy_on_the_template():
    """DIPY itself (skipped when it is not installed), same inputs and settings: a rigid
    registration of the MNI152 template at 4 mm against a moved copy."""
    imaffine = pytest.importorskip("dipy.align.imaffine")
    transforms = pytest.importorskip("dipy.align.transforms")
    vol, g2w = _mni()
    vol = np.ascontiguousarray(vol[::2, ::2, ::2])
    g2w = g2w @ np.diag([2.0, 2.0, 2.0, 1.0])
    moving, truth_index = _warp_volume(vol, _rotation_3d((6.0, -4.0, 5.0)), np.array([2.0, -1.5, 1.0]))
    settings = dict(level_iters=[1000, 100, 50], sigmas=[3.0, 1.0, 0.0], factors=[4, 2, 1])
    dipy_reg = imaffine.AffineRegistration(metric=imaffine.MutualInformationMetric(nbins=32, sampling_proportion=None), verbosity=0,
                                           **settings)
    start = imaffine.transform_centers_of_mass(vol, g2w, moving, g2w).affine
    theirs = dipy_reg.optimize(vol, moving.astype(np.float64), transforms.RigidTransform3D(), None,
                               static_grid2world=g2w, moving_grid2world=g2w, starting_affine=start).affine
    ours = reg.AffineRegistration(reg.MutualInformationMetric(32), verbosity=0, **settings).optimize(
        vol, moving, reg.RigidTransform3D(), None, g2w, g2w, starting_affine="mass").affine
    to_index = np.linalg.inv(g2w)
    err_ours = rms_error(to_index @ ours @ g2w, truth_index, vol.shape)
    err_dipy = rms_error(to_index @ theirs @ g2w, truth_index, vol.shape)
    between = rms_error(to_index @ ours @ g2w, to_index @ theirs @ g2w, vol.shape)
    assert err_ours <= max(err_dipy, 0.1), (err_ours, err_dipy)
    assert between < 0.5, f"ours and DIPY differ by {between:.3f} voxels (ours {err_ours:.3f}, DIPY {err_dipy:.3f})"
