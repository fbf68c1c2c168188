"""affine_from_points: least-squares maps from landmarks, checked against known transforms (with
noise, against a NumPy normal-equations oracle) and on degenerate inputs."""
from __future__ import annotations

import numpy as np
import pytest

import spectralign_fast as sf
from spectralign_fast.transforms import affine_from_points


def rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    Q, R = np.linalg.qr(rng.normal(size=(d, d)))
    Q = Q @ np.diag(np.sign(np.diag(R)))
    if np.linalg.det(Q) < 0:
        Q[:, 0] *= -1
    return Q


def homogeneous(L: np.ndarray, t: np.ndarray) -> np.ndarray:
    d = L.shape[0]
    H = np.eye(d + 1)
    H[:d, :d], H[:d, d] = L, t
    return H


def apply(H: np.ndarray, X: np.ndarray) -> np.ndarray:
    return X @ H[:-1, :-1].T + H[:-1, -1]


def oracle_affine(X: np.ndarray, Y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least squares through the normal equations of the homogeneous design."""
    Xh = np.hstack([X, np.ones((len(X), 1))])
    G = Xh.T @ (w[:, None] * Xh)
    B = np.linalg.solve(G, Xh.T @ (w[:, None] * Y))
    H = np.eye(X.shape[1] + 1)
    H[:-1] = B.T
    return H


def test_exported():
    assert sf.affine_from_points is affine_from_points
    assert "affine_from_points" in sf.__all__


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("model", ["affine", "rigid", "similarity", "translation"])
def test_exact_recovery(d, model):
    rng = np.random.default_rng(d)
    L = {"affine": rng.normal(size=(d, d)) + 2 * np.eye(d), "rigid": rotation(d, rng),
         "similarity": 1.7 * rotation(d, rng), "translation": np.eye(d)}[model]
    H = homogeneous(L, rng.normal(scale=20, size=d))
    X = rng.uniform(-50, 50, size=(12, d))
    np.testing.assert_allclose(affine_from_points(X, apply(H, X), model=model), H, atol=1e-9)


@pytest.mark.parametrize("d", [2, 3])
def test_affine_with_noise_and_weights_matches_the_oracle(d):
    rng = np.random.default_rng(10 + d)
    H = homogeneous(rng.normal(size=(d, d)) + np.eye(d), rng.normal(size=d))
    X = rng.uniform(0, 100, size=(40, d))
    Y = apply(H, X) + rng.normal(scale=0.5, size=X.shape)
    w = rng.uniform(0, 3, size=40)
    got = affine_from_points(X, Y, weights=w)
    np.testing.assert_allclose(got, oracle_affine(X, Y, w), atol=1e-8)
    np.testing.assert_allclose(got[:d, :d], H[:d, :d], atol=0.02)  # noise 0.5 over 100 units
    # Where the points are, the fit is closer to the truth than the noise (std 0.5).
    assert np.sqrt(((apply(got, X) - apply(H, X)) ** 2).mean()) < 0.4
    # Zero weights drop points entirely.
    w2 = w.copy()
    w2[:5] = 0
    Y2 = Y.copy()
    Y2[:5] += 1000
    np.testing.assert_allclose(affine_from_points(X, Y2, weights=w2), oracle_affine(X[5:], Y[5:], w[5:]), atol=1e-8)


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("scale", [False, True])
def test_rigid_and_similarity_with_noise_are_least_squares(d, scale):
    """The fitted rotation is proper, and no nearby proper rotation (or scale) fits better."""
    rng = np.random.default_rng(20 + d)
    s = 1.3 if scale else 1.0
    H = homogeneous(s * rotation(d, rng), rng.normal(scale=10, size=d))
    X = rng.uniform(-30, 30, size=(25, d))
    Y = apply(H, X) + rng.normal(scale=0.3, size=X.shape)
    w = rng.uniform(0.5, 2, size=25)
    model = "similarity" if scale else "rigid"
    got = affine_from_points(X, Y, model=model, weights=w)
    L = got[:d, :d]
    k = np.linalg.norm(L[:, 0])
    np.testing.assert_allclose(L.T @ L, k * k * np.eye(d), atol=1e-10)
    assert np.linalg.det(L) > 0
    if not scale:
        assert k == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(got, H, atol=0.2)

    def cost(M):
        return float((w * ((apply(M, X) - Y) ** 2).sum(axis=1)).sum())

    best = cost(got)
    for _ in range(50):
        a = rng.normal(size=(d, d)) * 1e-3
        U, _, Vt = np.linalg.svd(np.eye(d) + (a - a.T) / 2)  # a proper rotation near the identity
        Lp = (U @ Vt) @ L * (1 + (rng.normal() * 1e-3 if scale else 0))
        Mp = homogeneous(Lp, got[:d, d] + rng.normal(size=d) * 1e-3)
        assert cost(Mp) >= best - 1e-9


def test_reflection_is_never_returned():
    """Points related by a mirror: the rigid fit is the best proper rotation, not the mirror."""
    rng = np.random.default_rng(3)
    X = rng.uniform(-10, 10, size=(20, 3))
    Y = X * np.array([1, 1, -1])
    got = affine_from_points(X, Y, model="rigid")
    assert np.linalg.det(got[:3, :3]) == pytest.approx(1.0)
    X2 = rng.uniform(-10, 10, size=(20, 2))
    got2 = affine_from_points(X2, X2 * np.array([-1, 1]), model="similarity")
    assert np.linalg.det(got2[:2, :2]) > 0


def test_minimal_and_coplanar_sets():
    # d+1 points determine an affine exactly; 3-D coplanar points still determine a rotation.
    X = np.array([[0.0, 0.0, 0.0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    H = homogeneous(np.array([[2.0, 0.1, 0], [0, 1, 0.3], [0.2, 0, 1]]), np.array([1.0, 2, 3]))
    np.testing.assert_allclose(affine_from_points(X, apply(H, X)), H, atol=1e-12)
    R = rotation(3, np.random.default_rng(1))
    planar = np.array([[0.0, 0, 0], [3, 0, 0], [0, 2, 0], [1, 1, 0]])
    np.testing.assert_allclose(affine_from_points(planar, planar @ R.T, model="rigid")[:3, :3], R, atol=1e-12)
    two = np.array([[0.0, 0.0], [2.0, 1.0]])
    R2 = rotation(2, np.random.default_rng(2))
    np.testing.assert_allclose(affine_from_points(two, two @ R2.T + 5, model="rigid")[:2, :2], R2, atol=1e-12)


@pytest.mark.parametrize("fixed,model,match", [
    (np.array([[0.0, 0], [1, 0]]), "affine", "at least 3 points"),
    (np.array([[0.0, 0], [1, 1], [2, 2], [3, 3]]), "affine", "degenerate.*collinear"),
    (np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [2, 3, 0]]), "affine", "degenerate.*coplanar"),
    (np.array([[1.0, 1, 1]] * 5), "affine", "degenerate"),
    (np.array([[0.0, 0, 0], [1, 1, 1], [2, 2, 2], [5, 5, 5]]), "rigid", "degenerate.*collinear"),
    (np.array([[1.0, 2.0]] * 3), "similarity", "degenerate"),
    (np.array([[1.0, 2.0, 3.0]] * 2), "rigid", "at least 3 points"),
])
def test_degenerate_configurations_are_refused(fixed, model, match):
    with pytest.raises(ValueError, match=match):
        affine_from_points(fixed, fixed + 1.0, model=model)


def test_bad_input_is_refused_and_inputs_untouched():
    X = np.random.default_rng(0).uniform(size=(6, 2))
    Y = X + 1
    cx, cy = X.copy(), Y.copy()
    with pytest.raises(ValueError, match="same shape"):
        affine_from_points(X, Y[:5])
    with pytest.raises(ValueError, match=r"shape \(n, 2\) or \(n, 3\)"):
        affine_from_points(np.zeros((6, 4)), np.zeros((6, 4)))
    with pytest.raises(ValueError, match=r"shape \(n, 2\) or \(n, 3\)"):
        affine_from_points(X.ravel(), Y.ravel())
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf in rows \[2\]"):
        affine_from_points(bad, Y)
    with pytest.raises(ValueError, match="NaN or inf"):
        affine_from_points(X, np.where(Y > 1.5, np.inf, Y))
    with pytest.raises(TypeError, match="complex"):
        affine_from_points(X + 0j, Y)
    with pytest.raises(TypeError, match="numbers"):
        affine_from_points([["a", "b"]] * 6, Y)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        affine_from_points(X, Y, weights=[1, 1, -1, 1, 1, 1])
    with pytest.raises(ValueError, match="all weights are zero"):
        affine_from_points(X, Y, weights=np.zeros(6))
    with pytest.raises(ValueError, match="weights contain NaN"):
        affine_from_points(X, Y, weights=[1, 1, np.nan, 1, 1, 1])
    with pytest.raises(ValueError, match=r"weights must have shape \(6,\)"):
        affine_from_points(X, Y, weights=np.ones(5))
    with pytest.raises(ValueError, match="model must be one of"):
        affine_from_points(X, Y, model="projective")
    w = np.ones(6)
    affine_from_points(X, Y, weights=w, model="similarity")
    np.testing.assert_array_equal(X, cx)
    np.testing.assert_array_equal(Y, cy)
    np.testing.assert_array_equal(w, np.ones(6))


def test_lists_and_integers_work():
    X = [[0, 0], [10, 0], [0, 10], [10, 10]]
    Y = [[1, 2], [11, 2], [1, 12], [11, 12]]
    H = affine_from_points(X, Y)
    assert H.dtype == np.float64
    np.testing.assert_allclose(H, homogeneous(np.eye(2), np.array([1.0, 2.0])), atol=1e-12)
    np.testing.assert_allclose(affine_from_points(X, Y, model="translation"), H, atol=1e-12)
