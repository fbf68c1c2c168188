"""LDDMM (STalign's energy) end to end, on real image content with known truth: a simulated
fluorescence image against the IHC photograph, two point clouds of nuclei, and an oblique
slice of the MNI152 template against the 3-D template; both front ends (register.lddmm.LDDMM
and spectralign_fast.stalign); bad input."""
from __future__ import annotations

import numpy as np
import pytest

from spectralign_fast import stalign as STalign
from spectralign_fast.register.lddmm import LDDMM

pytest.importorskip("scipy")
pytest.importorskip("skimage")
synthetic = pytest.importorskip("spectralign_fast.synthetic_tissue")


@pytest.fixture(scope="module")
def pair():
    return synthetic.fluorescence_pair()


def _rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum((a - b) ** 2, axis=1))))


def _min_jacobian(result, points: np.ndarray, h: float = 0.5) -> float:
    """Smallest Jacobian determinant of the source-to-target map at the points (central
    differences)."""
    cols = []
    for k in range(2):
        e = np.zeros(2)
        e[k] = h
        cols.append((result.transform_points(points + e) - result.transform_points(points - e)) / (2 * h))
    return float(np.min(cols[0][:, 0] * cols[1][:, 1] - cols[0][:, 1] * cols[1][:, 0]))


@pytest.mark.slow
def test_fluorescence_to_ihc_within_one_pixel(pair):
    """The STalign blog's procedure: landmark affine from 4 imprecise points, then LDDMM."""
    pI, pJ = pair.landmarks(4, 1.0, seed=1)
    I_before, J_before = pair.I.copy(), pair.J.copy()
    pts = pair.tissue_points(500, seed=2)
    truth = pair.source_to_target(pts)
    L, T = STalign.L_T_from_points(pI, pJ)
    affine_only = pts @ L.T + T
    result = LDDMM(threads=2).fit(pair.xI, pair.I, pair.xJ, pair.J, points_I=pI, points_J=pJ)
    assert np.array_equal(pair.I, I_before) and np.array_equal(pair.J, J_before)
    err = _rms(result.transform_points(pts), truth)
    assert err < 1.0, f"RMS {err:.3f} px"
    assert err < 0.5 * _rms(affine_only, truth)
    assert result.converged and result.iterations < 2000
    assert len(result.level_iterations) == 2 and sum(result.level_iterations) == result.iterations
    first = result.energies[:result.level_iterations[0], 0]
    assert first[-1] < 0.8 * first[0]
    # Between two weight updates (every 5 iterations) the energy is one function: it falls.
    start = 0
    for n in result.level_iterations:
        E = result.energies[start:start + n, 0]
        for m in range(0, n - 1, 5):
            block = E[m + 1:m + 6]
            assert np.all(np.diff(block) <= 1e-12 * np.abs(block[:-1])), (start, m, block)
        start += n
    grid = np.stack(np.meshgrid(np.arange(10, 220, 6.0), np.arange(10, 220, 6.0), indexing="ij"), -1)
    assert _min_jacobian(result, grid.reshape(-1, 2)) > 0.5  # no folding
    # The inverse takes the mapped points back.
    back = result.inverse().transform_points(result.transform_points(pts))
    assert _rms(back, pts) < 0.1
    moved = result.transform(pair.I)
    assert moved.shape == (1,) + pair.J.shape[1:]


@pytest.mark.slow
def test_cell_point_clouds_tre_within_1_5_pixels():
    cells = synthetic.cell_point_clouds()
    ps, pt = cells.points_source, cells.points_target
    XI, YI, WI = STalign.rasterize(ps[:, 1], ps[:, 0], dx=3.0, blur=1.0, draw=0)
    XJ, YJ, WJ = STalign.rasterize(pt[:, 1], pt[:, 0], dx=3.0, blur=1.0, draw=0)
    result = LDDMM(threads=2).fit([YI, XI], WI, [YJ, XJ], WJ)
    src, dst = ps[cells.matched_source], pt[cells.matched_target]
    before, _ = STalign.calculate_tre(src, dst)
    tre, _ = STalign.calculate_tre(result.transform_points(src), dst)
    assert before > 10 and tre < 1.5, (before, tre)


