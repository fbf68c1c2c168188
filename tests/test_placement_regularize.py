"""Regularised affine placement and iterative refinement (issue 19), against truth and a dense
NumPy oracle (tests/placement_oracle.py)."""
from __future__ import annotations

import numpy as np
import pytest

import spectralign_fast as sf
from spectralign_fast import Placement, _core
from spectralign_fast.place.regularize import (DEFAULT_REGULARIZE, MONTAGE_PRIOR, PRIOR_WEIGHTS, central_tile,
                                               prior_transforms, similarity_test)
from spectralign_fast.synthetic import grid_tiles, photograph, registration_error

from placement_oracle import dense_regularized_affine

TILE, PITCH = 1000.0, 900.0


def grid(rows, cols, *, noise, seed, rot=1e-3, scale=0.0, axis_scale=0.0, per_edge=12):
    """Tiles of TILE px on a PITCH grid, each rotated (sd ``rot`` rad), scaled (sd ``scale``)
    and stretched per axis (sd ``axis_scale``); ``per_edge`` matches in every overlap.
    Returns (truth (n, 2, 3), t1, t2, P1, P2), tiles numbered row by row."""
    rng = np.random.default_rng(seed)
    n = rows * cols
    th = rng.normal(0, rot, n)
    s = 1 + rng.normal(0, scale, n)
    sx, sy = 1 + rng.normal(0, axis_scale, (2, n))
    R = np.stack([np.stack([np.cos(th), -np.sin(th)], 1), np.stack([np.sin(th), np.cos(th)], 1)], 1)
    truth = np.zeros((n, 2, 3))
    truth[:, :, :2] = R * s[:, None, None] * np.stack([sx, sy], 1)[:, None, :]
    truth[:, 0, 2] = np.arange(n) % cols * PITCH + rng.normal(0, 5, n)
    truth[:, 1, 2] = np.arange(n) // cols * PITCH + rng.normal(0, 5, n)
    t1, t2, P1 = [], [], []
    for t in range(n):
        for other, horizontal in ((t + 1, True), (t + cols, False)):
            if (horizontal and t % cols == cols - 1) or other >= n:
                continue
            along = rng.uniform(50, TILE - 50, per_edge)
            across = rng.uniform(PITCH + 10, TILE - 10, per_edge)
            P1.append(np.stack([across, along] if horizontal else [along, across], 1))
            t1 += [t] * per_edge
            t2 += [other] * per_edge
    t1, t2, P1 = np.array(t1), np.array(t2), np.concatenate(P1)
    q = np.einsum("mij,mj->mi", truth[t1, :, :2], P1) + truth[t1, :, 2]
    P2 = np.linalg.solve(truth[t2, :, :2], (q - truth[t2, :, 2])[:, :, None])[:, :, 0]
    return truth, t1, t2, P1, P2 + rng.normal(0, noise, P2.shape)


def solve(t1, t2, P1, P2, **kw):
    plc = Placement()
    plc.addmatches(t1, t2, P1, P2)
    res = plc.affine(**kw)
    return plc, np.array([np.asarray(res[i]) for i in range(len(res))])


def mean_gauge(T):
    out = np.einsum("ij,njk->nik", np.linalg.inv(T[:, :, :2].mean(0)), T)
    out[:, :, 2] -= out[:, :, 2].mean(0)
    return out


def corner_rms(T, truth):
    """RMS over tiles and their four corners of the distance to the truth (both in the mean gauge)."""
    c = np.array([[0, 0, 1], [TILE, 0, 1], [0, TILE, 1], [TILE, TILE, 1.0]])
    d = np.einsum("nij,kj->nki", mean_gauge(T) - mean_gauge(truth), c)
    return float(np.sqrt(np.mean(np.sum(d ** 2, -1))))


