"""The global initialiser (register.initial_affine): known affines on real photographs and on the
MNI152 template must come back within a local optimiser's capture range."""
from __future__ import annotations

import numpy as np
import pytest

from spectralign_fast.register import InitialAlignment, initial_affine
from spectralign_fast import warp
from spectralign_fast.register._coarse import Coarse, Scorer, to_coarse
from spectralign_fast.register._spectral import fourier_mellin

ndi = pytest.importorskip("scipy.ndimage")
skdata = pytest.importorskip("skimage.data")
color = pytest.importorskip("skimage.color")

PAD = 64


def _photo(name: str) -> np.ndarray:
    img = getattr(skdata, name)()
    if img.ndim == 3:
        img = color.rgb2gray(img)
    img = img.astype(np.float64)
    img = (img - img.min()) / np.ptp(img)
    if max(img.shape) > 600:
        img = ndi.zoom(img, 512 / max(img.shape), order=1)
    return np.pad(img, PAD)


def _similarity(shape: tuple[int, ...], rotation: np.ndarray, scale: float, shift: np.ndarray) -> np.ndarray:
    """Static index -> moving index: scale * rotation about the centre, then shift."""
    d = len(shape)
    centre = (np.array(shape) - 1) / 2
    T = np.eye(d + 1)
    T[:d, :d] = scale * rotation
    T[:d, d] = centre - scale * rotation @ centre + shift
    return T


