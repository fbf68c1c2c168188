"""A visual report of a montage: tile outlines, match residuals and an SNR map (PNG).

Drawn with a ``matplotlib.figure.Figure`` on an Agg canvas, never pyplot,
so it needs no display and is safe to call from several threads.

Coordinates: everything is in model space, points as (x, y) = (column, row),
y pointing down as in the images.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Hashable, Mapping, Optional, Sequence, Tuple

import numpy as np

from ._validate import as_float, as_point, as_points
from .io.atomic import write_atomically
from .io.formats import matching_suffix
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

_MAX_LABELS = 400  # more tile labels than this would cover the montage


def residual_factor(residuals: Any, span: float, *, fraction: float = 0.05) -> float:
    """How much to magnify residual vectors so they are visible.

    The 95th percentile of the residual lengths is scaled to about
    ``fraction`` of ``span`` (the montage's larger side, in model pixels) and
    the factor rounded down to 1, 2 or 5 times a power of ten, so the legend
    reads e.g. "residuals x 200". No residuals, or all zero: 1.
    """
    res = as_points(residuals, "residuals")
    span = as_float(span, "span")
    if res.shape[0] == 0 or span <= 0:
        return 1.0
    r95 = float(np.percentile(np.hypot(res[:, 0], res[:, 1]), 95))
    if r95 <= 0:
        return 1.0
    raw = fraction * span / r95
    exp = math.floor(math.log10(raw))
    for m in (5, 2, 1):
        if m * 10.0**exp <= raw:
            return m * 10.0**exp
    return 10.0**exp  # pragma: no cover - m = 1 always fits


def _format_factor(f: float) -> str:
    return f"{f:.0f}" if f >= 1 else f"{f:g}"


def montage_report(path: str | os.PathLike, *, image: Any, scale: Any, origin: Any,
                   tile_outlines: Mapping[Hashable, Any], points: Any, residuals: Any, snr: Any,
                   title: Optional[str] = None, overwrite: bool = True,
                   figsize: Tuple[float, float] = (16.0, 8.0), dpi: int = 100) -> Path:
    """Write a two-panel PNG report of a montage.

    Parameters
    ----------
    path : str or PathLike
        Ends in ``.png``.
    image : (h, w) array
        The montage, downsampled (any real dtype; shown in grey with a 0.5 -
        99.5 percentile stretch), indexed (row, col).
    scale : float
        Model pixels per image pixel (e.g. 16 for a montage shrunk 16 times).
    origin : (x, y)
        Model point of the centre of image pixel (0, 0).
    tile_outlines : dict
        ``{tile: (4, 2) corners}`` in model (x, y), in order around the
        tile (e.g. ``Renderer`` tile corners). Drawn and labelled (labels
        only up to 400 tiles).
    points : (N, 2)
        Model (x, y) of each match.
    residuals : (N, 2)
        Residual (dx, dy) of each match in model pixels (e.g. from
        ``Placement.residuals``): drawn as arrows from the point, magnified by
        ``residual_factor``; the legend gives the factor.
    snr : (N,)
        Signal-to-noise ratio of each match: the second panel colours the
        points by it.
    title : str, optional
    overwrite : bool
        Replace an existing file (default True; the report is cheap to redo).
    figsize : (width, height)
        Figure size in inches; the PNG is ``figsize * dpi`` pixels (default
        1600 x 800).
    dpi : int
        Pixels per inch.

    Returns
    -------
    Path
        The PNG, written under a temporary name and renamed when complete.
    """
    p = Path(path)
    matching_suffix(p, (".png",), "report")
    img = np.asarray(image)
    if img.ndim != 2 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"image must be a non-empty 2-D (height, width) array, got shape {img.shape}")
    if img.dtype.kind not in "uif" or img.dtype.itemsize > 8:
        raise TypeError(f"image must hold real numbers, got dtype {img.dtype}")
    img = img.astype(np.float32)
    if not np.isfinite(img).all():
        raise ValueError("image contains NaN or inf values; replace them first (e.g. numpy.nan_to_num)")
    s = as_float(scale, "scale")
    if s <= 0:
        raise ValueError(f"scale (model pixels per image pixel) must be positive, got {s}")
    ox, oy = as_point(origin, "origin")
    if not isinstance(tile_outlines, Mapping):
        raise TypeError("tile_outlines must be a dict {tile: (4, 2) corner array in model (x, y)}")
    outlines = {}
    for tile, corners in tile_outlines.items():
        c = as_points(corners, f"tile_outlines[{tile!r}]")
        if c.shape != (4, 2):
            raise ValueError(f"tile_outlines[{tile!r}] must be 4 (x, y) corners, got shape {c.shape}")
        outlines[tile] = c
    pts = as_points(points, "points")
    res = as_points(residuals, "residuals")
    snr_arr = np.array(snr, dtype=np.float64).ravel() if np.size(snr) else np.zeros(0)
    if not (len(pts) == len(res) == len(snr_arr)):
        raise ValueError(f"points, residuals and snr must have one row per match; got "
                         f"{len(pts)}, {len(res)} and {len(snr_arr)}")
    if not np.isfinite(snr_arr).all():
        raise ValueError("snr has NaN or inf values; drop those matches or replace the values")
    if isinstance(dpi, bool) or not isinstance(dpi, (int, np.integer)) or dpi < 10:
        raise ValueError(f"dpi must be an integer >= 10, got {dpi!r}")
    fw, fh = (as_float(v, "figsize") for v in figsize)
    if fw <= 0 or fh <= 0:
        raise ValueError(f"figsize must be positive (width, height) inches, got {figsize!r}")

    h, w = img.shape
    extent = (ox - 0.5 * s, ox + (w - 0.5) * s, oy + (h - 0.5) * s, oy - 0.5 * s)
    xs = [extent[0], extent[1]] + [c[:, 0].min() for c in outlines.values()] + \
         [c[:, 0].max() for c in outlines.values()]
    ys = [extent[3], extent[2]] + [c[:, 1].min() for c in outlines.values()] + \
         [c[:, 1].max() for c in outlines.values()]
    if len(pts):
        xs += [pts[:, 0].min(), pts[:, 0].max()]
        ys += [pts[:, 1].min(), pts[:, 1].max()]
    xlim, ylim = (min(xs), max(xs)), (max(ys), min(ys))  # y down
    span = max(xlim[1] - xlim[0], ylim[0] - ylim[1])
    factor = residual_factor(res, span)
    lo, hi = np.percentile(img, [0.5, 99.5])
    if hi <= lo:
        hi = lo + 1.0

    fig = Figure(figsize=(fw, fh), dpi=int(dpi))
    FigureCanvasAgg(fig)
    ax_m, ax_s = fig.subplots(1, 2)
    segs = [np.vstack([c, c[:1]]) for c in outlines.values()]
    lengths = np.hypot(res[:, 0], res[:, 1]) if len(res) else np.zeros(0)

    # Panel 1: montage, tile outlines, magnified residual vectors.
    ax_m.imshow(img, cmap="gray", vmin=lo, vmax=hi, extent=extent, interpolation="antialiased")
    ax_m.add_collection(LineCollection(segs, colors="#ffb000", linewidths=0.8))
    if len(outlines) <= _MAX_LABELS:
        size = max(4.0, min(9.0, 200.0 / max(1.0, math.sqrt(len(outlines)))))
        for tile, c in outlines.items():
            cx, cy = c.mean(axis=0)
            ax_m.text(cx, cy, str(tile), color="#ffb000", fontsize=size, ha="center", va="center")
    if len(pts):
        ax_m.quiver(pts[:, 0], pts[:, 1], res[:, 0] * factor, res[:, 1] * factor, angles="xy",
                    scale_units="xy", scale=1.0, color="#ff2020", width=0.003)
    handles = [Line2D([], [], color="#ffb000", label=f"tile outlines ({len(outlines)})")]
    if len(pts):
        handles.append(Line2D([], [], color="#ff2020", marker=">",
                              label=f"residuals x {_format_factor(factor)}"))
    ax_m.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.8)
    if len(pts):
        sub = (f"{len(pts)} matches, residual median {np.median(lengths):.3g}, "
               f"max {lengths.max():.3g} px")
    else:
        sub = "no matches"
    ax_m.set_title(f"Montage and residuals: {sub}", fontsize=10)

    # Panel 2: SNR of every match, on the same extent.
    ax_s.add_collection(LineCollection(segs, colors="0.6", linewidths=0.6))
    if len(pts):
        dot = max(2.0, min(30.0, 4000.0 / len(pts)))
        sc = ax_s.scatter(pts[:, 0], pts[:, 1], c=snr_arr, s=dot, cmap="viridis")
        # An inset keeps the colorbar beside the equal-aspect panel instead of the figure edge.
        fig.colorbar(sc, cax=ax_s.inset_axes([1.02, 0.0, 0.03, 1.0]), label="SNR")
        ax_s.set_title(f"Match SNR: median {np.median(snr_arr):.3g}, min {snr_arr.min():.3g}",
                       fontsize=10)
    else:
        ax_s.text(0.5, 0.5, "no matches", transform=ax_s.transAxes, ha="center", va="center")
        ax_s.set_title("Match SNR", fontsize=10)
    for ax in (ax_m, ax_s):
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect("equal")
        ax.set_xlabel("x (model pixels)")
        ax.set_ylabel("y (model pixels)")
    return _save(fig, p, title, overwrite=overwrite, dpi=dpi)


def slide_report(path: str | os.PathLike, *, flatfields: Mapping[str, Any], cycles: Sequence[Tuple[str, float, float]],
                 title: Optional[str] = None, overwrite: bool = True, dpi: int = 100) -> Path:
    """Write a PNG of a slide montage's illumination and cycle registration.

    Parameters
    ----------
    path : str or PathLike
        Ends in ``.png``.
    flatfields : dict
        ``{label: (H, W) flat field}`` (mean 1), one panel each (up to 8), row 0 at the top.
    cycles : sequence of (label, rms, max)
        Per later cycle: residual RMS and max (pixels) of its tiles against the first cycle.
    """
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ValueError(f"the report is a PNG: give a path ending in .png, got {p.name!r}")
    items = list(flatfields.items())[:8]
    n = len(items) + 1
    fig = Figure(figsize=(3.2 * n, 3.4))
    axes = fig.subplots(1, n)
    for ax, (label, flat) in zip(axes, items):
        f = np.asarray(flat, dtype=np.float64)
        im = ax.imshow(f, cmap="magma", vmin=min(0.5, float(f.min())), vmax=max(1.2, float(f.max())))
        ax.set_title(f"flat field {label}\n{f.min():.2f} - {f.max():.2f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, cax=ax.inset_axes([1.03, 0.0, 0.05, 1.0]))
    ax = axes[-1]
    if cycles:
        names = [c[0] for c in cycles]
        x = np.arange(len(cycles))
        ax.bar(x - 0.2, [c[1] for c in cycles], 0.4, label="RMS")
        ax.bar(x + 0.2, [c[2] for c in cycles], 0.4, label="max")
        ax.set_xticks(x, names, fontsize=8)
        ax.set_ylabel("pixels")
        ax.legend(fontsize=8)
        ax.set_title("cycles against cycle 1", fontsize=9)
    else:
        ax.text(0.5, 0.5, "one cycle", transform=ax.transAxes, ha="center", va="center")
        ax.set_axis_off()
    return _save(fig, p, title, overwrite=overwrite, dpi=dpi)


def _save(fig: Figure, p: Path, title: Optional[str], *, overwrite: bool, dpi: int) -> Path:
    """Title, constrained layout, and the PNG written atomically."""
    if title is not None:
        fig.suptitle(str(title))
    fig.set_layout_engine("constrained")

    def write(tmp: str) -> None:
        fig.savefig(tmp, format="png", dpi=int(dpi))

    return write_atomically(p, write, overwrite=overwrite)