@pytest.mark.parametrize("fix", [None, 5])
def test_regularized_matches_dense_oracle(fix):
    truth, t1, t2, P1, P2 = grid(3, 4, noise=0.3, seed=1, axis_scale=0.003)
    w = np.random.default_rng(2).uniform(0.5, 2.0, len(t1))
    plc = Placement()
    plc.addmatches(t1, t2, P1, P2, w)
    sim = plc.similarity(central_tile(12, t1, t2))  # the prior: the similarity fixed at the central tile
    res = plc.affine(fix, regularize=0.05)
    assert plc.solve_info["prior"] == "similarity" and plc.solve_info["regularize"] == 0.05
    ref = dense_regularized_affine(list(zip(t1, t2, P1, P2, w)), sim, 0.05, fix)
    for t in ref:
        np.testing.assert_allclose(np.asarray(res[t]), ref[t], atol=1e-7, rtol=0)
    if fix is not None:
        np.testing.assert_array_equal(np.asarray(res[fix]), [[1, 0, 0], [0, 1, 0]])


def test_zero_is_plain_affine():
    _, t1, t2, P1, P2 = grid(3, 3, noise=0.2, seed=3)
    _, plain = solve(t1, t2, P1, P2)
    plc, zero = solve(t1, t2, P1, P2, regularize=0)
    np.testing.assert_array_equal(zero, plain)
    assert plc.solve_info["prior"] is None


def test_follows_true_scale_differences():
    """0.5 % scale differences per tile, noise-free: the prior (a similarity) is the truth, and so
    is the regularised affine, however strong the pull."""
    truth, t1, t2, P1, P2 = grid(4, 5, noise=0.0, seed=4, scale=0.005)
    for lam in (1e-2, 1.0, 100.0):
        _, T = solve(t1, t2, P1, P2, regularize=lam)
        np.testing.assert_allclose(mean_gauge(T), mean_gauge(truth), atol=1e-6, rtol=0)
        scale = np.sqrt(np.linalg.det(T[:, :, :2]) / np.linalg.det(truth[:, :, :2]))
        assert np.ptp(scale) < 1e-9


def test_does_not_drift_on_a_long_grid():
    """A 2 x 40 strip with 0.2 px noise: the plain affine bends far from the truth, the
    regularised one stays with the similarity placement."""
    truth, t1, t2, P1, P2 = grid(2, 40, noise=0.2, seed=5, per_edge=8)
    _, plain = solve(t1, t2, P1, P2)
    _, reg = solve(t1, t2, P1, P2, regularize=DEFAULT_REGULARIZE, prior=MONTAGE_PRIOR)  # montage's default
    plc = Placement()
    plc.addmatches(t1, t2, P1, P2)
    sim = plc.similarity()
    e_plain, e_reg = corner_rms(plain, truth), corner_rms(reg, truth)
    e_sim = corner_rms(np.array([np.asarray(sim[i]) for i in range(80)]), truth)
    assert e_plain > 5 * e_reg, (e_plain, e_reg)
    assert e_reg < 1.5 * e_sim, (e_reg, e_sim)


@pytest.mark.parametrize("bad", [-1e-3, float("nan"), float("inf"), -np.inf])
def test_bad_regularize(bad):
    _, t1, t2, P1, P2 = grid(2, 2, noise=0.0, seed=6)
    plc = Placement()
    plc.addmatches(t1, t2, P1, P2)
    with pytest.raises(ValueError, match="regularize"):
        plc.affine(regularize=bad)
    with pytest.raises(TypeError, match="regularize"):
        plc.affine(regularize="0.1")
    with pytest.raises(ValueError, match="connected"):
        plc.affine(regularize=0.1, components="separate")
    with pytest.raises(TypeError):
        plc.affine(None, None, "error", "auto", 1e-12, None, 0.1)  # keyword-only


def test_core_checks_the_prior():
    _, t1, t2, P1, P2 = grid(2, 2, noise=0.0, seed=6)
    w = np.ones(len(t1))
    with pytest.raises(ValueError, match="prior"):
        _core.place.solve(4, t1, t2, P1, P2, w, affine=True, regularize=0.1)
    with pytest.raises(ValueError, match="shape"):
        _core.place.solve(4, t1, t2, P1, P2, w, affine=True, regularize=0.1, prior=np.zeros((3, 2, 3)))
    bad = np.tile(np.eye(2, 3), (4, 1, 1))
    bad[2, 0, 2] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        _core.place.solve(4, t1, t2, P1, P2, w, affine=True, regularize=0.1, prior=bad)
    with pytest.raises(ValueError, match="affine"):
        _core.place.solve(4, t1, t2, P1, P2, w, affine=False, regularize=0.1, prior=bad)


