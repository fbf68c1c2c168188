"""Helpers shared by the worked examples: test images, overlays, figure output.

Kept apart so that each example script reads as the alignment steps alone.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from spectralign_fast import Affine
from spectralign_fast.io.atomic import write_atomically

YFP_TILES = ("C2-20250523_montage_YFP_ideal_02.jpg", "C2-20250523_montage_YFP_ideal_03.jpg")


def find_yfp(explicit: str | None = None) -> Path | None:
    """The folder with the two shared YFP tiles: ``explicit`` (--data) if given, else
    $SPECTRALIGN_SHARED_DATA or ../shared/data beside the project (as tests/conftest.py finds
    it); None if the tiles are not there."""
    here = Path(__file__).resolve().parents[1]
    if explicit:
        candidates = [Path(explicit)]
    elif os.environ.get("SPECTRALIGN_SHARED_DATA"):
        candidates = [Path(os.environ["SPECTRALIGN_SHARED_DATA"])]
    else:
        candidates = [here.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for c in candidates:
        if all((c / t).is_file() for t in YFP_TILES):
            return c
    return None


def photograph() -> np.ndarray:
    """scikit-image's bundled retina photograph (1411 x 1411): its green channel, where the
    blood vessels show best, as float32 in [0, 1]."""
    from skimage import data

    return (data.retina()[..., 1] / 255.0).astype(np.float32)


def cut_tile(photo: np.ndarray, to_photo: Affine, size: tuple[int, int]) -> np.ndarray:
    """A (W, H) tile whose pixel p = (x, y) shows the photograph at ``to_photo * p``.

    Cubic-spline resampling with SciPy, independent of spectralign_fast's own warps, so
    the examples check the library against a truth it did not make.
    """
    from scipy import ndimage

    w, h = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    src = np.asarray(to_photo) @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    out = ndimage.map_coordinates(photo.astype(np.float64), [src[1], src[0]], order=3, mode="reflect")
    return out.reshape(h, w).astype(np.float32)


def tile_grid(size: tuple[int, int], step: float = 32) -> np.ndarray:
    """Points (x, y) of shape (2, N) spread over a tile, for comparing transforms."""
    w, h = size
    xs, ys = np.meshgrid(np.arange(0, w, step), np.arange(0, h, step))
    return np.stack([xs.ravel(), ys.ravel()]).astype(np.float64)


def transform_error(estimated: Affine, true: Affine, size: tuple[int, int]) -> tuple[float, float]:
    """RMS and max distance (pixels) between two tile-to-model transforms over the tile."""
    pts = tile_grid(size)
    d = Affine(estimated) * pts - Affine(true) * pts
    dist = np.hypot(d[0], d[1])
    return float(np.sqrt(np.mean(dist**2))), float(dist.max())


def stretch_limits(*images: np.ndarray) -> tuple[float, float]:
    values = np.concatenate([np.asarray(a, np.float32).ravel()[::7] for a in images])
    lo, hi = np.percentile(values, [1, 99.7])
    return float(lo), float(max(hi, lo + 1e-6))


def stereo(red: np.ndarray, green: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    """Red/green "stereo" overlay: yellow where the two agree, red or green fringes where not."""
    lo, hi = limits
    rgb = np.zeros(red.shape + (3,), np.float32)
    rgb[..., 0] = np.clip((red - lo) / (hi - lo), 0, 1)
    rgb[..., 1] = np.clip((green - lo) / (hi - lo), 0, 1)
    return rgb


def save_figure(fig, path: Path, dpi: int = 90) -> None:
    """Write a matplotlib Figure as PNG under a temporary name, renamed once complete."""
    write_atomically(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))


def report(**claims) -> None:
    """The example's numerical claims on one parseable line (tests/test_examples.py reads it)."""
    print("RESULT " + json.dumps(claims, sort_keys=True))
