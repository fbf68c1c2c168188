"""Dense NumPy reference of spectralign's Placement formulation (rigid / affine).

Independent, deliberately plain re-derivation used only by the tests:

* rigid, per coordinate: minimise sum w (X_t1 + p1 - X_t2 - p2)^2 with the
  Lagrange constraint sum_t X_t = 0, i.e. the dense (N+1) x (N+1) system
  [[L, 1], [1', 0]]; with ``fix`` the fixed tile is placed at 0 and the
  constraint is dropped (spectralign's intent; its own rigid(fix=...) drops
  one row too many and fails with an IndexError).
* affine: unknowns per tile (A00, A01, A10, A11, X0, X1), minimise
  sum w |A_t1 p1 + X_t1 - A_t2 p2 - X_t2|^2 with Lagrange constraints
  sum_t A_t = N I and sum_t X_t = 0: the dense (6N+6)^2 system; with ``fix``
  that tile is the identity and the constraints are dropped.

Tiles are numbered in order of first appearance (t1 before t2 per match).
"""
from __future__ import annotations

import numpy as np


def tile_order(matches):
    ids = {}
    for m in matches:
        for t in (m[0], m[1]):
            if t not in ids:
                ids[t] = len(ids)
    return ids


def dense_rigid(matches, fix=None):
    """matches: iterable of (t1, t2, p1, p2, w). Returns {tile: (x, y)}."""
    ids = tile_order(matches)
    n = len(ids)
    out = np.zeros((n, 2))
    for d in range(2):
        A = np.zeros((n + 1, n + 1))
        b = np.zeros(n + 1)
        for t1, t2, p1, p2, w in matches:
            i, j = ids[t1], ids[t2]
            A[i, i] += w
            A[j, j] += w
            A[i, j] -= w
            A[j, i] -= w
            b[i] += w * (p2[d] - p1[d])
            b[j] -= w * (p2[d] - p1[d])
        A[n, :n] = 1.0
        A[:n, n] = 1.0
        if fix is None:
            out[:, d] = np.linalg.solve(A, b)[:n]
        else:
            f = ids[fix]
            keep = [k for k in range(n) if k != f]
            x = np.linalg.solve(A[np.ix_(keep, keep)], b[keep])
            out[keep, d] = x
            out[f, d] = 0.0
    return {t: (out[i, 0], out[i, 1]) for t, i in ids.items()}


def _solve_equilibrated(M, b):
    """np.linalg.solve on the symmetrically scaled system (D M D) y = D b, x = D y.

    Pixel coordinates make the affine system badly scaled (entries ~ p^2
    next to ~ 1); the scaling changes nothing mathematically but keeps the
    dense LU from losing digits to it. Two steps of iterative refinement.
    """
    d = 1.0 / np.sqrt(np.maximum(np.abs(np.diag(M)), 1e-300))
    d[np.diag(M) == 0] = 1.0
    S = d[:, None] * M * d[None, :]
    y = np.linalg.solve(S, d * b)
    for _ in range(2):
        y += np.linalg.solve(S, d * b - S @ y)
    return d * y


def dense_affine(matches, fix=None):
    """matches: iterable of (t1, t2, p1, p2, w). Returns {tile: 2x3 ndarray}."""
    ids = tile_order(matches)
    n = len(ids)
    size = 6 * n + 6
    M = np.zeros((size, size))
    b = np.zeros(size)

    def design(t, p):
        # rows: x and y of A_t p + X_t as linear functions of all unknowns
        g = np.zeros((2, size))
        for r in range(2):
            g[r, 6 * t + 2 * r + 0] = p[0]
            g[r, 6 * t + 2 * r + 1] = p[1]
            g[r, 6 * t + 4 + r] = 1.0
        return g

    for t1, t2, p1, p2, w in matches:
        g = design(ids[t1], p1) - design(ids[t2], p2)
        M += w * g.T @ g
    for t in range(n):
        for k in range(6):
            M[6 * n + k, 6 * t + k] = 1.0
            M[6 * t + k, 6 * n + k] = 1.0
    b[6 * n + 0] = n  # sum A00 = n
    b[6 * n + 3] = n  # sum A11 = n
    if fix is None:
        x = _solve_equilibrated(M, b)[: 6 * n]
    else:
        f = ids[fix]
        ident = np.array([1.0, 0, 0, 1, 0, 0])
        fixed = list(range(6 * f, 6 * f + 6))
        keep = [k for k in range(6 * n) if k not in fixed]
        rhs = -M[np.ix_(keep, fixed)] @ ident
        x = np.zeros(6 * n)
        x[keep] = _solve_equilibrated(M[np.ix_(keep, keep)], rhs)
        x[fixed] = ident
    res = {}
    for t, i in ids.items():
        v = x[6 * i: 6 * i + 6]
        res[t] = np.array([[v[0], v[1], v[4]], [v[2], v[3], v[5]]])
    return res


