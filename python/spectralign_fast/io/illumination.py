"""Uneven illumination (vignetting) estimated from the tiles themselves, and its correction.

A microscope's field is brighter in the middle than at the edges, so every
tile of a montage carries the same smooth multiplicative shading (the flat
field F) and the camera adds an offset (the dark field D):
``tile = D + F * true``. Left alone the shading shows as a grid pattern
(seams) in the montage and biases matches in the overlaps.

Estimate (``estimate_illumination``): every tile is block-averaged to at most
``grid`` x ``grid`` pixels (shading is smooth; this also bounds memory), then

- flat field: the per-pixel median over the tiles, each first divided by its
  own mean (a robust median of normalised tiles: tissue differs from tile to
  tile, the shading does not, and the median ignores the tiles where a bright
  structure happens to sit), then a smooth surface fitted to it: a 2-D
  polynomial (degree 4 by default) by iteratively reweighted least squares,
  so content the median left behind is down-weighted and the edges, where
  the shading is strongest, are not flattened the way a Gaussian blur
  flattens them; scaled to mean 1;
- dark field: given, not estimated (a number, the camera's offset, or an
  array such as a dark frame or BaSiC's profile). Estimating it from the
  tiles needs the content's statistics to be the same at every position in
  the tile: the median M = d + c F gives d as an intercept, which a 5 %
  content bias in F moves by thousands of counts (on our test slides it
  came out 0 for a true offset of 3000), so we do not offer it.

Refinement from the overlaps (``refine_illumination``, what ``montage``'s
``flatfield="auto"`` does once the tiles are placed): where two tiles
overlap they image the same tissue, so ``log I_a(p) - log I_b(q) = f(p) -
f(q)`` with f = log F, whatever the content. A polynomial f fitted to these
differences (robustly, with a weak pull toward the first estimate for
directions the overlaps do not see) corrects what the median estimate got
wrong where the tissue itself is brighter on one side of every tile, which
the median cannot tell from shading; seams are exactly these differences.

Why not BaSiC itself (basicpy): it brings JAX and an iterative low-rank
fit; the median estimate reads each tile once at low resolution, and in
tests/test_slides.py it cut the seam contrast of a vignetted slide by more
than the 5x the issue asks for.

Correction: ``(tile - D) / F``, in float32, returned in the tile's dtype
(integers rounded and clipped to their range).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from .pyramid import downsample

_MIN_TILES = 4


@dataclass(frozen=True)
class Illumination:
    """A flat field and a dark field for tiles of one shape and channel.

    Attributes
    ----------
    flatfield : (H, W) float32 array
        Multiplicative shading, mean 1.
    darkfield : (H, W) float32 array
        Additive offset (zeros unless estimated or given).
    method : str
        How they were obtained ("median of normalised tiles", "given", ...).
    """

    flatfield: np.ndarray
    darkfield: np.ndarray
    method: str = "given"

    @classmethod
    def given(cls, flatfield: Any, darkfield: Any = None, *, shape: Optional[Tuple[int, int]] = None) -> "Illumination":
        """Check user-supplied fields: finite, positive flat field, matching shapes."""
        f = np.asarray(flatfield, dtype=np.float32)
        if f.ndim != 2:
            raise ValueError(f"flatfield must be a 2-D (rows, cols) array, got shape {f.shape}")
        if shape is not None and f.shape != tuple(shape):
            raise ValueError(f"flatfield has shape {f.shape} but the tiles are {tuple(shape)}")
        if not np.isfinite(f).all() or (f <= 0).any():
            raise ValueError("flatfield must be finite and positive everywhere")
        d = np.zeros_like(f) if darkfield is None else np.asarray(darkfield, dtype=np.float32)
        if d.ndim == 0:
            d = np.full_like(f, float(d))
        if d.shape != f.shape or not np.isfinite(d).all():
            raise ValueError(f"darkfield must be a number or a finite array of the flatfield's shape {f.shape}, "
                             f"got shape {d.shape}")
        return cls(f.copy(), d.copy(), "given")

    def correct(self, tile: Any) -> np.ndarray:
        """``(tile - darkfield) / flatfield`` in the tile's dtype (integers rounded, clipped)."""
        arr = np.asarray(tile)
        if arr.shape != self.flatfield.shape:
            raise ValueError(f"a tile of shape {arr.shape} cannot be corrected with a flat field of shape "
                             f"{self.flatfield.shape}")
        out = (arr.astype(np.float32) - self.darkfield) / self.flatfield
        if arr.dtype.kind in "ui":
            info = np.iinfo(arr.dtype)
            return np.clip(np.rint(out), info.min, info.max).astype(arr.dtype)
        return out.astype(arr.dtype, copy=False)


