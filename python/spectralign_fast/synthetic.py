"""Tile sets with known truth, cut from a real photograph (for the demo, tests and benchmarks),
and a movie with known non-rigid motion (``nonrigid_movie``).

Every tile t is sampled from the photograph through a known affine map
``truth[t]``: tile pixel (x, y) shows photograph point ``truth[t] * (x, y)``
(points are (x, y) = (column, row)). A montage's transforms should equal
``G @ truth[t]`` for one global affine G (the gauge); ``registration_error``
measures how far they are from that.
"""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional, Tuple

import numpy as np
from numpy.typing import DTypeLike

from .transforms.affine import Affine


def photograph(name: str = "retina") -> np.ndarray:
    """A scikit-image photograph as grey float32 in [0, 1] (needs the ``demo`` extra)."""
    try:
        from skimage import data
    except ImportError:
        raise ImportError("the demo data need scikit-image: pip install 'spectralign-fast[demo]'") from None
    img = np.asarray(getattr(data, name)(), dtype=np.float64)
    if img.ndim == 3:
        img = img[..., :3].mean(axis=-1)
    return (img / (255.0 if img.max() > 1 else 1.0)).astype(np.float32)


def sample(photo: np.ndarray, tf: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """photo sampled at ``tf * (x, y)`` for every pixel of an array of ``shape`` (cubic spline)."""
    from scipy.ndimage import map_coordinates

    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    a = np.asarray(tf, dtype=np.float64)
    px = a[0, 0] * xs + a[0, 1] * ys + a[0, 2]
    py = a[1, 0] * xs + a[1, 1] * ys + a[1, 2]
    return map_coordinates(photo, [py, px], order=3, mode="mirror").astype(np.float32)


def grid_tiles(photo: np.ndarray, rows: int = 3, cols: int = 3, *, overlap: float = 0.15,
               tile: Optional[int] = None, jitter: float = 20.0, max_rotation: float = 0.5,
               noise: float = 0.01, vignetting: float = 0.3, dtype: DTypeLike = np.uint16,
               seed: int = 0
               ) -> Tuple[Dict[Tuple[int, int], np.ndarray], Dict[Tuple[int, int], Affine]]:
    """Cut ``photo`` into a rows x cols grid of square tiles with known transforms.

    Each tile is placed at its nominal grid position (``overlap`` of its width
    shared with each neighbour) plus a random jitter of up to ``jitter`` pixels
    in x and y and a rotation of up to ``max_rotation`` degrees about its
    centre; then vignetting (brightness falling by ``vignetting`` at the
    corners), Gaussian noise (standard deviation ``noise`` of the range) and
    conversion to ``dtype`` (integers scale [0, 1] to the full range).

    Returns
    -------
    tiles : dict
        ``{(row, col): array}``.
    truth : dict
        ``{(row, col): Affine}`` mapping tile pixel (x, y) to photograph (x, y).
    """
    rng = np.random.default_rng(seed)
    H, W = photo.shape
    margin = jitter + 4
    if tile is None:
        avail = min((W - 2 * margin) / (cols - (cols - 1) * overlap),
                    (H - 2 * margin) / (rows - (rows - 1) * overlap))
        tile = int(avail * (1 - np.radians(max_rotation))) // 2 * 2
    if tile < 64:
        raise ValueError(f"the photograph ({W}x{H}) is too small for a {rows}x{cols} grid")
    step = tile * (1 - overlap)
    ys, xs = np.mgrid[0:tile, 0:tile]
    r2 = ((xs - tile / 2) ** 2 + (ys - tile / 2) ** 2) / (tile * tile / 2)
    vignette = (1 - vignetting * r2).astype(np.float32)
    tiles, truth = {}, {}
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "ui" else None
    for r in range(rows):
        for c in range(cols):
            centre = (tile - 1) / 2
            origin = np.array([margin + c * step, margin + r * step]) + rng.uniform(-jitter, jitter, 2)
            phi = np.radians(rng.uniform(-max_rotation, max_rotation))
            tf = (Affine.translator(origin + centre) @ Affine.rotator(phi)
                  @ Affine.translator((-centre, -centre)))
            img = sample(photo, tf, (tile, tile)) * vignette
            img = img + rng.normal(0, noise, img.shape).astype(np.float32)
            if info is not None:
                img = np.rint(np.clip(img, 0, 1) * info.max).astype(dtype)
            else:
                img = img.astype(dtype)
            tiles[(r, c)] = img
            truth[(r, c)] = tf
    return tiles, truth


def registration_error(found: Mapping, truth: Mapping, sizes: Mapping) -> Dict[str, float]:
    """RMS and max distance (pixels) of tile corners, found vs true, after
    removing the best global affine map between the two (the gauge).

    ``found[t]`` and ``truth[t]`` map tile pixels to their own model spaces;
    ``sizes[t]`` is (width, height).
    """
    found_corners, true_corners = [], []
    for t, tf in truth.items():
        w, h = sizes[t]
        corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], float).T
        found_corners.append((Affine(found[t]) * corners).T)
        true_corners.append((Affine(tf) * corners).T)
    A, B = np.concatenate(found_corners), np.concatenate(true_corners)
    X = np.column_stack([A, np.ones(len(A))])
    coef, *_ = np.linalg.lstsq(X, B, rcond=None)
    d = np.hypot(*(X @ coef - B).T)
    return {"rms": float(np.sqrt(np.mean(d ** 2))), "max": float(d.max())}


