"""The elastic section mesh in the core (``_core.place``) against the dense NumPy oracle."""
from __future__ import annotations

import numpy as np
import pytest

from spectralign_fast import _core

import mesh_oracle

P = _core.place


def _problem(seed: int = 0, n_sections: int = 3, ny: int = 4, nx: int = 5, s: float = 10.0, per_pair: int = 40,
             noise: float = 0.3, amplitude: float = 0.8):
    """Matches made by a known push map per section: p_z = inverse of p + v_z(p) at a common output point."""
    rng = np.random.default_rng(seed)
    za, zb, pa, pb = [], [], [], []
    truth = rng.normal(0, amplitude, (n_sections, ny, nx, 2))
    for z in range(n_sections - 1):
        q = rng.uniform(0, [s * (nx - 1), s * (ny - 1)], (per_pair, 2))
        pa.append(mesh_oracle.inverse(truth[z], s, q) + rng.normal(0, noise, q.shape))
        pb.append(mesh_oracle.inverse(truth[z + 1], s, q))
        za += [z] * per_pair
        zb += [z + 1] * per_pair
    w = rng.uniform(0.5, 2.0, len(za))
    return dict(za=np.array(za), zb=np.array(zb), pa=np.concatenate(pa), pb=np.concatenate(pb), w=w), truth


def _solve(m, n_sections=3, ny=4, nx=5, s=10.0, stiffness=0.7, pull=0.01, **kw):
    return P.solve_mesh(n_sections, ny, nx, s, 0.0, 0.0, m["za"], m["zb"], m["pa"], m["pb"], m["w"], stiffness, pull,
                        **kw)


@pytest.mark.parametrize("solver", ["auto", "cholesky", "cg"])
def test_solve_matches_the_dense_oracle(solver):
    m, _ = _problem()
    sol = _solve(m, solver=solver)
    want = mesh_oracle.solve(3, 4, 5, 10.0, m["za"], m["zb"], m["pa"], m["pb"], m["w"], 0.7, 0.01)
    np.testing.assert_allclose(sol.displacement, want, atol=1e-9 if solver == "cholesky" else 1e-7)
    assert sol.displacement.shape == (3, 4, 5, 2)
    assert sol.unknowns == 60
    assert sol.solver == ("cg" if solver != "cholesky" else sol.solver) and sol.solver in ("cholmod", "ldlt", "cg")
    assert (sol.cg_iterations > 0) == (sol.solver == "cg") and sol.cg_error < 1e-10
    assert list(sol.inverted) == [0, 0, 0]
    # The residual is that of each match as given: pa + v_za(pa) - pb - v_zb(pb).
    ua = np.array([mesh_oracle.interpolate(want[z], 10.0, m["pa"][k:k + 1])[0] for k, z in enumerate(m["za"])])
    ub = np.array([mesh_oracle.interpolate(want[z], 10.0, m["pb"][k:k + 1])[0] for k, z in enumerate(m["zb"])])
    np.testing.assert_allclose(sol.residual, m["pa"] + ua - m["pb"] - ub, atol=1e-9)


def test_large_flows_couple_distant_cells():
    # Matches whose two points lie several cells apart (a large flow) still match the oracle.
    m, _ = _problem(seed=6, ny=5, nx=6)
    m["pb"] = np.clip(m["pb"] + np.array([27.0, -16.0]), -5, 55)
    sol = _solve(m, ny=5, nx=6)
    want = mesh_oracle.solve(3, 5, 6, 10.0, m["za"], m["zb"], m["pa"], m["pb"], m["w"], 0.7, 0.01)
    np.testing.assert_allclose(sol.displacement, want, atol=1e-9)


def test_noise_free_piecewise_linear_truth_is_fitted_exactly():
    m, truth = _problem(seed=2, per_pair=300, noise=0.0, amplitude=0.8)
    sol = _solve(m, stiffness=1e-9, pull=1e-10)
    assert np.abs(sol.residual).max() < 1e-6
    # Only where sections lie relative to each other is observable (the output frame is a gauge):
    # points that the truth puts at one output point, the solution does too.
    q = np.random.default_rng(7).uniform(5, [35, 25], (100, 2))
    u = sol.displacement
    for z in (0, 1):
        a = mesh_oracle.inverse(truth[z], 10.0, q)
        b = mesh_oracle.inverse(truth[z + 1], 10.0, q)
        np.testing.assert_allclose(a + mesh_oracle.interpolate(u[z], 10.0, a),
                                   b + mesh_oracle.interpolate(u[z + 1], 10.0, b), atol=1e-5)


def test_cg_that_does_not_converge_raises_or_falls_back_to_the_factor():
    m, _ = _problem(seed=8)
    with pytest.raises(ValueError, match="did not converge"):
        _solve(m, solver="cg", maxiter=2)
    auto = _solve(m, maxiter=2)
    assert auto.solver in ("cholmod", "ldlt")
    np.testing.assert_allclose(auto.displacement, _solve(m, solver="cholesky").displacement, atol=1e-12)
    with pytest.raises(ValueError, match="solver"):
        _solve(m, solver="lu")