@pytest.mark.parametrize("rows, cols, centre", [(5, 5, 12), (3, 7, 10), (1, 4, 1)])
def test_central_tile(rows, cols, centre):
    _, t1, t2, _, _ = grid(rows, cols, noise=0.0, seed=9, per_edge=2)
    assert central_tile(rows * cols, t1, t2) == centre


def test_prior_falls_back_to_rigid():
    """One matched point per tile pair: no similarity, so the prior is the rigid placement."""
    t1, t2 = np.array([0, 1]), np.array([1, 2])
    P1, P2 = np.array([[900.0, 10.0], [950.0, 500.0]]), np.array([[0.0, 12.0], [50.0, 497.0]])
    prior, model = prior_transforms(3, t1, t2, P1, P2, np.ones(2))
    assert model == "rigid"
    np.testing.assert_allclose(prior[:, :, :2], np.tile(np.eye(2), (3, 1, 1)))
    np.testing.assert_allclose(prior[1, :, 2] - prior[0, :, 2], [900.0, -2.0])


# -- iterative refinement -------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["rigid", "similarity", "affine", "regularized"])
def test_noise_free_grid_is_recovered_to_rounding(mode):
    """A 100 x 100 noise-free grid, its truth in the model (rigid: translations; similarity and
    regularised affine: rotations and scales, the prior then being the truth; affine: each
    entry of A off the identity by 2e-3): with iterative refinement every model is within
    1e-6 px of the truth at the tile corners (the affine solve alone: about 1e-4 px); the
    regularised affine within 1e-5 px, its prior (the similarity) being solved unrefined."""
    rng = np.random.default_rng(7)
    truth, t1, t2, P1, P2 = grid(100, 100, noise=0.0, seed=7, rot=0.0 if mode == "rigid" else 1e-3,
                                 scale=0.0 if mode == "rigid" else 2e-3)
    if mode == "affine":
        truth[:, :, :2] += rng.normal(0, 2e-3, (len(truth), 2, 2))
        q = np.einsum("mij,mj->mi", truth[t1, :, :2], P1) + truth[t1, :, 2]
        P2 = np.linalg.solve(truth[t2, :, :2], (q - truth[t2, :, 2])[:, :, None])[:, :, 0]
    plc = Placement()
    plc.addmatches(t1, t2, P1, P2)
    n = len(truth)
    if mode == "rigid":
        res = plc.rigid(fix=0)
        sol = np.array([res[i] for i in range(n)])
        err = np.abs(sol - (truth[:, :, 2] - truth[0, :, 2])).max()
    else:
        if mode == "similarity":
            res = plc.similarity()
            ref = np.einsum("ij,njk->nik", np.linalg.inv(truth[0, :, :2]), truth)
            ref[:, :, 2] -= ref[0, :, 2]
        else:
            res = plc.affine(regularize=1.0 if mode == "regularized" else 0.0)
            ref = mean_gauge(truth)
        sol = np.array([np.asarray(res[i]) for i in range(n)])
        c = np.array([[0, 0, 1], [TILE, 0, 1], [0, TILE, 1], [TILE, TILE, 1.0]])
        err = np.abs(np.einsum("nij,kj->nki", sol - ref, c)).max()
    assert err < (1e-5 if mode == "regularized" else 1e-6), err
    info = plc.solve_info["refinement"]
    assert info["steps"] >= 1 and info["residual_final"] < info["residual_initial"]


def test_refinement_improves_the_raw_affine_solve():
    truth, t1, t2, P1, P2 = grid(60, 60, noise=0.0, seed=8, scale=2e-3)
    w = np.ones(len(t1))
    raw = _core.place.solve(len(truth), t1, t2, P1, P2, w, affine=True, refine=0)
    refined = _core.place.solve(len(truth), t1, t2, P1, P2, w, affine=True)
    assert raw.refinement.steps == 0 and refined.refinement.steps >= 1
    err = [np.abs(r.params - mean_gauge(truth)).max() for r in (raw, refined)]
    assert err[1] < 1e-9 and err[1] < err[0], err
    with pytest.raises(ValueError, match="refine"):
        _core.place.solve(len(truth), t1, t2, P1, P2, w, affine=True, refine=-1)


