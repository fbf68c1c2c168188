"""Truth checks for elastic stacks made by ``synthetic_sections`` (independent of the library's maps).

For each output pixel q of the aligned stack, section z shows its own pixel
B_z^-1(canvas_origin + p) with p the affine-aligned point the mesh puts at q
(``ElasticResult.from_output``) and B_z the tile transform holding it; the
truth maps that pixel to the undeformed slice. Aligned means neighbouring
sections show the same undeformed point: the error is the RMS distance
between those points of sections z and z + 1. Points are (x, y).
"""
from __future__ import annotations

import numpy as np


def reference_points(res, sections, z: int, q: np.ndarray, *, elastic: bool = True, tiles=None,
                     origins=None) -> np.ndarray:
    """Undeformed positions (N, 2) shown by section z at output pixels q (N, 2)."""
    x0, y0 = res.canvas[:2]
    m = (res.elastic.from_output(z, q) if elastic else q) + [x0, y0]
    keys = [(0, 0)] if tiles is None else list(tiles[z])
    best = np.full(len(q), -np.inf)
    out = np.zeros_like(q)
    for key in keys:
        a = np.vstack([np.asarray(res.transforms[(z,) + key]), [0.0, 0.0, 1.0]])
        inv = np.linalg.inv(a)
        p = m @ inv[:2, :2].T + inv[:2, 2]
        if tiles is None:
            h, w = sections.images[z].shape
            offset = np.zeros(2)
        else:
            h, w = tiles[z][key].shape
            offset = origins[z][key]
        depth = np.minimum.reduce([p[:, 0], w - 1 - p[:, 0], p[:, 1], h - 1 - p[:, 1]])
        sel = depth > best
        best[sel] = depth[sel]
        out[sel] = p[sel] + offset
    return sections.to_reference(z, out)


def neighbour_error(res, sections, q: np.ndarray, keep: np.ndarray, **kw) -> float:
    """RMS over z and the points ``keep`` of |X_z(q) - X_z+1(q)| (pixels)."""
    n = len(sections.images)
    X = np.array([reference_points(res, sections, z, q, **kw) for z in range(n)])
    d = np.linalg.norm(X[1:] - X[:-1], axis=2)[:, keep]
    return float(np.sqrt(np.mean(d ** 2)))


def output_grid(res, step: int = 2) -> np.ndarray:
    w, h = res.canvas[2:]
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    return np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)


def ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    x, y = a[mask] - a[mask].mean(), b[mask] - b[mask].mean()
    return float(np.sum(x * y) / np.sqrt(np.sum(x * x) * np.sum(y * y)))
