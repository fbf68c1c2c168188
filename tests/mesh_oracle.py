"""Dense NumPy oracle of the elastic section mesh (``_core.place.solve_mesh``, ``mesh_inverse``, ``mesh_field``).

Written from the model in place/mesh.hpp, not from the C++: the normal equations are built
as a dense matrix from explicit per-match coefficient rows and solved with
``numpy.linalg.solve``. Points are (x, y); node (r, c) rests at (c * s, r * s).
"""
from __future__ import annotations

import numpy as np


def barycentric(ny: int, nx: int, s: float, x: float, y: float) -> tuple[list[int], list[float]]:
    """The triangle's nodes and weights at (x, y): cells split along their (r, c)-(r+1, c+1) diagonal."""
    fx, fy = x / s, y / s
    c = int(min(max(np.floor(fx), 0), nx - 2))
    r = int(min(max(np.floor(fy), 0), ny - 2))
    fx, fy = fx - c, fy - r
    n00 = r * nx + c
    if fx >= fy:
        return [n00, n00 + 1, n00 + nx + 1], [1 - fx, fx - fy, fy]
    return [n00, n00 + nx, n00 + nx + 1], [1 - fy, fy - fx, fx]


def interpolate(u: np.ndarray, s: float, pts: np.ndarray) -> np.ndarray:
    ny, nx = u.shape[:2]
    flat = u.reshape(-1, 2)
    out = np.zeros((len(pts), 2))
    for k, (x, y) in enumerate(pts):
        nodes, w = barycentric(ny, nx, s, x, y)
        out[k] = sum(wi * flat[n] for n, wi in zip(nodes, w))
    return out


def edges(ny: int, nx: int) -> list[tuple[int, int]]:
    out = []
    for r in range(ny):
        for c in range(nx):
            i = r * nx + c
            if c + 1 < nx:
                out.append((i, i + 1))
            if r + 1 < ny:
                out.append((i, i + nx))
            if c + 1 < nx and r + 1 < ny:
                out.append((i, i + nx + 1))
    return out


def solve(n_sections: int, ny: int, nx: int, s: float, za, zb, pa, pb, w, stiffness: float,
          pull: float) -> np.ndarray:
    """Node displacements (sections, ny, nx, 2) minimising
    sum w |pa + v_za(pa) - pb - v_zb(pb)|^2 + stiffness sum_edges |v_i - v_j|^2 + pull sum |v_i|^2."""
    N = ny * nx
    pa, pb, w = np.asarray(pa, float), np.asarray(pb, float), np.asarray(w, float)
    K = pull * np.eye(n_sections * N)
    for z in range(n_sections):
        for i, j in edges(ny, nx):
            a, b = z * N + i, z * N + j
            K[[a, b], [a, b]] += stiffness
            K[a, b] -= stiffness
            K[b, a] -= stiffness
    rhs = np.zeros((n_sections * N, 2))
    for k in range(len(w)):
        row = np.zeros(n_sections * N)
        for z, p, sign in ((za[k], pa[k], 1.0), (zb[k], pb[k], -1.0)):
            nodes, bw = barycentric(ny, nx, s, *p)
            for n, b in zip(nodes, bw):
                row[z * N + n] += sign * b
        K += w[k] * np.outer(row, row)
        rhs -= w[k] * np.outer(row, pa[k] - pb[k])
    return np.linalg.solve(K, rhs).reshape(n_sections, ny, nx, 2)


def inverse(u: np.ndarray, s: float, q: np.ndarray) -> np.ndarray:
    """p with p + v(p) = q, by a damped fixed-point iteration to convergence (independent of the
    core's triangle walk)."""
    p = q - interpolate(u, s, q)
    for _ in range(200):
        p = p + 0.7 * (q - p - interpolate(u, s, p))
    return p


def field(u: np.ndarray, s: float, row0: int, col0: int, h: int, w: int, M: np.ndarray) -> np.ndarray:
    """(h, w, 2) offsets (row, col): M (p_y, p_x, 1) - (i, j), p the inverse push map at each pixel."""
    ii, jj = np.mgrid[0:h, 0:w]
    pts = np.column_stack([(jj + col0).ravel(), (ii + row0).ravel()]).astype(float)
    d = inverse(u, s, pts)
    p = np.column_stack([d[:, 1], d[:, 0], np.ones(len(pts))])
    src = p @ M.T
    return np.stack([src[:, 0].reshape(h, w) - ii, src[:, 1].reshape(h, w) - jj], -1)
