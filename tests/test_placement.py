"""Tests of Placement (issue 3): accuracy, oracle agreement, robustness, bad input."""
from __future__ import annotations

import numpy as np
import pytest

import spectralign_fast as sf
from spectralign_fast import Affine, Placement

from placement_oracle import dense_affine, dense_rigid, dense_similarity

PITCH = 900.0


def grid(rows, cols, *, affine, noise=0.0, per_edge=8, seed=0, ids="tuple"):
    """Synthetic tile grid. Returns (truth {id: 2x3}, matches [(t1, t2, P1, P2)] per edge)."""
    rng = np.random.default_rng(seed)
    names = {}
    truth = {}
    for r in range(rows):
        for c in range(cols):
            t = (r, c) if ids == "tuple" else (r * cols + c if ids == "int" else f"t{r}-{c}")
            names[r, c] = t
            T = np.array([[1.0, 0, c * PITCH + rng.normal(0, 5)], [0, 1.0, r * PITCH + rng.normal(0, 5)]])
            if affine:
                T[:, :2] += rng.normal(0, 2e-3, (2, 2))
            truth[t] = T
    edges = []
    for r in range(rows):
        for c in range(cols):
            for dr, dc in ((0, 1), (1, 0)):
                if r + dr >= rows or c + dc >= cols:
                    continue
                a, b = names[r, c], names[r + dr, c + dc]
                along = rng.uniform(50, 950, per_edge)
                across = rng.uniform(PITCH + 10, 990, per_edge)
                P1 = np.stack([across, along] if dc else [along, across], axis=1)
                q = P1 @ truth[a][:, :2].T + truth[a][:, 2]
                P2 = np.linalg.solve(truth[b][:, :2], (q - truth[b][:, 2]).T).T
                P2 = P2 + rng.normal(0, noise, P2.shape) if noise else P2
                edges.append((a, b, P1, P2))
    return truth, edges


def build(edges, weights=None):
    plc = Placement()
    for i, (a, b, P1, P2) in enumerate(edges):
        plc.addmatches(a, b, P1, P2, None if weights is None else weights[i])
    return plc


def gauge(truth, affine):
    """Truth in the mean gauge: mean X = 0 (affine: mean A = I)."""
    keys = list(truth)
    T = np.array([truth[k] for k in keys])
    if affine:
        T = np.einsum("ij,njk->nik", np.linalg.inv(T[:, :, :2].mean(0)), T)
    T[:, :, 2] -= T[:, :, 2].mean(0)
    return {k: (T[i] if affine else T[i, :, 2]) for i, k in enumerate(keys)}


def as_list(edges):
    return [(a, b, p, q, 1.0) for a, b, P1, P2 in edges for p, q in zip(P1, P2)]


# -- noise-free recovery -----------------------------------------------------------
@pytest.mark.parametrize("solver", ["cholesky", "ldlt", "cg"])
def test_rigid_noise_free_recovers_truth(solver):
    truth, edges = grid(5, 6, affine=False)
    res = build(edges).rigid(solver=solver)
    ref = gauge(truth, False)
    assert set(res) == set(truth)
    assert list(res)[:3] == [(0, 0), (0, 1), (1, 0)]  # order of first appearance, as spectralign
    for t in truth:
        assert isinstance(res[t], tuple) and len(res[t]) == 2
        np.testing.assert_allclose(res[t], ref[t], atol=1e-6, rtol=0)


@pytest.mark.parametrize("solver", ["cholesky", "ldlt", "cg"])
def test_affine_noise_free_recovers_truth(solver):
    truth, edges = grid(5, 6, affine=True)
    res = build(edges).affine(solver=solver)
    ref = gauge(truth, True)
    for t in truth:
        assert isinstance(res[t], Affine)
        np.testing.assert_allclose(np.asarray(res[t]), ref[t], atol=1e-6, rtol=0)
    A = np.array([res[t] for t in res])
    np.testing.assert_allclose(A[:, :, :2].mean(0), np.eye(2), atol=1e-12)
    np.testing.assert_allclose(A[:, :, 2].mean(0), 0, atol=1e-9)