def estimate_illumination(tiles: Sequence[Any], *, darkfield: Any = None, grid: int = 128,
                          degree: int = 4, max_tiles: int = 400) -> Illumination:
    """Estimate the flat field (and a constant dark field) from a set of tiles.

    Parameters
    ----------
    tiles : sequence of (H, W) arrays or callables returning them
        Tiles of one channel, all the same shape (row, col). At least 4;
        a few dozen give a clean estimate (more with sparse samples).
    darkfield : number or (H, W) array, optional
        The camera's dark field (offset), subtracted before estimating and
        when correcting; not estimated (see the module notes). Default 0.
    grid : int
        Tiles are block-averaged to at most this many pixels per side first.
    degree : int
        Degree of the fitted polynomial surface (1 to 8).
    max_tiles : int
        At most this many tiles are read, evenly spread over the sequence.

    Returns
    -------
    Illumination
    """
    n = len(tiles)
    if n < _MIN_TILES:
        raise ValueError(f"estimating the illumination needs at least {_MIN_TILES} tiles, got {n}; pass a "
                         f"flat field array instead (or flatfield=None)")
    if not isinstance(degree, (int, np.integer)) or not 1 <= degree <= 8:
        raise ValueError(f"degree must be an integer from 1 to 8, got {degree!r}")
    pick = np.unique(np.linspace(0, n - 1, min(n, int(max_tiles))).round().astype(int))
    small, shape = [], None
    factor = 1
    for k in pick:
        src = tiles[int(k)]
        arr = np.asarray(src() if callable(src) else src)
        if arr.ndim != 2:
            raise ValueError(f"tile {int(k)} has shape {arr.shape}; tiles must be 2-D")
        if shape is None:
            shape = arr.shape
            factor = max(1, int(np.ceil(max(shape) / grid)))
            dark = _dark(darkfield, shape)
        elif arr.shape != shape:
            raise ValueError(f"tile {int(k)} has shape {arr.shape}, the first {shape}: one flat field needs one "
                             f"tile shape")
        a = arr.astype(np.float32)
        if not np.isfinite(a).all():
            raise ValueError(f"tile {int(k)} contains NaN or inf")
        small.append(downsample(a - dark, factor))
    assert shape is not None
    stack = np.stack(small)
    means = stack.mean(axis=(1, 2))
    if (means <= 0).any():
        raise ValueError("some tiles are black (mean <= 0 after the dark field); the flat field cannot be "
                         "estimated from them")
    surface = _Surface(stack.shape[1:], shape, factor, int(degree))
    flat = surface.evaluate(surface.coef(np.median(stack / means[:, None, None], axis=0)))
    method = f"median of normalised tiles, degree-{degree} surface"
    flat /= flat.mean()
    if not (flat > 0).all():
        raise ValueError("the estimated flat field is not positive everywhere (tiles without content?); "
                         "pass one instead")
    return Illumination(flat.astype(np.float32), dark.astype(np.float32), method)


def _dark(darkfield: Any, shape: Tuple[int, int]) -> np.ndarray:
    if darkfield is None:
        return np.zeros(shape, np.float32)
    d = np.asarray(darkfield, dtype=np.float32)
    if d.ndim == 0:
        d = np.full(shape, float(d), np.float32)
    if d.shape != tuple(shape) or not np.isfinite(d).all():
        raise ValueError(f"darkfield must be a finite number or a (rows, cols) array of the tiles' shape {shape}, "
                         f"got shape {d.shape}")
    return d


class _Surface:
    """A 2-D polynomial surface fitted on the block-averaged grid, evaluated at tile pixels.

    Coordinates are scaled to [-1, 1] over the tile (Legendre-like conditioning with plain
    monomials is enough up to degree 8); fits are iteratively reweighted (Tukey's biweight).
    """

    def __init__(self, small: Tuple[int, int], shape: Tuple[int, int], factor: int, degree: int) -> None:
        self.shape, self.degree = shape, degree
        h, w = shape
        # Block (i, j) centres in tile pixels, then in [-1, 1].
        ys = (factor * np.arange(small[0]) + (factor - 1) / 2) / max(h - 1, 1) * 2 - 1
        xs = (factor * np.arange(small[1]) + (factor - 1) / 2) / max(w - 1, 1) * 2 - 1
        yy, xx = np.meshgrid(np.clip(ys, -1, 1), np.clip(xs, -1, 1), indexing="ij")
        self.terms = [(a, b) for a in range(degree + 1) for b in range(degree + 1 - a)]
        self.design = np.stack([xx.ravel() ** a * yy.ravel() ** b for a, b in self.terms], axis=1)

    def coef(self, values: np.ndarray) -> np.ndarray:
        v = values.ravel().astype(np.float64)
        wts = np.ones_like(v)
        c: np.ndarray = np.zeros(len(self.terms))
        for _ in range(8):
            sw = np.sqrt(wts)
            c = np.linalg.lstsq(self.design * sw[:, None], v * sw, rcond=None)[0]
            r = v - self.design @ c
            scale = 4.685 * 1.4826 * max(float(np.median(np.abs(r))), 1e-12)
            u = np.minimum(np.abs(r) / scale, 1.0)
            wts = (1 - u ** 2) ** 2 + 1e-6
        return c

    def fit(self, values: np.ndarray) -> np.ndarray:
        return (self.design @ self.coef(values)).reshape(values.shape)

    def evaluate(self, c: np.ndarray) -> np.ndarray:
        h, w = self.shape
        y = np.linspace(-1, 1, h)[:, None]
        x = np.linspace(-1, 1, w)[None, :]
        out = np.zeros((h, w))
        for (a, b), k in zip(self.terms, c):
            out += k * (x ** a) * (y ** b)
        return out