def dense_similarity(matches, fix):
    """Similarity per tile, T(p) = [[a, -b], [b, a]] p + (tx, ty): minimise
    sum w |T_t1(p1) - T_t2(p2)|^2 with tile ``fix`` the identity, as one dense
    weighted least-squares problem in the other tiles' (a, b, tx, ty) (NumPy
    lstsq, no normal equations). Returns {tile: 2x3}."""
    ids = tile_order(matches)
    free = [t for t in ids if t != fix]
    col = {t: 4 * k for k, t in enumerate(free)}
    rows, rhs = [], []
    for t1, t2, p1, p2, w in matches:
        sw = np.sqrt(w)
        for coord in range(2):
            r = np.zeros(4 * len(free))
            c = 0.0
            for t, p, sign in ((t1, p1, 1.0), (t2, p2, -1.0)):
                x, y = p
                coef = [x, -y, 1.0, 0.0] if coord == 0 else [y, x, 0.0, 1.0]
                if t == fix:  # identity: a = 1, b = 0, t = 0
                    c += sign * (x if coord == 0 else y)
                else:
                    r[col[t]:col[t] + 4] += sign * np.array(coef)
            rows.append(sw * r)
            rhs.append(-sw * c)
    sol, *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    out = {fix: np.array([[1.0, 0, 0], [0, 1.0, 0]])}
    for t in free:
        a, b, tx, ty = sol[col[t]:col[t] + 4]
        out[t] = np.array([[a, -b, tx], [b, a, ty]])
    return out


def dense_regularized_affine(matches, prior, lam, fix=None, centre=1.0, linear=1.0):
    """Regularised affine (issue 19), as one dense weighted least-squares problem (NumPy lstsq,
    no normal equations) in every tile's (A00, A01, A10, A11, X0, X1): the match rows
    sqrt(w) (A_t1 p1 + X_t1 - A_t2 p2 - X_t2) and, per tile, the rows sqrt(lam W_t) of
    (T_t - S_t)(c0) and sqrt(lam W_t) L (A_t - A_S), where W_t is the summed weight of the
    tile's matches, c0 the mean of all matched points and L their RMS distance from c0. The
    solution is then mapped by one global affine map so that the mean A is I and the mean X
    is 0, or tile ``fix`` is the identity. ``prior``: {tile: 2x3}. ``centre`` and ``linear``
    multiply the weights of the two kinds of prior rows (the core's prior_centre and
    prior_linear). Returns {tile: 2x3}."""
    ids = tile_order(matches)
    n = len(ids)
    pts = np.array([p for m in matches for p in (m[2], m[3])], dtype=float)
    c0 = pts.mean(axis=0)
    L = np.sqrt(np.mean(np.sum((pts - c0) ** 2, axis=1)))
    W = np.zeros(n)
    rows, rhs = [], []
    for t1, t2, p1, p2, w in matches:
        W[ids[t1]] += w
        W[ids[t2]] += w
        for r in range(2):
            row = np.zeros(6 * n)
            for t, p, sign in ((t1, p1, 1.0), (t2, p2, -1.0)):
                k = 6 * ids[t]
                row[k + 2 * r:k + 2 * r + 2] += sign * np.asarray(p, float)
                row[k + 4 + r] += sign
            rows.append(np.sqrt(w) * row)
            rhs.append(0.0)
    for t, i in ids.items():
        S = np.asarray(prior[t], float)
        s = np.sqrt(lam * W[i])
        for r in range(2):
            row = np.zeros(6 * n)
            row[6 * i + 2 * r:6 * i + 2 * r + 2] = c0
            row[6 * i + 4 + r] = 1.0
            sc, sl = s * np.sqrt(centre), s * np.sqrt(linear)
            rows.append(sc * row)
            rhs.append(sc * (S[r, :2] @ c0 + S[r, 2]))
            for j in range(2):
                row = np.zeros(6 * n)
                row[6 * i + 2 * r + j] = L
                rows.append(sl * row)
                rhs.append(sl * L * S[r, j])
    x, *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    T = np.stack([np.stack([x[0::6], x[1::6], x[4::6]], 1), np.stack([x[2::6], x[3::6], x[5::6]], 1)], 1)
    G = T[ids[fix]] if fix is not None else np.concatenate([T[:, :, :2].mean(0), T[:, :, 2:].mean(0)], axis=1)
    Ginv = np.linalg.inv(G[:, :2])
    out = np.einsum("ij,njk->nik", Ginv, T)
    out[:, :, 2] -= Ginv @ G[:, 2]
    return {t: out[i] for t, i in ids.items()}