def test_fix_gauge_noise_free():
    truth, edges = grid(4, 4, affine=True)
    fix = (1, 2)
    res = build(edges).affine(fix)
    np.testing.assert_allclose(np.asarray(res[fix]), np.asarray(Affine()), atol=1e-12)
    g = np.linalg.inv(np.vstack([truth[fix], [0, 0, 1]]))
    for t in truth:
        expect = (g @ np.vstack([truth[t], [0, 0, 1]]))[:2]
        np.testing.assert_allclose(np.asarray(res[t]), expect, atol=1e-6, rtol=0)
    truth, edges = grid(4, 4, affine=False)
    res = build(edges).rigid(fix)
    assert res[fix] == (0.0, 0.0)
    for t in truth:
        np.testing.assert_allclose(res[t], truth[t][:, 2] - truth[fix][:, 2], atol=1e-6, rtol=0)


def test_affine_maps_tile_to_model_space():
    truth, edges = grid(3, 3, affine=True)
    plc = build(edges)
    res = plc.affine()
    a, b, P1, P2 = edges[0]
    np.testing.assert_allclose(res[a] * P1.T, res[b] * P2.T, atol=1e-6)


# -- dense oracle (spectralign's formulation) --------------------------------------
@pytest.mark.parametrize("fix", [None, (1, 0)])
@pytest.mark.parametrize("shape", [(2, 2), (3, 3), (3, 4)])
def test_rigid_matches_dense_oracle(shape, fix):
    truth, edges = grid(*shape, affine=False, noise=0.5, per_edge=5, seed=1)
    rng = np.random.default_rng(2)
    w = [rng.uniform(0.5, 2.0, len(e[2])) for e in edges]
    plc = build(edges, w)
    res = plc.rigid(fix)
    ref = dense_rigid([(a, b, p, q, ww) for (a, b, P1, P2), W in zip(edges, w)
                       for p, q, ww in zip(P1, P2, W)], fix)
    assert list(res) == list(ref)
    for t in ref:
        np.testing.assert_allclose(res[t], ref[t], atol=1e-6, rtol=0)


@pytest.mark.parametrize("fix", [None, (0, 1)])
@pytest.mark.parametrize("shape", [(2, 2), (3, 3), (2, 4)])
def test_affine_matches_dense_oracle(shape, fix):
    truth, edges = grid(*shape, affine=True, noise=0.5, per_edge=5, seed=3)
    rng = np.random.default_rng(4)
    w = [rng.uniform(0.5, 2.0, len(e[2])) for e in edges]
    res = build(edges, w).affine(fix)
    ref = dense_affine([(a, b, p, q, ww) for (a, b, P1, P2), W in zip(edges, w)
                        for p, q, ww in zip(P1, P2, W)], fix)
    for t in ref:
        np.testing.assert_allclose(np.asarray(res[t]), ref[t], atol=1e-6, rtol=0)


def test_addmatch_equals_addmatches_and_spectralign_example():
    _, edges = grid(2, 3, affine=False, noise=0.3, per_edge=3)
    one = Placement()
    for a, b, P1, P2 in edges:
        for p, q in zip(P1, P2):
            one.addmatch(a, b, tuple(p), list(q))
    many = build(edges)
    assert len(one) == len(many) == 3 * len(edges)
    r1, r2 = one.rigid(), many.rigid()
    for t in r1:
        np.testing.assert_allclose(r1[t], r2[t], atol=1e-9)
    plc = Placement()
    plc.addmatch("a", "b", (900.0, 300.0), (100.0, 300.0))
    res = plc.rigid()
    np.testing.assert_allclose(res["a"], (-400.0, 0.0), atol=1e-9)
    np.testing.assert_allclose(res["b"], (400.0, 0.0), atol=1e-9)
    assert plc.matches[0].tile1 == "a" and plc.matches[0].p2 == (100.0, 300.0)


def test_per_point_id_arrays():
    truth, edges = grid(3, 3, affine=False, ids="int", noise=0.2)
    t1 = np.concatenate([np.full(len(e[2]), e[0]) for e in edges])
    t2 = np.concatenate([np.full(len(e[2]), e[1]) for e in edges])
    P1 = np.concatenate([e[2] for e in edges])
    P2 = np.concatenate([e[3] for e in edges])
    plc = Placement()
    plc.addmatches(t1, t2, P1, P2)
    ref = build(edges).rigid()
    res = plc.rigid()
    assert set(res) == set(ref) and all(type(k) is int for k in res)
    for t in ref:
        np.testing.assert_allclose(res[t], ref[t], atol=1e-9)
    s = Placement()
    s.addmatches(np.array([f"t{i}" for i in t1]), np.array([f"t{i}" for i in t2]), P1, P2)
    res_s = s.rigid()
    for t in ref:
        np.testing.assert_allclose(res_s[f"t{t}"], ref[t], atol=1e-9)