def test_swapped_matches_give_the_same_mesh():
    m, _ = _problem(seed=3)
    a = _solve(m)
    b = _solve(dict(za=m["zb"], zb=m["za"], pa=m["pb"], pb=m["pa"], w=m["w"]))
    np.testing.assert_allclose(a.displacement, b.displacement, atol=1e-10)
    np.testing.assert_allclose(a.residual, -b.residual, atol=1e-10)


def test_interpolate_inverse_and_field_match_the_oracle():
    rng = np.random.default_rng(4)
    u = rng.normal(0, 0.8, (5, 6, 2))
    pts = rng.uniform(-5, 55, (50, 2))  # some outside the mesh: extrapolated from the nearest cell
    np.testing.assert_allclose(P.mesh_interpolate(u, 10.0, 0.0, 0.0, pts), mesh_oracle.interpolate(u, 10.0, pts),
                               atol=1e-12)
    inv = P.mesh_inverse(u, 10.0, 0.0, 0.0, pts)
    np.testing.assert_allclose(inv + mesh_oracle.interpolate(u, 10.0, inv), pts, atol=1e-9)
    np.testing.assert_allclose(inv, mesh_oracle.inverse(u, 10.0, pts), atol=1e-6)
    M = np.array([[0.98, 0.05, 3.0], [-0.04, 1.02, -2.0], [0.0, 0.0, 1.0]])
    got = P.mesh_field(u, 10.0, 0.0, 0.0, 7, 2, 23, 31, M, 1)
    assert got.dtype == np.float32 and got.shape == (23, 31, 2)
    np.testing.assert_allclose(got, mesh_oracle.field(u, 10.0, 7, 2, 23, 31, M), atol=1 / 512 + 1e-6)
    # A sub-region's source positions are the whole one's exactly (chunked writes are bit for bit).
    part = P.mesh_field(u, 10.0, 0.0, 0.0, 12, 9, 5, 6, M, 1)
    whole = got[5:10, 7:13] + np.stack(np.mgrid[5:10, 7:13], -1)
    assert np.array_equal(part.astype(np.float64) + np.stack(np.mgrid[0:5, 0:6], -1), whole.astype(np.float64))
    for threads in (2, 3, 0):
        assert np.array_equal(P.mesh_field(u, 10.0, 0.0, 0.0, 7, 2, 23, 31, M, threads), got)


def test_inverted_triangles_are_counted():
    m, _ = _problem(seed=5, n_sections=2, ny=3, nx=3)
    assert list(_solve(m, n_sections=2, ny=3, nx=3).inverted) == [0, 0]
    # Matches that drag node (3, 3) of section 0 15 px (more than the 10 px spacing) past its
    # neighbour fold its mesh when the springs are weak.
    pa = np.array([[30.0, 30.0]] * 5)
    pb = pa - [24.0, 0.0]
    sol = P.solve_mesh(2, 7, 7, 10.0, 0.0, 0.0, np.zeros(5, np.int64), np.ones(5, np.int64), pa, pb, np.ones(5),
                       1e-4, 1e-2)
    assert sol.displacement[0, 3, 3, 0] < -12 and list(sol.inverted) == [2, 0]


@pytest.mark.parametrize("change, message", [
    (dict(za=np.array([0, 0, 5])), "outside"),
    (dict(zb=np.array([0, 1, 1])), "to itself"),
    (dict(w=np.array([1.0, 0.0, 1.0])), "weight"),
    (dict(pa=np.array([[1.0, np.nan], [2, 2], [3, 3]])), "non-finite"),
    (dict(pull=0.0), "pull"),
    (dict(stiffness=-1.0), "stiffness"),
    (dict(pb=np.full((3, 2), 500.0)), "outside the mesh"),
    (dict(ny=30, nx=30, pb=np.full((3, 2), 200.0)), "mesh cells"),
    (dict(ny=1), "2 x 2"),
    (dict(spacing=0.0), "spacing"),
    (dict(pa=np.zeros((2, 2))), "shape"),
])
def test_bad_input_raises(change, message):
    args = dict(n_sections=2, ny=3, nx=3, spacing=10.0, origin_x=0.0, origin_y=0.0, za=np.zeros(3, np.int64),
                zb=np.ones(3, np.int64), pa=np.ones((3, 2)), pb=np.zeros((3, 2)), w=np.ones(3), stiffness=1.0,
                pull=0.01)
    args.update(change)
    with pytest.raises(ValueError, match=message):
        P.solve_mesh(**args)


def test_field_bad_input_raises():
    u = np.zeros((3, 3, 2))
    with pytest.raises(ValueError, match="shape"):
        P.mesh_field(np.zeros((3, 3)), 10.0, 0.0, 0.0, 0, 0, 4, 4, np.eye(3), 1)
    with pytest.raises(ValueError, match="not finite"):
        P.mesh_field(u, 10.0, 0.0, 0.0, 0, 0, 4, 4, np.full((3, 3), np.nan), 1)
    with pytest.raises(ValueError, match="matrix"):
        P.mesh_field(u, 10.0, 0.0, 0.0, 0, 0, 4, 4, np.eye(2), 1)
    with pytest.raises(ValueError, match="not finite"):
        P.mesh_interpolate(u, 10.0, 0.0, 0.0, np.array([[np.inf, 0.0]]))
    with pytest.raises(ValueError, match="not finite"):
        P.mesh_inverse(u, 10.0, 0.0, 0.0, np.array([[0.0, np.nan]]))