def _rotation_2d(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def _moved(image: np.ndarray, T: np.ndarray) -> np.ndarray:
    """The moving image whose sample at T x is static's at x (scipy as the oracle)."""
    return ndi.affine_transform(image, np.linalg.inv(T), output_shape=image.shape, order=1,
                                mode="constant", cval=0.0)


def errors(A: np.ndarray, T: np.ndarray, shape: tuple[int, ...]) -> tuple[float, float, float]:
    """Rotation error (degrees), relative scale error, RMS displacement error over the grid."""
    d = len(shape)
    L = A[:d, :d] @ np.linalg.inv(T[:d, :d])
    u, s, vt = np.linalg.svd(L)
    R = u @ vt
    cos = (np.trace(R) - 1) / 2 if d == 3 else R[0, 0]
    rot = float(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    scale = float(abs(np.prod(s) ** (1 / d) - 1))
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij"), -1).reshape(-1, d)
    diff = grid @ (A[:d, :d] - T[:d, :d]).T + (A[:d, d] - T[:d, d])
    return rot, scale, float(np.sqrt((diff ** 2).sum(1).mean()))


def _check(A: np.ndarray, T: np.ndarray, shape: tuple[int, ...], label: str) -> None:
    rot, scale, rms = errors(A, T, shape)
    print(f"{label}: rotation {rot:.2f} deg, scale {100 * scale:.2f} %, RMS {rms:.2f} px "
          f"({100 * rms / max(shape):.2f} % of the size)")
    assert rot < 5.0, label
    assert scale < 0.05, label
    assert rms < 0.10 * max(shape), label


CASES_2D = [
    # name, degrees, scale, shift (rows, cols), intensity remap
    ("camera", 90.0, 1.0, (20.0, -30.0), None),
    ("camera", 180.0, 1.0, (-40.0, 10.0), None),
    ("camera", 30.0, 1.1, (25.0, 35.0), None),
    ("astronaut", -30.0, 0.85, (-35.0, 20.0), None),
    ("astronaut", 180.0, 1.2, (10.0, 40.0), None),
    ("retina", 90.0, 0.9, (30.0, 30.0), None),
    ("retina", 20.0, 1.15, (-20.0, -40.0), None),
    ("coins", -90.0, 1.05, (15.0, -25.0), None),
    ("brick", 30.0, 1.0, (33.0, -17.0), None),
    ("brick", 90.0, 0.9, (-12.0, 27.0), None),
    ("camera", 30.0, 0.9, (-30.0, 20.0), "invert"),
    ("camera", 180.0, 1.1, (20.0, 25.0), "square"),
    ("astronaut", -90.0, 1.0, (40.0, -40.0), "square"),
    ("retina", 30.0, 0.8, (10.0, -20.0), "invert"),
    # angles off the 15-degree sweep's grid
    ("camera", 37.0, 1.1, (25.0, 35.0), None),
    ("brick", -23.0, 0.85, (-30.0, 12.0), None),
    ("coins", 113.0, 1.15, (20.0, 20.0), "square"),
    ("retina", -67.0, 0.9, (-40.0, 5.0), "invert"),
]


@pytest.mark.parametrize("name,degrees,scale,shift,remap", CASES_2D)
def test_photographs(name: str, degrees: float, scale: float, shift: tuple[float, float], remap: str | None) -> None:
    static = _photo(name)
    T = _similarity(static.shape, _rotation_2d(degrees), scale, np.array(shift))
    moving = _moved(static, T)
    if remap == "invert":
        moving = 1.0 - moving
    elif remap == "square":
        moving = 1.0 - moving ** 2
    rng = np.random.default_rng(sum(map(ord, name)) + int(degrees) % 360)
    static_noisy = static + 0.03 * rng.standard_normal(static.shape)
    moving = moving + 0.03 * rng.standard_normal(moving.shape)
    result = initial_affine(static_noisy, moving)
    assert isinstance(result, InitialAlignment)
    _check(result.affine, T, static.shape, f"{name} {degrees:g} deg x{scale:g} {remap or ''} [{result.method}]")


@pytest.mark.parametrize("name,degrees,scale", [("camera", 37.0, 1.1), ("brick", -23.0, 0.85),
                                                ("astronaut", 100.0, 0.9)])
def test_fourier_mellin_alone(name: str, degrees: float, scale: float) -> None:
    """The log-polar phase correlation by itself: rotation mod 180 degrees and scale."""
    static = _photo(name)
    moving = _moved(static, _similarity(static.shape, _rotation_2d(degrees), scale, np.array([12.0, -9.0])))
    h = max(static.shape) / 127
    shape = tuple(int(np.floor((n - 1) / h)) + 1 for n in static.shape)
    coarse = [to_coarse(img, np.eye(3), None, h, np.zeros(2), shape, "image", 0) for img in (static, moving)]
    angle, found = fourier_mellin(coarse[0], coarse[1], 0)
    error = (np.degrees(angle) - degrees + 90.0) % 180.0 - 90.0
    print(f"Fourier-Mellin {name} {degrees:g} deg x{scale:g}: angle error {error:.2f} deg, "
          f"scale error {100 * abs(found / scale - 1):.2f} %")
    assert abs(error) < 2.0
    assert abs(found / scale - 1) < 0.03


def _nmi_oracle(static: Coarse, moving: Coarse, mask: np.ndarray | None, T: np.ndarray) -> float:
    """The candidate score written with the warp and numpy: the pulled moving image (-1 where
    it has no sample), both intensities in 24 bins, Studholme's NMI over the overlap, scaled down
    below half the static field of view and 0 below a quarter."""
    nb = 24
    w = warp(moving.image, T, output_shape=static.image.shape, order=1, mode="constant", cval=-1.0)
    ok = static.valid & (w >= 0)
    if mask is not None:
        ok &= warp(mask.astype(np.float32), T, output_shape=static.image.shape, order=1,
                   mode="constant", cval=0.0) >= 0.5
    frac = ok.sum() / static.valid.sum()
    if frac < 0.25:
        return 0.0
    a = np.minimum((static.image[ok] * nb).astype(np.int64), nb - 1)
    b = np.minimum((w[ok] * nb).astype(np.int64), nb - 1)
    joint = np.bincount(a * nb + b, minlength=nb * nb).reshape(nb, nb) / ok.sum()

    def entropy(p: np.ndarray) -> float:
        q = p[p > 0]
        return float(-(q * np.log(q)).sum())
    nmi = (entropy(joint.sum(1)) + entropy(joint.sum(0))) / entropy(joint) - 1.0
    return float(nmi * min(1.0, frac / 0.5))


@pytest.mark.parametrize("ndim", [2, 3])
def test_candidate_score_matches_numpy_oracle(ndim: int) -> None:
    """The core's one-pass score against the warp + numpy oracle, on random candidate maps
    (rotations, scales, shifts that leave part of the image, and a moving mask)."""
    rng = np.random.default_rng(5)
    if ndim == 2:
        static, moving = _photo("camera"), _photo("astronaut")
    else:
        vol = ndi.gaussian_filter(rng.random((30, 34, 28)), 2.0)
        static, moving = vol, ndi.shift(vol, (1.5, -2.0, 1.0), order=1)
    h = 4.0 if ndim == 2 else 1.0
    shape = tuple(int(np.floor((n - 1) / h)) + 1 for n in static.shape)
    eye = np.eye(ndim + 1)
    cs = to_coarse(static, eye, None, h, np.zeros(ndim), shape, "static", 0)
    cm = to_coarse(moving, eye, None, h, np.zeros(ndim), shape, "moving", 0)
    mask = cm.valid & (rng.random(cm.valid.shape) > 0.2)
    for masked in (False, True):
        scorer = Scorer(cs, cm, mask if masked else None)
        for _ in range(12):
            q, _r = np.linalg.qr(rng.normal(size=(ndim, ndim)))
            T = np.eye(ndim + 1)
            T[:ndim, :ndim] = q * np.sign(np.linalg.det(q)) * rng.uniform(0.8, 1.2)
            T[:ndim, ndim] = rng.uniform(-0.3, 0.3, ndim) * np.array(shape)
            ours, oracle = scorer(T), _nmi_oracle(cs, cm, mask if masked else None, T)
            assert ours == pytest.approx(oracle, rel=2e-3, abs=1e-6)
    with pytest.raises(ValueError, match="finite"):
        scorer(np.full((ndim + 1, ndim + 1), np.nan))


def test_model_restrictions() -> None:
    static = _photo("camera")
    T = _similarity(static.shape, _rotation_2d(30.0), 1.1, np.array([20.0, -10.0]))
    moving = _moved(static, T)
    rigid = initial_affine(static, moving, model="rigid").affine
    assert np.allclose(rigid[:2, :2] @ rigid[:2, :2].T, np.eye(2), atol=1e-12)
    shift = _similarity(static.shape, np.eye(2), 1.0, np.array([25.0, -35.0]))
    translation = initial_affine(static, _moved(static, shift), model="translation")
    assert np.array_equal(translation.affine[:2, :2], np.eye(2))
    _check(translation.affine, shift, static.shape, "camera translation only")


def test_grid2world_pixel_sizes_and_shapes() -> None:
    """Moving at half the resolution (pixel size 2) and a different shape; a world offset."""
    static = _photo("astronaut")
    T = _similarity(static.shape, _rotation_2d(90.0), 1.0, np.array([10.0, 20.0]))
    full = _moved(static, T)
    moving = full[::2, ::2][:300, :310]
    gs = np.array([[1.0, 0, 5.0], [0, 1.0, -7.0], [0, 0, 1]])
    gm = np.array([[2.0, 0, 0.0], [0, 2.0, 0.0], [0, 0, 1]])
    A = initial_affine(static, moving, static_grid2world=gs, moving_grid2world=gm).affine
    # moving world = full-resolution moving index; static world = gs @ static index
    estimate = A @ gs
    _check(estimate, T, static.shape, "astronaut 90 deg, moving at pixel size 2")


def test_deterministic_and_thread_independent() -> None:
    static = _photo("coins")
    T = _similarity(static.shape, _rotation_2d(-30.0), 0.9, np.array([10.0, 5.0]))
    moving = _moved(static, T)
    a = initial_affine(static, moving, threads=1)
    b = initial_affine(static, moving, threads=2)
    c = initial_affine(static, moving, threads=2)
    assert np.array_equal(a.affine, b.affine) and np.array_equal(b.affine, c.affine)
    assert a.method == b.method and a.score == b.score and a.candidates == b.candidates


def test_inputs_untouched_and_result_frozen() -> None:
    static = _photo("camera")
    moving = _moved(static, _similarity(static.shape, _rotation_2d(10.0), 1.0, np.zeros(2)))
    s0, m0 = static.copy(), moving.copy()
    result = initial_affine(static, moving)
    assert np.array_equal(static, s0) and np.array_equal(moving, m0)
    assert result.affine.dtype == np.float64 and result.affine.shape == (3, 3)
    with pytest.raises(ValueError):
        result.affine[0, 0] = 2.0
    assert result.candidates and result.candidates[0][1] >= result.candidates[-1][1]


def test_bad_input() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((64, 64))
    with pytest.raises(ValueError, match="2-D but moving is 3-D"):
        initial_affine(img, rng.random((16, 16, 16)))
    bad = img.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        initial_affine(bad, img)
    bad[3, 3] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        initial_affine(img, bad)
    with pytest.raises(ValueError, match="constant"):
        initial_affine(np.full((64, 64), 3.0), img)
    with pytest.raises(ValueError, match="empty"):
        initial_affine(img, img, static_mask=np.zeros((64, 64), bool))
    with pytest.raises(ValueError, match="shape"):
        initial_affine(img, img, moving_mask=np.ones((32, 32), bool))
    with pytest.raises(ValueError, match="singular"):
        initial_affine(img, img, static_grid2world=np.diag([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="matrix"):
        initial_affine(img, img, moving_grid2world=np.eye(4))
    with pytest.raises(ValueError, match="model"):
        initial_affine(img, img, model="shear")
    with pytest.raises(ValueError, match="1-D|2-D or 3-D"):
        initial_affine(img[0], img)


def test_masks() -> None:
    """A static mask that leaves out a bright corner patch not present in moving."""
    static = _photo("camera")
    T = _similarity(static.shape, _rotation_2d(90.0), 1.0, np.array([15.0, -15.0]))
    moving = _moved(static, T)
    static = static.copy()
    static[:120, :120] = 1.0
    mask = np.ones(static.shape, bool)
    mask[:130, :130] = False
    _check(initial_affine(static, moving, static_mask=mask).affine, T, static.shape, "camera 90 deg, masked")


# ---- 3-D: the MNI152 template ----------------------------------------------------------------------

def _rotation_3d(axis: np.ndarray, degrees: float) -> np.ndarray:
    k = axis / np.linalg.norm(axis)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    a = np.deg2rad(degrees)
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * (K @ K)


@pytest.fixture(scope="module")
def template() -> tuple[np.ndarray, np.ndarray]:
    datasets = pytest.importorskip("nilearn.datasets")
    img = datasets.load_mni152_template(resolution=2)
    data = np.asarray(img.get_fdata(), dtype=np.float64)
    return np.pad(data, 8), np.asarray(img.affine, dtype=np.float64)


@pytest.mark.parametrize("seed,degrees,remap", [(1, 30.0, None), (2, 20.0, None), (3, 30.0, "invert"),
                                                (4, 25.0, "square")])
def test_mni_template(template: tuple[np.ndarray, np.ndarray], seed: int, degrees: float, remap: str | None) -> None:
    data, _ = template
    rng = np.random.default_rng(seed)
    R = _rotation_3d(rng.standard_normal(3), degrees)
    T = _similarity(data.shape, R, 1.0, rng.uniform(-10, 10, 3))
    moving = ndi.affine_transform(data, np.linalg.inv(T), output_shape=data.shape, order=1)
    moving = moving / moving.max()
    if remap == "invert":
        moving = np.where(moving > 0.02, 1.0 - moving, 0.0)
    elif remap == "square":
        moving = 1.0 - moving ** 2
    result = initial_affine(data, moving, model="rigid")
    rot, _, rms = errors(result.affine, T, data.shape)
    print(f"MNI {degrees:g} deg seed {seed} {remap or ''} [{result.method}]: rotation {rot:.2f} deg, "
          f"RMS {rms:.2f} voxels")
    assert rot < 5.0
    assert rms < 0.1 * max(data.shape)


def test_mni_template_world_coordinates(template: tuple[np.ndarray, np.ndarray]) -> None:
    """The template's own voxel-to-world affine (2 mm, shifted origin) on both sides."""
    data, affine = template
    R = _rotation_3d(np.array([1.0, 0.5, -0.3]), 25.0)
    T = _similarity(data.shape, R, 1.0, np.array([4.0, -6.0, 3.0]))  # in voxels
    moving = ndi.affine_transform(data, np.linalg.inv(T), output_shape=data.shape, order=1)
    A = initial_affine(data, moving, static_grid2world=affine, moving_grid2world=affine, model="rigid").affine
    estimate = np.linalg.inv(affine) @ A @ affine
    rot, _, rms = errors(estimate, T, data.shape)
    print(f"MNI world coordinates: rotation {rot:.2f} deg, RMS {rms:.2f} voxels")
    assert rot < 5.0 and rms < 0.1 * max(data.shape)