def _atlas_case():
    pytest.importorskip("nilearn")
    from scipy.spatial.transform import Rotation

    s = synthetic.atlas_slice()
    axis = np.array([0.3, 0.8, 0.5]) / np.linalg.norm([0.3, 0.8, 0.5])
    P = np.eye(4)
    P[:3, :3] = Rotation.from_rotvec(np.deg2rad(3.0) * axis).as_matrix()
    centre = s.A_true[:3, :3] @ np.array([0.0, s.xJ[1].mean(), s.xJ[2].mean()]) + s.A_true[:3, 3]
    P[:3, 3] = centre - P[:3, :3] @ centre + np.array([2.0, -3.0, 2.0])
    start = P @ s.A_true  # slice -> atlas, 3 degrees and ~4 mm off
    pts = s.slice_points(500, seed=3)
    h = np.c_[pts, np.ones(len(pts))]
    assert _rms((h @ start.T)[:, :3], s.target_to_atlas(pts)) > 2.0
    return s, start, pts, h


def _check_slice(s, pts, h, target_to_atlas, A):
    voxel = 2.0
    err = np.sqrt(np.sum((target_to_atlas - s.target_to_atlas(pts)) ** 2, axis=1))
    assert np.sqrt(np.mean(err ** 2)) < 0.5 * voxel and np.percentile(err, 95) < voxel
    # The pose alone (the affine, no deformation) against the true pose of the plane.
    pose = (h @ np.linalg.inv(A).T)[:, :3]
    assert _rms(pose, (h @ s.A_true.T)[:, :3]) < voxel


@pytest.mark.slow
def test_atlas_to_oblique_slice_within_one_voxel():
    s, start, pts, h = _atlas_case()
    result = LDDMM(threads=2, expand=1.25, max_iterations=400).fit(s.xI, s.I, s.xJ, s.J,
                                                                   A=np.linalg.inv(start))
    _check_slice(s, pts, h, result.inverse().transform_points(pts), result.A)


def test_stalign_3d_to_slice_within_one_voxel():
    """STalign's LDDMM_3D_to_slice (its defaults but for the step sizes and mixture scales)."""
    s, start, pts, h = _atlas_case()
    out = STalign.LDDMM_3D_to_slice(s.xI, s.I, [s.xJ[1], s.xJ[2]], s.J[:, 0], A=np.linalg.inv(start),
                                    a=20.0, niter=300, epL=1e-7, epT=2e-3, epV=2.5, sigmaM=0.1,
                                    sigmaB=0.2, sigmaA=0.5)
    assert out["E"][-1, 0] < 0.05 * out["E"][0, 0]
    mapped = STalign.transform_points_target_to_source(out["xv"], out["v"], out["A"], pts)
    _check_slice(s, pts, h, mapped, out["A"])


def test_threads_give_identical_results(pair):
    runs = [LDDMM(threads=t, max_iterations=12, weights_start=5).fit(pair.xI, pair.I, pair.xJ, pair.J)
            for t in (1, 2)]
    assert np.array_equal(runs[0].v, runs[1].v) and np.array_equal(runs[0].A, runs[1].A)
    assert np.array_equal(runs[0].energies, runs[1].energies) and np.array_equal(runs[0].WM, runs[1].WM)


def test_stalign_schedule_lowers_the_energy_and_matches_its_helpers(pair):
    pI, pJ = pair.landmarks(4, 1.0, seed=1)
    L, T = STalign.L_T_from_points(pI, pJ)
    out = STalign.LDDMM(pair.xI, pair.I, pair.xJ, pair.J, pointsI=pI, pointsJ=pJ, L=L, T=T, niter=30,
                        a=25.0, epL=2e-9, epT=1e-4, epV=0.05, sigmaM=0.1, sigmaB=0.1, sigmaA=0.2,
                        sigmaR=1e4, sigmaP=2.0, dtype="float32")
    assert set(out) >= {"A", "v", "xv", "WM", "WB", "WA"}
    assert out["v"].dtype == np.float32 and out["v"].shape[0] == 3 and out["v"].shape[-1] == 2
    assert out["WM"].shape == pair.J.shape[1:]
    E = out["E"][:, 0]
    assert E[-1] < E[0]
    pts = pair.tissue_points(50, seed=4)
    fwd = STalign.transform_points_source_to_target(out["xv"], out["v"], out["A"], pts)
    back = STalign.transform_points_target_to_source(out["xv"], out["v"], out["A"], fwd)
    assert np.abs(back - pts).max() < 0.2  # the Euler steps are inverse to first order
    img = STalign.transform_image_source_to_target(out["xv"], out["v"], out["A"], pair.xI, pair.I,
                                                   XJ=pair.xJ)
    assert img.shape == (1,) + pair.J.shape[1:]
    phii = STalign.build_transform(out["xv"], out["v"], out["A"], direction="b", XJ=pair.xJ)
    assert phii.shape == pair.J.shape[1:] + (2,)
    affine_img = STalign.transform_image_source_with_A(STalign.to_A(L, T), pair.xI, pair.I, pair.xJ)
    assert affine_img.shape == img.shape and np.isfinite(affine_img).all()