def nonrigid_motion(t: int, frames: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """v(y, x) of frame t of ``nonrigid_movie`` (frame(y) = reference(y + v(y))), (..., 2): a
    global drift up to ~3 px plus three Gaussian bumps of displacement (sigma 70-90 px,
    1.5-2.5 px) drifting over the movie."""
    s = t / max(frames - 1, 1)
    drift = (2.5 * np.sin(2 * np.pi * s) + 0.3, -2.0 * np.cos(1.4 * np.pi * s) + 1.1)
    bumps = [((150, 160), (60, 40), 80, (2.5, -2.0)),
             ((360, 340), (-50, 30), 90, (-2.0, 2.5)),
             ((280, 120), (20, 80), 70, (1.5, 1.8))]

    def v(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        out = [np.full(y.shape, drift[0]), np.full(x.shape, drift[1])]
        for (cy, cx), (vy, vx), sig, (ay, ax) in bumps:
            w = np.exp(-((y - cy - vy * s) ** 2 + (x - cx - vx * s) ** 2) / (2 * sig ** 2))
            w *= 0.6 + 0.4 * np.cos(2 * np.pi * s + cy)
            out[0] = out[0] + ay * w
            out[1] = out[1] + ax * w
        return np.stack(out, -1)
    return v


def nonrigid_movie(frames: int, noise: float = 0.02, seed: int = 0,
                   dtype: DTypeLike = np.float32) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-image's camera photograph (512 x 512) moved per frame by known smooth non-rigid
    motion (``nonrigid_motion``); frames made by cubic interpolation
    (scipy.ndimage.map_coordinates), noise ``noise`` of the range (needs the ``demo`` extra).

    Returns (reference float32, movie (T, 512, 512) of ``dtype`` (integer dtypes rounded and
    clipped), true registered fields (T, 512, 512, 2) float32). The true field d maps reference
    coordinates to frame coordinates, frame(x + d(x)) = reference(x), i.e. the fixed point
    d(x) = -v(x + d(x)).
    """
    try:
        from skimage import data
    except ImportError:
        raise ImportError("the demo data need scikit-image: pip install 'spectralign-fast[demo]'") from None
    from scipy.ndimage import map_coordinates

    ref = data.camera().astype(np.float64)
    y, x = np.mgrid[0:ref.shape[0], 0:ref.shape[1]].astype(np.float64)
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    movie = np.empty((frames,) + ref.shape, dt)
    truth = np.empty((frames,) + ref.shape + (2,), np.float32)
    for t in range(frames):
        v = nonrigid_motion(t, frames)
        vv = v(y, x)
        f = map_coordinates(ref, [y + vv[..., 0], x + vv[..., 1]], order=3, mode="nearest")
        f = f + rng.normal(0, noise * np.ptp(ref), f.shape)
        if np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            f = np.clip(np.rint(f), info.min, info.max)
        movie[t] = f
        d = -vv
        for _ in range(8):  # contraction ~0.05 per step
            d = -v(y + d[..., 0], x + d[..., 1])
        truth[t] = d
    return ref.astype(np.float32), movie, truth