# -- solvers --------------------------------------------------------------------------
@pytest.mark.parametrize("affine", [False, True])
def test_cholesky_and_cg_agree(affine):
    _, edges = grid(6, 5, affine=affine, noise=0.2, seed=7)
    plc = build(edges)
    f = plc.affine if affine else plc.rigid
    a, b = f(solver="cholesky"), f(solver="cg")
    assert plc.solve_info["solver"] == "cg" and plc.solve_info["cg_iterations"] > 0
    for t in a:
        np.testing.assert_allclose(np.asarray(a[t]), np.asarray(b[t]), atol=1e-6, rtol=0)
    f(solver="auto")
    assert plc.solve_info["solver"] == ("cholmod" if sf.config()["cholmod"] else "ldlt")


@pytest.mark.parametrize("affine", [False, True])
def test_cholmod_and_simplicial_ldlt_agree(affine):
    if not sf.config()["cholmod"]:
        pytest.skip("this build has no CHOLMOD (install libsuitesparse-dev and rebuild)")
    _, edges = grid(7, 6, affine=affine, noise=0.2, seed=3)
    plc = build(edges)
    f = plc.affine if affine else plc.rigid
    a = f(solver="cholesky")
    assert plc.solve_info["solver"] == "cholmod" and plc.solve_info["pivot_ratio"] > 0
    b = f(solver="ldlt")
    assert plc.solve_info["solver"] == "ldlt"
    for t in a:
        np.testing.assert_allclose(np.asarray(a[t]), np.asarray(b[t]), atol=1e-8, rtol=0)


# -- outliers -------------------------------------------------------------------------
def _with_outliers(edges, frac, seed):
    rng = np.random.default_rng(seed)
    sizes = [len(e[2]) for e in edges]
    m = sum(sizes)
    bad = np.sort(rng.choice(m, int(round(frac * m)), replace=False))
    P2 = np.concatenate([e[3] for e in edges])
    ang = rng.uniform(0, 2 * np.pi, len(bad))
    P2[bad] += 50.0 * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    out, i = [], 0
    for (a, b, P1, _), n in zip(edges, sizes):
        out.append((a, b, P1, P2[i:i + n]))
        i += n
    return out, bad


def test_rigid_reject_outliers_recovers_truth():
    truth, edges = grid(6, 6, affine=False, noise=0.2, seed=11)
    bad_edges, bad = _with_outliers(edges, 0.05, 12)
    plc = build(bad_edges)
    plain = plc.rigid()
    ref = gauge(truth, False)
    err = lambda res: np.sqrt(np.mean([np.sum((np.array(res[t]) - ref[t]) ** 2) for t in ref]))  # noqa: E731
    assert err(plain) > 0.5  # the outliers do hurt without rejection
    res = plc.rigid(reject=3)
    assert err(res) < 0.1
    dropped = set(plc.dropped.tolist())
    assert set(bad.tolist()) <= dropped
    assert len(dropped - set(bad.tolist())) <= 0.05 * len(plc)
    dm = plc.dropped_matches()
    assert len(dm) == len(dropped) and all(isinstance(m, sf.Match) for m in dm)
    r = plc.residuals()
    assert r.vectors.shape == (len(plc), 2) and r.kept.sum() == len(plc) - len(dropped)
    assert r.max < 1.0 and r.rms < 0.4
    assert np.all(r.norms[bad] > 20)


def test_affine_reject_outliers_recovers_truth():
    # 24 matches per edge: with 8, 0.2 px noise alone leaves the affine seams
    # 0.13 px RMS from the truth even without outliers (noise floor).
    truth, edges = grid(5, 5, affine=True, noise=0.2, seed=21, per_edge=24)
    bad_edges, bad = _with_outliers(edges, 0.05, 22)
    plc = build(bad_edges)
    res = plc.affine(reject=3)
    dropped = set(plc.dropped.tolist())
    assert set(bad.tolist()) <= dropped
    assert len(dropped - set(bad.tolist())) <= 0.05 * len(plc)
    # Truly corresponding points (noise- and outlier-free) land together in
    # model space: the placement recovers the truth up to the global modes
    # that 0.2 px noise leaves undetermined for affine tiles anyway.
    seam = []
    for a, b, P1, _ in edges:
        q = P1 @ truth[a][:, :2].T + truth[a][:, 2]
        P2true = np.linalg.solve(truth[b][:, :2], (q - truth[b][:, 2]).T).T
        seam.append((res[a] * P1.T - res[b] * P2true.T).T)
    seam = np.concatenate(seam)
    assert np.sqrt(np.mean(np.sum(seam ** 2, axis=1))) < 0.1
    assert plc.residuals().max < 1.5