def test_3d_to_slice_returns_stalign_keys():
    rng = np.random.default_rng(0)
    I = rng.random((1, 10, 12, 11))
    xI = [np.arange(10) * 2.0, np.arange(12) * 2.0, np.arange(11) * 2.0]
    J = I[:, 5]
    out = STalign.LDDMM_3D_to_slice(xI, I, [xI[1], xI[2]], J, T=[10.0, 0.0, 0.0], a=8.0, niter=3)
    assert out["Xs"].shape == (1, 12, 11, 3) and out["A"].shape == (4, 4) and out["WM"].shape == (1, 12, 11)
    assert out["v"].shape[-1] == 3


@pytest.mark.parametrize("case, message", [
    ("channels", "channel axis"),
    ("shape", "coordinate vectors give the grid"),
    ("nan", "NaN"),
    ("points", "empty"),
    ("niter", "niter"),
    ("mu", "one value per target channel"),
    ("lonely_points", "corresponding sets"),
])
def test_bad_input_is_refused_clearly(pair, case, message):
    xI, I, xJ, J = pair.xI, pair.I.copy(), pair.xJ, pair.J.copy()
    kw: dict = dict(niter=2, a=40.0)
    if case == "channels":
        I = I[0]
    elif case == "shape":
        xI = [xI[0][:-1], xI[1]]
    elif case == "nan":
        J[0, 3, 3] = np.nan
    elif case == "points":
        kw.update(pointsI=np.zeros((0, 2)), pointsJ=np.zeros((0, 2)))
    elif case == "niter":
        kw.update(niter=0)
    elif case == "mu":
        kw.update(muA=[1.0, 1.0])
    elif case == "lonely_points":
        kw.update(pointsI=np.ones((3, 2)))
    before = (I.copy(), J.copy())
    with pytest.raises(ValueError, match=message):
        STalign.LDDMM(xI, I, xJ, J, **kw)
    assert np.array_equal(I, before[0], equal_nan=True) and np.array_equal(J, before[1], equal_nan=True)


def test_own_front_end_refuses_bad_input(pair):
    with pytest.raises(ValueError, match="positive"):
        LDDMM(tolerance=0)
    with pytest.raises(ValueError, match="xI is 2-D but xJ is 3-D"):
        LDDMM().fit(pair.xI, pair.I, pair.xJ + [np.arange(2.0)], pair.J[:, None])
    with pytest.raises(ValueError, match="too large"):
        LDDMM(a=1e6).fit(pair.xI, pair.I, pair.xJ, pair.J)
    uneven = [pair.xI[0] ** 1.01, pair.xI[1]]
    with pytest.raises(ValueError, match="uniformly spaced"):
        LDDMM().fit(uneven, pair.I, pair.xJ, pair.J)


def test_stalign_layer_reproduces_stalign_itself():
    """STalign's own result on a small case (tests/data/stalign_golden.npz, written by
    bench/stalign_golden.py in STalign's PyTorch environment): the same A, v and weights after
    60 iterations, past the start of the weight updates."""
    from pathlib import Path

    d = np.load(Path(__file__).parent / "data" / "stalign_golden.npz")
    params = {k[len("param_"):]: float(d[k]) for k in d.files if k.startswith("param_")}
    params["nt"] = int(params["nt"])
    out = STalign.LDDMM([d["xI0"], d["xI1"]], d["I"], [d["xJ0"], d["xJ1"]], d["J"], pointsI=d["pointsI"],
                        pointsJ=d["pointsJ"], L=d["L"], T=d["T"], niter=int(d["niter"]), **params)
    v = d["v_stalign"]
    assert np.allclose(out["A"], d["A_stalign"], rtol=1e-6, atol=1e-6)
    assert np.abs(out["v"] - v).max() < 1e-5 * np.abs(v).max()  # the core's FFT is float32
    assert np.allclose(out["WM"], d["WM_stalign"], atol=1e-5)


class _TensorLike:
    """Stands in for a torch tensor (detach / cpu / numpy), without torch."""

    def __init__(self, a):
        self.a = np.asarray(a)

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self.a


