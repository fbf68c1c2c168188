"""Pictures of a registration result: the deformed grid over the registered image (PNG).

Like DIPY's ``plot_diffeomorphic_map``: a regular grid on the static image, every line moved
by the displacement (shown in the static grid's index coordinates, so the lines bend where
the moving image had to be stretched or squeezed), drawn over the moving image resampled
onto the static grid, beside the static image and the moving image before the deformation.
Drawn with a ``matplotlib.figure.Figure`` on an Agg canvas, never pyplot.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from .._validate import as_int
from ..io.atomic import write_atomically
from ..io.formats import matching_suffix
from .diffeomorphic_map import DiffeomorphicMap

__all__ = ["deformed_grid_lines", "deformation_report"]


def deformed_grid_lines(mapping: DiffeomorphicMap, *, spacing: int = 16, axis: int = 0,
                        index: Optional[int] = None, samples: int = 4) -> list[np.ndarray]:
    """The lines of a regular grid on the static (domain) grid, moved by the displacement.

    Each line is an ``(n, 2)`` array of static-grid index coordinates in array order
    (row, col) of the picture plane; a static point ``x`` is drawn at ``x + b(x)`` with ``b``
    the displacement ``transform`` uses, converted to static indices. In 3-D the picture is
    the plane ``index`` (default the middle) across ``axis``, showing the in-plane part.
    """
    spacing = as_int(spacing, "spacing", minimum=2)
    shape = tuple(mapping.domain_shape)
    d = mapping.dim
    plane_axes = [a for a in range(d) if d == 2 or a != axis]
    if d == 3:
        index = shape[axis] // 2 if index is None else as_int(index, "index", minimum=0, maximum=shape[axis] - 1)
    g2w = np.eye(d + 1) if mapping.domain_grid2world is None else mapping.domain_grid2world
    w2g = np.linalg.inv(g2w)
    rows, cols = (shape[a] for a in plane_axes)
    # The displacement alone (no pre-alignment), shown in static indices.
    field_map = mapping.shallow_copy()
    field_map.prealign = field_map.prealign_inv = None
    lines = []
    for fixed_axis, count, length in ((0, rows, cols), (1, cols, rows)):
        for pos in range(0, count, spacing):
            t = np.linspace(0, length - 1, max(2, (length - 1) * samples // spacing + 1))
            pts2 = np.zeros((len(t), 2))
            pts2[:, fixed_axis] = pos
            pts2[:, 1 - fixed_axis] = t
            idx = np.zeros((len(t), d))
            idx[:, plane_axes[0]] = pts2[:, 0]
            idx[:, plane_axes[1]] = pts2[:, 1]
            if d == 3:
                idx[:, axis] = index
            world = idx @ g2w[:d, :d].T + g2w[:d, d]
            moved = field_map.transform_points(world)
            moved_idx = moved @ w2g[:d, :d].T + w2g[:d, d]
            lines.append(moved_idx[:, plane_axes])
    return lines


def _plane(image: np.ndarray, axis: int, index: Optional[int]) -> np.ndarray:
    if image.ndim == 2:
        return image
    i = image.shape[axis] // 2 if index is None else index
    return np.take(image, i, axis=axis)


def deformation_report(path: str | os.PathLike, mapping: DiffeomorphicMap, static: Any, moving: Any, *,
                       spacing: int = 16, axis: int = 0, index: Optional[int] = None,
                       title: Optional[str] = None, overwrite: bool = True, dpi: int = 100) -> Path:
    """Write a three-panel PNG: static; moving after the affine only; moving registered, with
    the deformed grid over it.

    Parameters
    ----------
    path : str or PathLike
        Ends in ``.png``; written atomically.
    mapping : DiffeomorphicMap
        A registration result (``SymmetricDiffeomorphicRegistration.optimize``).
    static, moving : array_like
        The images it registered (array axis order).
    spacing : int
        Grid spacing in static pixels (default 16).
    axis, index : int
        In 3-D, the plane shown: ``index`` (default the middle) across array ``axis``.
    title : str, optional
        A figure title.
    overwrite : bool
        Replace an existing file (default True).
    dpi : int
        Resolution.

    Returns
    -------
    Path
        The file written.
    """
    p = Path(path)
    matching_suffix(p, (".png",), "deformation report")
    static_arr = np.asarray(static, dtype=np.float32)
    affine_only = mapping.shallow_copy()
    affine_only.forward = np.zeros_like(mapping.get_forward_field())
    affine_only.backward = np.zeros_like(mapping.get_backward_field())
    before = affine_only.transform(moving)
    after = mapping.transform(moving)
    lines = deformed_grid_lines(mapping, spacing=spacing, axis=axis, index=index)
    panels = [(_plane(static_arr, axis, index), "static"),
              (_plane(before, axis, index), "moving, affine only"),
              (_plane(after, axis, index), "moving registered, deformed grid")]
    fig = Figure(figsize=(15, 5.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    for ax, (img, label) in zip(axes, panels):
        lo, hi = np.percentile(img, [0.5, 99.5])
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
        ax.set_title(label, fontsize=10)
        ax.set_axis_off()
    axes[2].add_collection(LineCollection([ln[:, ::-1] for ln in lines], colors="#ff6a00", linewidths=0.6))
    jac = mapping.jacobian_determinant()
    fig.suptitle((title + "\n" if title else "") +
                 f"Jacobian determinant {float(jac.min()):.3f} .. {float(jac.max()):.3f}", fontsize=10)
    fig.set_layout_engine("constrained")

    def write(tmp: str) -> None:
        fig.savefig(tmp, format="png", dpi=int(dpi))

    return write_atomically(p, write, overwrite=overwrite)