# -- workflows ------------------------------------------------------------------------------

priors = []


def _spy(monkeypatch):
    seen = []
    priors.clear()
    original = Placement.affine

    def affine(self, *args, **kw):
        seen.append(kw.get("regularize"))
        priors.append(kw.get("prior"))
        return original(self, *args, **kw)

    monkeypatch.setattr(Placement, "affine", affine)
    return seen


def test_montage_passes_regularize(monkeypatch):
    tiles, _ = grid_tiles(photograph("retina"), 2, 2, overlap=0.2, jitter=10, seed=3)
    seen = _spy(monkeypatch)
    sf.montage(tiles, overlap=0.2, progress=False, render=False)
    sf.montage(tiles, overlap=0.2, regularize=0.5, progress=False, render=False)
    assert seen == [DEFAULT_REGULARIZE] * 2 + [0.5] * 2  # two passes each
    assert priors == [MONTAGE_PRIOR] * 4
    with pytest.raises(ValueError, match="regularize"):
        sf.montage(tiles, overlap=0.2, regularize=-1, progress=False, render=False)


def test_montage_passes_prior(monkeypatch):
    """montage(prior=) reaches both passes' placement; the default is MONTAGE_PRIOR; a wrong name
    fails before any matching, with the names to choose from."""
    tiles, truth = grid_tiles(photograph("retina"), 2, 2, overlap=0.2, jitter=10, seed=3)
    seen = _spy(monkeypatch)
    res = sf.montage(tiles, overlap=0.2, regularize=1e-3, prior="rigid-centres", progress=False, render=False)
    assert seen == [1e-3] * 2 and priors == ["rigid-centres"] * 2
    assert registration_error(res.transforms, truth, res.tile_sizes)["rms"] < 0.5
    with pytest.raises(ValueError, match="rigid-centres"):
        sf.montage(tiles, overlap=0.2, prior="rigid_centres", progress=False, render=False)


def test_align_stack_passes_regularize(monkeypatch):
    img = photograph("retina")[100:500, 100:500].astype(np.float32)
    seen = _spy(monkeypatch)
    sf.align_stack([img, np.roll(img, (3, -2), (0, 1))], regularize=0.25, progress=False, render=False)
    assert seen and set(seen) == {0.25}
    with pytest.raises(ValueError, match="regularize"):
        sf.align_stack([img, img], regularize=float("nan"), progress=False, render=False)


def test_similarity_solvers_agree():
    """The complex Hermitian similarity system gives one answer with CHOLMOD (when built) and
    with Eigen's simplicial LDL^T; 'cg' is refused."""
    _, t1, t2, P1, P2 = grid(6, 7, noise=0.3, seed=10, scale=2e-3)
    w = np.random.default_rng(11).uniform(0.5, 2.0, len(t1))
    a = _core.place.solve_similarity(42, t1, t2, P1, P2, w, fix=3, solver="ldlt", reference=17)
    b = _core.place.solve_similarity(42, t1, t2, P1, P2, w, fix=3, solver="cholesky", reference=17)
    assert a.solver == "ldlt" and b.solver == ("cholmod" if sf.config()["cholmod"] else "ldlt")
    np.testing.assert_allclose(a.params, b.params, atol=1e-9, rtol=0)
    np.testing.assert_array_equal(a.params[3], [[1, 0, 0], [0, 1, 0]])
    with pytest.raises(ValueError, match="cg"):
        _core.place.solve_similarity(42, t1, t2, P1, P2, w, fix=3, solver="cg")