def refine_illumination(illumination: Illumination, tiles: Mapping[Any, Callable[[], Any]],
                        transforms: Mapping[Any, Any], pairs: Sequence[Tuple[Any, Any]], *, degree: int = 4,
                        max_pairs: int = 200, step: int = 4, ridge: float = 1e-3) -> Illumination:
    """Correct a flat field with the intensity ratios of placed, overlapping tiles (see module notes).

    Parameters
    ----------
    illumination : Illumination
        The first estimate; ``tiles`` are corrected by it before comparing.
    tiles : dict
        ``{tile: loader}`` of raw tiles (row, col) of one channel.
    transforms : dict
        ``{tile: 2x3 affine}`` mapping tile pixel (x, y) to model space (the placement).
    pairs : sequence of (tile a, tile b)
        Overlapping tiles to compare (at most ``max_pairs`` are used, evenly spread).
    degree : int
        Degree of the polynomial log-shading correction.
    step : int
        Sampling step (pixels) in each overlap.
    ridge : float
        Weight pulling the correction toward none (keeps unseen directions at the first estimate).

    Returns
    -------
    Illumination
        Same dark field; flat field = first estimate x correction, mean 1. The first
        estimate unchanged when the overlaps give too few samples (< 200).
    """
    flat0, dark = illumination.flatfield, illumination.darkfield
    h, w = flat0.shape
    terms = [(a, b) for a in range(degree + 1) for b in range(degree + 1 - a) if a + b > 0]

    def basis(pts: np.ndarray) -> np.ndarray:
        x = pts[0] / max(w - 1, 1) * 2 - 1
        y = pts[1] / max(h - 1, 1) * 2 - 1
        return np.stack([x ** a * y ** b for a, b in terms], axis=1)

    use = list(pairs)
    if len(use) > max_pairs:
        use = [use[int(k)] for k in np.linspace(0, len(use) - 1, max_pairs).round()]
    cache: dict = {}

    def corrected(t: Any) -> np.ndarray:
        if t not in cache:
            raw = np.asarray(tiles[t]()).astype(np.float32)
            # A light blur: matched pixels then agree despite noise and subpixel placement error.
            cache[t] = ndimage.gaussian_filter((raw - dark) / flat0, 1.5)
        return cache[t]

    ys, xs = np.mgrid[step // 2:h:step, step // 2:w:step]
    pa = np.stack([xs.ravel(), ys.ravel()]).astype(np.float64)
    rows, rhs = [], []
    for a, b in use:
        ta, tb = np.asarray(transforms[a], float), np.asarray(transforms[b], float)
        rel = np.linalg.solve(np.vstack([tb, [0, 0, 1]]), np.vstack([ta, [0, 0, 1]]))[:2]
        pb = rel[:, :2] @ pa + rel[:, 2:]
        margin = 3.0
        ok = np.all((pb >= margin) & (pb <= np.array([[w - 1 - margin], [h - 1 - margin]])), axis=0)
        if ok.sum() < 20:
            continue
        va = corrected(a)[pa[1, ok].astype(int), pa[0, ok].astype(int)]
        vb = ndimage.map_coordinates(corrected(b), [pb[1, ok], pb[0, ok]], order=1)
        bright = (va > 0) & (vb > 0)
        if bright.sum() < 20:
            continue
        floor = np.quantile(np.concatenate([va[bright], vb[bright]]), 0.2)
        good = bright & (va > floor) & (vb > floor)
        rows.append(basis(pa[:, ok][:, good]) - basis(pb[:, ok][:, good]))
        rhs.append(np.log(va[good]) - np.log(vb[good]))
    if not rows or sum(len(r) for r in rhs) < 200:
        return illumination
    A, y = np.concatenate(rows), np.concatenate(rhs)
    reg = np.sqrt(ridge * len(y)) * np.eye(len(terms))
    wts = np.ones(len(y))
    c: np.ndarray = np.zeros(len(terms))
    for _ in range(6):
        sw = np.sqrt(wts)
        c = np.linalg.lstsq(np.vstack([A * sw[:, None], reg]), np.concatenate([y * sw, np.zeros(len(terms))]),
                            rcond=None)[0]
        r = y - A @ c
        scale = 4.685 * 1.4826 * max(float(np.median(np.abs(r))), 1e-9)
        u = np.minimum(np.abs(r) / scale, 1.0)
        wts = (1 - u ** 2) ** 2 + 1e-6
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float64)
    pts = np.stack([gx.ravel(), gy.ravel()])
    corr = np.exp(basis(pts) @ c).reshape(h, w)
    flat = flat0 * corr
    flat /= flat.mean()
    return Illumination(flat.astype(np.float32), dark.copy(), illumination.method + ", refined from tile overlaps")