def test_stalign_helpers_against_numpy():
    rng = np.random.default_rng(7)
    A = np.array([[1.05, -0.2, 3.0], [0.15, 0.9, -2.0], [0, 0, 1]])
    pI = rng.uniform(0, 100, (6, 2))
    pJ = pI @ A[:2, :2].T + A[:2, 2]
    L, T = STalign.L_T_from_points(_TensorLike(pI), pJ)
    assert np.allclose(STalign.to_A(L, T), A)
    L2, T2 = STalign.L_T_from_points(pI[:2], pJ[:2])
    assert np.array_equal(L2, np.eye(2)) and np.allclose(T2, pJ[:2].mean(0) - pI[:2].mean(0))
    with pytest.raises(ValueError, match="collinear"):
        STalign.L_T_from_points(np.c_[np.arange(4.0), np.arange(4.0)], pJ[:4])
    assert STalign.extent_from_x([np.arange(3) * 2.0 + 1, np.arange(4) * 0.5]) == (-0.25, 1.75, 6.0, 0.0)
    tre = STalign.calculate_tre(pI, pJ)
    d = np.linalg.norm(pI - pJ, axis=1)
    assert tre == pytest.approx((d.mean(), d.std()))
    assert np.allclose(STalign.normalize(np.array([2.0, 4.0, 3.0]), 1, 3), [1.0, 3.0, 2.0])
    X, Y, W, fig = STalign.rasterize(pI[:, 1], pI[:, 0], dx=5.0, blur=[2.0, 1.0])
    assert W.shape == (2, len(Y), len(X)) and fig is not None
    assert np.allclose(W.sum(axis=(1, 2)), len(pI))  # each cell adds its unit weight


def test_affine_image_transform_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(8)
    I = ndimage.gaussian_filter(rng.random((2, 40, 50)), (0, 2, 2))
    xI = [np.arange(40) * 1.0, np.arange(50) * 1.0]
    xJ = [np.arange(30) * 1.0 + 4, np.arange(35) * 1.0 + 6]
    A = np.array([[0.95, 0.1, 2.0], [-0.08, 1.05, -3.0], [0, 0, 1]])
    out = STalign.transform_image_source_with_A(_TensorLike(A), xI, I, xJ)
    Ai = np.linalg.inv(A)
    grid = np.stack(np.meshgrid(*xJ, indexing="ij"))
    src = np.tensordot(Ai[:2, :2], grid, 1) + Ai[:2, 2][:, None, None]
    for c in range(2):
        ref = ndimage.map_coordinates(I[c], src, order=1, mode="nearest")
        assert np.allclose(out[c], ref, atol=1e-10)


def test_result_as_displacement_field_warps_like_transform(pair):
    import spectralign_fast as sf

    result = LDDMM(threads=2, max_iterations=40, levels=1).fit(pair.xI, pair.I, pair.xJ, pair.J)
    field = result.displacement_field()
    assert field.field.shape == pair.J.shape[1:] + (2,)
    moved = sf.warp(pair.I[0].astype(np.float32), field, order=1, mode="nearest")
    ref = result.transform(pair.I)[0]
    assert np.allclose(moved, ref, atol=1e-4)
    back = result.inverse().displacement_field()
    assert isinstance(back, sf.DisplacementField)


@pytest.mark.slow
def test_volume_to_volume_3d_within_a_fifth_of_a_voxel():
    """3-D: the MNI152 template at 4 mm against itself moved by a known affine (4 degrees,
    3 % zoom, a shift) and a smooth bump of 5 mm; no landmarks, identity start."""
    pytest.importorskip("nilearn")
    from scipy import ndimage

    atlas = synthetic.atlas_slice(resolution=4)
    J, xJ, res = atlas.I, atlas.xI, 4.0
    shape = J.shape[1:]
    ang = np.deg2rad(4.0)
    R = np.array([[1, 0, 0], [0, np.cos(ang), -np.sin(ang)], [0, np.sin(ang), np.cos(ang)]])
    c = np.array([(n - 1) * res / 2 for n in shape])

    def truth(p):  # source (physical, mm) -> target
        bump = 5.0 * np.exp(-np.sum((p - c) ** 2, 1) / (2 * 30.0 ** 2))
        return (p - c) @ R.T * 1.03 + c + np.array([2.0, -3.0, 1.5]) + bump[:, None] * np.array([0.5, 0.7, -0.5])

    grid = np.stack(np.meshgrid(*xJ, indexing="ij"), -1).reshape(-1, 3)
    I = ndimage.map_coordinates(J[0], (truth(grid) / res).T, order=3, mode="nearest").reshape((1,) + shape)
    result = LDDMM(threads=2, max_iterations=200).fit(xJ, I, xJ, J)
    inside = ndimage.binary_erosion(J[0] > 0.2, iterations=2).reshape(-1)
    pts = grid[inside][::7]
    before = _rms(pts, truth(pts))
    err = np.linalg.norm(result.transform_points(pts) - truth(pts), axis=1)
    assert before > 4.0
    assert np.sqrt(np.mean(err ** 2)) < 0.2 * res and np.percentile(err, 95) < 0.3 * res