def test_rigid_prior_holds_a_long_chain_at_scale_one():
    """A 2 x 40 strip of tiles, each scaled by 1 % (sd), few matches per edge: a plain affine
    placement lets the scale wander along the chain; pulled toward the rigid placement (the
    linear part toward the identity) it stays near 1, and rotations are pulled too."""
    truth, t1, t2, P1, P2 = grid(2, 40, noise=0.2, seed=5, rot=0.0, scale=0.01, per_edge=6)
    _, plain = solve(t1, t2, P1, P2, fix=0)
    _, held = solve(t1, t2, P1, P2, fix=0, regularize=0.1, prior="rigid")
    scale = lambda T: np.sqrt(np.abs(np.linalg.det(T[:, :, :2])))  # noqa: E731
    assert np.abs(scale(held) - 1).max() < 0.03
    assert np.abs(scale(plain) - 1).max() > 2 * np.abs(scale(held) - 1).max()
    with pytest.raises(ValueError, match="prior must be one of.*rigid-centres"):
        solve(t1, t2, P1, P2, regularize=0.1, prior="euclidean")


def anisotropy(T):
    """Per tile, the part of the linear map (mean gauge) that no similarity has: ((a00 - a11) / 2,
    (a01 + a10) / 2), the stretch along x versus y and the shear."""
    A = mean_gauge(T)[:, :, :2]
    return np.stack([(A[:, 0, 0] - A[:, 1, 1]) / 2, (A[:, 0, 1] + A[:, 1, 0]) / 2], 1)


def centre_rms(T, truth):
    """RMS over tiles of the distance of the tile centre from the truth (both in the mean gauge)."""
    d = np.einsum("nij,j->ni", mean_gauge(T) - mean_gauge(truth), np.array([TILE / 2, TILE / 2, 1.0]))
    return float(np.sqrt(np.mean(np.sum(d ** 2, 1))))


@pytest.mark.parametrize("centre, linear", [(1.0, 0.3), (0.2, 1.0), (1.0, 0.0)])
def test_prior_weights_match_dense_oracle(centre, linear):
    """The core's prior_centre / prior_linear weight the two kinds of prior rows as the dense
    oracle does (linear = 0 on a 3 x 4 grid: the centres alone hold it)."""
    truth, t1, t2, P1, P2 = grid(3, 4, noise=0.3, seed=1, axis_scale=0.003)
    w = np.random.default_rng(2).uniform(0.5, 2.0, len(t1))
    prior, _ = prior_transforms(12, t1, t2, P1, P2, w, kind="rigid")
    out = _core.place.solve(12, t1, t2, P1, P2, w, affine=True, regularize=0.05, prior=prior,
                            prior_centre=centre, prior_linear=linear)
    ref = dense_regularized_affine(list(zip(t1, t2, P1, P2, w)), dict(enumerate(prior)), 0.05,
                                   centre=centre, linear=linear)
    for t in ref:
        np.testing.assert_allclose(out.params[t], ref[t], atol=1e-7, rtol=0)
    with pytest.raises(ValueError, match="prior_centre"):
        _core.place.solve(12, t1, t2, P1, P2, w, affine=True, regularize=0.05, prior=prior, prior_centre=-1.0)


def test_rigid_centres_is_the_weighted_rigid_prior():
    """prior="rigid-centres": the rigid placement's prior with the linear part's pull 1e-6 of the
    centre's (the dense oracle's rows), and solve_info says so."""
    _, t1, t2, P1, P2 = grid(3, 4, noise=0.3, seed=8, axis_scale=0.003)
    plc, T = solve(t1, t2, P1, P2, regularize=0.1, prior="rigid-centres")
    assert plc.solve_info["prior"] == "rigid-centres" and plc.solve_info["regularize_used"] == 0.1
    prior, _ = prior_transforms(12, t1, t2, P1, P2, np.ones(len(t1)), kind="rigid")
    ref = dense_regularized_affine(list(zip(t1, t2, P1, P2, np.ones(len(t1)))), dict(enumerate(prior)), 0.1,
                                   centre=PRIOR_WEIGHTS["rigid-centres"][0], linear=PRIOR_WEIGHTS["rigid-centres"][1])
    for t in ref:
        np.testing.assert_allclose(T[t], ref[t], atol=1e-6, rtol=0)