def test_reject_noise_free_drops_nothing():
    _, edges = grid(3, 3, affine=True)
    plc = build(edges)
    plc.affine(reject=3)
    assert len(plc.dropped) == 0 and plc.solve_info["rounds"] == 1


def test_residuals_summary():
    _, edges = grid(3, 4, affine=False, noise=0.3, seed=5)
    plc = build(edges)
    res = plc.rigid()
    r = plc.residuals()
    a, b, P1, P2 = edges[0]
    np.testing.assert_allclose(r.vectors[: len(P1)], (P1 + res[a]) - (P2 + res[b]), atol=1e-12)
    assert r.rms == pytest.approx(np.sqrt(np.mean(r.norms ** 2)))
    assert r.max == pytest.approx(r.norms.max())
    assert set(r.per_tile) == set(res) and all(0 < v < 2 for v in r.per_tile.values())
    assert len(plc.dropped) == 0


# -- components -----------------------------------------------------------------------
def test_disconnected_graph_names_components_or_solves_separately():
    t1, e1 = grid(2, 2, affine=True, noise=0.1, seed=1)
    t2, e2 = grid(2, 3, affine=True, noise=0.1, seed=2)
    e2 = [(("B",) + a, ("B",) + b, P1, P2) for a, b, P1, P2 in e2]
    plc = build(e1 + e2)
    with pytest.raises(ValueError, match=r"disconnected.*2 components.*\(0, 0\).*\('B', 0, 0\).*separate"):
        plc.affine()
    with pytest.raises(ValueError, match="disconnected"):
        plc.rigid()
    both = plc.affine(components="separate")
    assert plc.solve_info["n_components"] == 2
    a, b = build(e1).affine(), build(e2).affine()
    for t in a:
        np.testing.assert_allclose(np.asarray(both[t]), np.asarray(a[t]), atol=1e-9)
    for t in b:
        np.testing.assert_allclose(np.asarray(both[t]), np.asarray(b[t]), atol=1e-9)
    r = plc.rigid(("B", 1, 1), components="separate")
    assert r[("B", 1, 1)] == (0.0, 0.0)
    ra = build(e1).rigid()
    for t in ra:
        np.testing.assert_allclose(r[t], ra[t], atol=1e-9)


# -- bad input ------------------------------------------------------------------------
def test_no_matches():
    with pytest.raises(ValueError, match="no matches"):
        Placement().rigid()
    plc = Placement()
    plc.addmatches(1, 2, np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="no matches"):
        plc.affine()


def test_fix_not_in_graph():
    _, edges = grid(2, 2, affine=False)
    with pytest.raises(ValueError, match=r"fix tile \(5, 5\) is not in the match graph"):
        build(edges).rigid(fix=(5, 5))
    with pytest.raises(ValueError, match="not in the match graph"):
        build(edges).affine("nope")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_points(bad):
    plc = Placement()
    with pytest.raises(ValueError, match="finite"):
        plc.addmatch(1, 2, (bad, 0.0), (1.0, 1.0))
    with pytest.raises(ValueError, match="finite"):
        plc.addmatch(1, 2, (0.0, 0.0), (1.0, bad))
    P = np.ones((4, 2))
    Q = P.copy()
    Q[2, 1] = bad
    with pytest.raises(ValueError, match="non-finite"):
        plc.addmatches(1, 2, P, Q)
    with pytest.raises(ValueError, match="non-finite"):
        plc.addmatches(1, 2, Q, P)
    assert len(plc) == 0


@pytest.mark.parametrize("w", [0.0, -1.0, np.nan, np.inf])
def test_bad_weights(w):
    plc = Placement()
    with pytest.raises(ValueError, match="weight"):
        plc.addmatch(1, 2, (0, 0), (1, 1), weight=w)
    with pytest.raises(ValueError, match="weights"):
        plc.addmatches(1, 2, np.ones((3, 2)), np.ones((3, 2)), weights=[1.0, w, 1.0])
    with pytest.raises(ValueError, match="weights"):
        plc.addmatches(1, 2, np.ones((3, 2)), np.ones((3, 2)), weights=w)
    assert len(plc) == 0


def test_mismatched_shapes():
    plc = Placement()
    with pytest.raises(ValueError, match="same number of points"):
        plc.addmatches(1, 2, np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        plc.addmatches(1, 2, np.ones((3, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        plc.addmatches(1, 2, np.ones(4), np.ones(4))
    with pytest.raises(ValueError, match=r"weights must be one number or have shape \(3,\)"):
        plc.addmatches(1, 2, np.ones((3, 2)), np.ones((3, 2)), weights=np.ones(2))
    with pytest.raises(ValueError, match="one tile id per point"):
        plc.addmatches(np.arange(2), 2, np.ones((3, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"\(x, y\) pair"):
        plc.addmatch(1, 2, (1, 2, 3), (1, 2))
    with pytest.raises(TypeError, match="hashable"):
        plc.addmatches([1, 2, 3], 2, np.ones((3, 2)), np.ones((3, 2)))
    assert len(plc) == 0


def test_tile_matched_only_to_itself():
    plc = Placement()
    with pytest.raises(ValueError, match="itself"):
        plc.addmatch("a", "a", (0, 0), (1, 1))
    with pytest.raises(ValueError, match="itself"):
        plc.addmatches("a", "a", np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="itself"):
        plc.addmatches(np.array([1, 2]), np.array([2, 2]), np.ones((2, 2)), np.ones((2, 2)))
    assert len(plc) == 0 and plc.tiles == []


def test_bad_options():
    _, edges = grid(2, 2, affine=False)
    plc = build(edges)
    with pytest.raises(ValueError, match="solver"):
        plc.rigid(solver="lu")
    with pytest.raises(ValueError, match="components"):
        plc.rigid(components="merge")
    with pytest.raises(ValueError, match="reject"):
        plc.rigid(reject=0)
    with pytest.raises(ValueError, match="tol"):
        plc.rigid(solver="cg", tol=0)
    with pytest.raises(TypeError):
        plc.rigid(None, 3)  # options are keyword-only
    with pytest.raises(ValueError, match="no solution yet"):
        Placement().residuals()


def test_ill_posed_affine():
    plc = Placement()
    plc.addmatch(1, 2, (900, 100), (0, 100))
    plc.addmatch(1, 2, (900, 500), (0, 500))  # two points cannot fix an affine pair
    with pytest.raises(ValueError, match="ill-posed|singular"):
        plc.affine()
    plc.rigid()  # but they do fix a translation


def test_nothing_printed(capfd):
    _, edges = grid(4, 4, affine=True, noise=0.2)
    plc = build(edges)
    plc.affine(reject=3)
    plc.rigid(solver="cg")
    plc.residuals()
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_per_point_array_with_one_tuple_id():
    plc = Placement()
    P = np.array([[900.0, 100.0], [950.0, 500.0]])
    plc.addmatches(np.array(["a", "b"]), ("t", 1), P, P - [800.0, 0.0])
    plc.addmatches(("t", 1), np.array(["a", "b"]), P, P + [800.0, 0.0])
    assert plc.tiles == ["a", ("t", 1), "b"]
    res = plc.rigid(fix=("t", 1))
    assert res[("t", 1)] == (0.0, 0.0)


def test_gil_released_during_solve():
    import threading
    import time

    _, edges = grid(14, 14, affine=True, noise=0.2, per_edge=4)
    plc = build(edges)
    ticks = []
    done = threading.Event()
    th = threading.Thread(target=lambda: (plc.affine(solver="cg", tol=1e-10), done.set()))
    th.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    th.join()
    t = plc.solve_info["timings"]
    cpp = t["assemble"] + t["factor"] + t["solve"]
    assert cpp > 0.05
    # with the GIL held, this thread would stall for the whole C++ call
    assert len(ticks) > 0.3 * cpp / 0.0015


def test_mixed_addmatch_and_addmatches_keep_insertion_order():
    plc = Placement()
    plc.addmatch("a", "b", (1.0, 2.0), (3.0, 4.0))
    plc.addmatches("b", "c", [[5.0, 6.0], [7.0, 8.0]], [[9.0, 10.0], [11.0, 12.0]])
    plc.addmatch("c", "a", (13.0, 14.0), (15.0, 16.0))
    plc.rigid()
    res = plc.residuals()
    assert len(res.vectors) == 4
    # rigid: residual = p1 + X_t1 - p2 - X_t2; recover p1 - p2 in insertion order
    pos = plc.rigid()
    order = [("a", "b"), ("b", "c"), ("b", "c"), ("c", "a")]
    p1 = np.array([[1, 2], [5, 6], [7, 8], [13, 14]], float)
    p2 = np.array([[3, 4], [9, 10], [11, 12], [15, 16]], float)
    expect = np.array([p1[k] + np.array(pos[t1]) - p2[k] - np.array(pos[t2]) for k, (t1, t2) in enumerate(order)])
    np.testing.assert_allclose(res.vectors, expect, atol=1e-9)


# -- similarity (not in spectralign) -----------------------------------------------------------

def _similarity_grid(rows, cols, noise, seed):
    """Tiles rotated by up to 1 degree and scaled by up to 0.5 %, matched along their overlaps."""
    rng = np.random.default_rng(seed)
    truth, edges = grid(rows, cols, affine=False, seed=seed)
    for t, T in truth.items():
        phi, s = rng.uniform(-np.pi / 180, np.pi / 180), rng.uniform(0.995, 1.005)
        T[:, :2] = s * np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
    out = []
    for a, b, P1, _ in edges:
        q = P1 @ truth[a][:, :2].T + truth[a][:, 2]
        P2 = np.linalg.solve(truth[b][:, :2], (q - truth[b][:, 2]).T).T
        out.append((a, b, P1, P2 + rng.normal(0, noise, P2.shape) if noise else P2))
    return truth, out


def test_similarity_noise_free_recovers_truth():
    truth, edges = _similarity_grid(4, 5, 0.0, seed=7)
    first = next(iter(truth))
    res = build(edges).similarity()
    inv = np.linalg.inv(np.vstack([truth[first], [0, 0, 1]]))
    for t, T in truth.items():
        expected = (inv @ np.vstack([T, [0, 0, 1]]))[:2]   # the first tile is the identity
        np.testing.assert_allclose(np.asarray(res[t]), expected, atol=1e-7, rtol=0)
        A = np.asarray(res[t])[:, :2]
        assert A[0, 0] == pytest.approx(A[1, 1], abs=1e-12) and A[0, 1] == pytest.approx(-A[1, 0], abs=1e-12)


@pytest.mark.parametrize("fix", [None, (1, 2)])
def test_similarity_matches_dense_oracle(fix):
    truth, edges = _similarity_grid(3, 4, 0.4, seed=8)
    rng = np.random.default_rng(9)
    w = [rng.uniform(0.5, 2.0, len(e[2])) for e in edges]
    plc = build(edges, w)
    res = plc.similarity(fix)
    # The solve holds the central tile of the 3 x 4 grid at the identity, then moves the
    # placement so that `fix` (default: the first tile) is the identity.
    ref = dense_similarity([(a, b, p, q, ww) for (a, b, P1, P2), W in zip(edges, w)
                            for p, q, ww in zip(P1, P2, W)], (1, 1))
    gauge_tile = fix if fix is not None else next(iter(truth))
    inv = np.linalg.inv(np.vstack([ref[gauge_tile], [0, 0, 1]]))
    for t in ref:
        expected = (inv @ np.vstack([ref[t], [0, 0, 1]]))[:2]
        np.testing.assert_allclose(np.asarray(res[t]), expected, atol=1e-6, rtol=0)
    # residuals() describes this solve
    r = plc.residuals()
    assert r.rms < 1.0 and r.kept.all()


def test_similarity_is_between_rigid_and_affine():
    """On rotated tiles a similarity fits as well as affine (the truth is one), rigid cannot."""
    _, edges = _similarity_grid(3, 3, 0.2, seed=10)
    plc = build(edges)
    plc.rigid()
    rigid = plc.residuals().rms
    plc.similarity()
    sim = plc.residuals().rms
    plc.affine()
    aff = plc.residuals().rms
    assert aff <= sim * 1.01 and sim < 0.5 < rigid


def test_similarity_bad_input():
    truth, edges = _similarity_grid(2, 2, 0.0, seed=11)
    with pytest.raises(ValueError, match="not in the match graph"):
        build(edges).similarity(fix="nope")
    plc = build(edges)
    plc.addmatches("x", "y", np.array([[0.0, 0.0]]), np.array([[1.0, 1.0]]))
    with pytest.raises(ValueError, match="disconnected"):
        plc.similarity()
    one = Placement()
    one.addmatches("a", "b", np.array([[0.0, 0.0]]), np.array([[1.0, 1.0]]))
    with pytest.raises(ValueError, match="singular"):
        one.similarity()   # one point cannot fix a rotation and scale