def test_rigid_centres_follow_true_stretch_without_drift():
    """40 x 40 tiles, each rotated (sd 1e-3 rad) and stretched per axis (sd 0.5 %), 0.2 px noise.
    The plain affine drifts (15 px RMS at the tile centres), the similarity placement and the
    default similarity prior cannot follow the stretch; pulling only the centres toward the rigid
    placement's keeps them within 4 px and recovers the per-tile stretch within 30 %."""
    truth, t1, t2, P1, P2 = grid(40, 40, noise=0.2, seed=21, axis_scale=0.005, per_edge=8)
    at = anisotropy(truth)

    def stretch_error(T):
        return float(np.sqrt(np.mean(np.sum((anisotropy(T) - at) ** 2, 1)) / np.mean(np.sum(at ** 2, 1))))

    _, plain = solve(t1, t2, P1, P2)
    _, sim_prior = solve(t1, t2, P1, P2, regularize=1e-2)  # montage's default before
    _, centres = solve(t1, t2, P1, P2, regularize=1e-3, prior="rigid-centres")
    assert centre_rms(centres, truth) < 4.0
    assert centre_rms(plain, truth) > 3 * centre_rms(centres, truth)
    assert centre_rms(sim_prior, truth) > 2 * centre_rms(centres, truth)
    assert stretch_error(centres) < 0.3
    assert stretch_error(sim_prior) > 0.45 and stretch_error(plain) > 0.35


def test_rigid_centres_on_a_single_row():
    """Tile centres all on one line: the 1e-6 share of the linear pull keeps the system definite."""
    truth, t1, t2, P1, P2 = grid(1, 8, noise=0.0, seed=9, rot=0.0)
    _, T = solve(t1, t2, P1, P2, regularize=0.1, prior="rigid-centres")
    np.testing.assert_allclose(mean_gauge(T), mean_gauge(truth), atol=1e-4, rtol=0)


def test_similarity_tested_switches_by_the_matches():
    """prior="similarity-tested": where the tiles only rotate and scale (F about 1) it is the
    similarity placement's equal; where they stretch per axis (F >> 1) the pull all but vanishes,
    whatever the weight, and the stretch is followed (unlike the default similarity prior)."""
    truth, t1, t2, P1, P2 = grid(8, 8, noise=0.2, seed=12, rot=1e-3, scale=0.005, per_edge=12)
    plc, tested = solve(t1, t2, P1, P2, regularize=10.0, prior="similarity-tested")
    f = plc.solve_info["similarity_test"]
    assert 0.3 < f < 2.0 and plc.solve_info["regularize_used"] == 10.0
    sim = plc.similarity()
    e_sim = corner_rms(np.array([np.asarray(sim[i]) for i in range(64)]), truth)
    _, plain = solve(t1, t2, P1, P2)
    assert corner_rms(tested, truth) < 1.02 * e_sim < corner_rms(plain, truth) / 3

    truth, t1, t2, P1, P2 = grid(8, 8, noise=0.2, seed=13, rot=1e-3, axis_scale=0.005, per_edge=12)
    plc, tested = solve(t1, t2, P1, P2, regularize=10.0, prior="similarity-tested")
    assert plc.solve_info["similarity_test"] > 5 and plc.solve_info["regularize_used"] < 1e-3
    _, sim_prior = solve(t1, t2, P1, P2, regularize=1e-2)
    at = anisotropy(truth)

    def stretch_error(T):
        return float(np.sqrt(np.mean(np.sum((anisotropy(T) - at) ** 2, 1)) / np.mean(np.sum(at ** 2, 1))))

    assert stretch_error(tested) < 0.35 and stretch_error(sim_prior) > 0.45
    assert corner_rms(tested, truth) < corner_rms(sim_prior, truth)


def test_similarity_test_statistic():
    """Noise-free similarities: 0 (below the noise floor); noise-free stretch: huge; too few
    matches per pair: 0."""
    _, t1, t2, P1, P2 = grid(3, 3, noise=0.0, seed=14, scale=0.005)
    w = np.ones(len(t1))
    assert similarity_test(9, t1, t2, P1, P2, w) < 1e-3
    _, t1, t2, P1, P2 = grid(3, 3, noise=0.0, seed=14, axis_scale=0.005)
    assert similarity_test(9, t1, t2, P1, P2, w) > 1e4
    _, t1, t2, P1, P2 = grid(3, 3, noise=0.2, seed=14, per_edge=3)
    assert similarity_test(9, t1, t2, P1, P2, np.ones(len(t1))) == 0.0
