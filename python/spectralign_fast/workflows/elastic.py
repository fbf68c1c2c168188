"""Elastic alignment of serial sections: a mesh per section, all solved jointly.

After the affine alignment of ``align_stack``, every section is rendered into
the shared canvas and matched to the next one on a dense grid of windows
(``match.flow``); each section gets the same regular triangle mesh over the
canvas, and the node displacements of all sections are solved at once
(``_core.place.solve_mesh``): match residuals through barycentric
interpolation, linear springs on every triangle edge and a weak pull toward
the affine solution. Coordinates: points are (x, y) = (column, row) in
canvas pixels; section z's mesh moves its affine-aligned point p to
p + v_z(p) in the output (a "push" map, inverted triangle by triangle for
rendering).

Why one linear solve: the match points are data in the push form, so the
match terms are linear in the node displacements; the affine stage has taken
out rotation and scale, so what is left is small against the mesh spacing
and springs on displacement differences are the linearisation of springs
with the section's own rest lengths (x and y decouple; one sparse Cholesky
factor solves both). What a single pass of flow leaves is the bias of its
windows (a window averages the deformation it spans); further passes match
the sections as rendered through the meshes found so far, where the
remaining flow is small, and solve again from all of them.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from .. import _core
from .._types import TileKey
from .._validate import as_float, as_int
from ..execute.base import Executor
from ..match.flow import SectionFlow
from ..match.pairs import MatchSettings
from ..render.elastic import ElasticRenderer
from ..render.renderer import Renderer, tile_corners


@dataclass
class ElasticResult:
    """The elastic meshes of ``align_stack(model="elastic")``.

    Attributes
    ----------
    spacing : float
        Mesh node pitch in canvas pixels.
    origin : (x, y)
        Canvas pixel of node (0, 0); node (r, c) rests at
        (x, y) = (origin_x + c * spacing, origin_y + r * spacing).
    displacement : ndarray (sections, ny, nx, 2)
        Node displacements (x, y): section z's affine-aligned point p lies
        at p + v_z(p) in the output, v_z interpolated barycentrically from
        the nodes (``to_output``; ``from_output`` inverts it).
    flows : list of SectionFlow
        The dense matches between each pair of neighbouring sections.
    affine_rms : ndarray (sections - 1,)
        RMS distance (px) of the kept flow matches of each pair after the
        affine alignment alone.
    residual_rms : ndarray (sections - 1,)
        The same after the elastic solve.
    inverted : ndarray (sections,)
        Inverted mesh triangles per section (0 everywhere for a valid result).
    stiffness, pull : float
        The spring and pull weights used (see ``align_stack``).
    solve : dict
        ``unknowns``, ``nonzeros``, ``solver`` ("cg": conjugate gradients with an
        incomplete-Cholesky preconditioner, or "cholmod"/"ldlt" when CG did
        not converge), ``cg_iterations`` and the seconds
        ``assemble_s``, ``factor_s``, ``solve_s`` of the sparse solve.
    timings : dict
        Seconds per stage: "render for matching", "flow", "solve".
    """

    spacing: float
    origin: Tuple[float, float]
    displacement: np.ndarray
    flows: List[SectionFlow]
    affine_rms: np.ndarray
    residual_rms: np.ndarray
    inverted: np.ndarray
    stiffness: float
    pull: float
    solve: Dict[str, Any] = field(default_factory=dict)
    timings: Dict[str, float] = field(default_factory=dict)

    def to_output(self, z: int, points: Any) -> np.ndarray:
        """Where section z's affine-aligned points (N, 2) (x, y) lie in the output: p + v_z(p)."""
        pts = _points(points)
        return pts + _core.place.mesh_interpolate(self.displacement[z], self.spacing, self.origin[0],
                                                  self.origin[1], pts)

    def from_output(self, z: int, points: Any) -> np.ndarray:
        """The affine-aligned points of section z shown at output points (N, 2) (x, y): the p with
        p + v_z(p) = q (exact where the mesh is not folded)."""
        return _core.place.mesh_inverse(self.displacement[z], self.spacing, self.origin[0], self.origin[1],
                                        _points(points))

    def __repr__(self) -> str:
        return (f"<ElasticResult {self.displacement.shape[0]} sections, mesh {self.displacement.shape[1]} x "
                f"{self.displacement.shape[2]} @ {self.spacing:g} px, flow RMS {np.mean(self.affine_rms):.2f} -> "
                f"{np.mean(self.residual_rms):.2f} px, {int(self.inverted.sum())} inverted triangles>")


def _points(points: Any) -> np.ndarray:
    pts = np.ascontiguousarray(np.asarray(points, dtype=np.float64))
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2) (x, y), got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("points must be finite")
    return pts


@dataclass(frozen=True)
class ElasticSettings:
    """The elastic options of ``align_stack``, checked."""

    spacing: float
    stiffness: float
    pull: float
    flow_size: int
    flow_step: float
    passes: int


def check_elastic(*, mesh_spacing: Any, stiffness: Any, pull: Any, flow_size: Any, flow_step: Any,
                  passes: Any) -> ElasticSettings:
    """Validated elastic settings (plain-language errors); flow defaults from the mesh spacing."""
    s = as_float(mesh_spacing, "mesh_spacing")
    if not s >= 4:
        raise ValueError(f"mesh_spacing is the distance (pixels) between mesh nodes: give at least 4, got {s}")
    k = as_float(stiffness, "stiffness")
    if not k >= 0:
        raise ValueError(f"stiffness must be zero or positive, got {k}")
    p = as_float(pull, "pull")
    if not p > 0:
        raise ValueError(f"pull must be positive (it keeps unmatched parts of a section at the affine "
                         f"solution), got {p}")
    size = max(32, 2 * int(round(s))) if flow_size is None else as_int(flow_size, "flow_size", minimum=16)
    step = s / 2 if flow_step is None else as_float(flow_step, "flow_step")
    if not step > 0:
        raise ValueError(f"flow_step must be positive (pixels between flow matches), got {step}")
    return ElasticSettings(s, k, p, size + size % 2, step, as_int(passes, "flow_passes", minimum=1, maximum=10))


def check_spacing(opts: ElasticSettings, extents: Sequence[Tuple[float, float]]) -> None:
    """ValueError naming the section when the mesh would have fewer than 2 cells across it
    (``extents``: (width, height) of each section in pixels)."""
    for z, (w, h) in enumerate(extents):
        if opts.spacing > min(w, h) / 2:
            raise ValueError(f"mesh_spacing={opts.spacing:g} px is larger than half of section {z} ({w:.0f} x "
                             f"{h:.0f} px): the mesh needs at least 2 cells across every section; give "
                             f"mesh_spacing <= {math.floor(min(w, h) / 2)}")


def section_extents(levels: Sequence[Sequence[TileKey]], transforms: Mapping[TileKey, Any],
                    sizes: Mapping[TileKey, Tuple[int, int]]) -> List[Tuple[float, float]]:
    """(width, height) of each section's bounding box in model space."""
    out = []
    for lv in levels:
        corners = np.concatenate([tile_corners(np.asarray(transforms[t], float), sizes[t]) for t in lv])
        w, h = corners.max(0) - corners.min(0)
        out.append((float(w), float(h)))
    return out


def run_elastic(ex: Executor, r: Renderer, levels: Sequence[Sequence[TileKey]], transforms: Mapping[TileKey, Any],
                opts: ElasticSettings, settings: MatchSettings, *, progress: bool) -> ElasticResult:
    """``opts.passes`` rounds of flow and joint solve: the first matches the affine-aligned
    sections, each later one the sections rendered through the meshes found so far (the residual
    flow, measured where the sections nearly agree, so a window's averaging biases it less); the
    flow points are taken back to the affine-aligned sections through those meshes and the mesh
    is solved again from all of them."""
    n = len(levels)
    shape = r.shape
    u = np.zeros((n,) + mesh_shape(shape, opts.spacing) + (2,))
    flow_s = 0.0
    result = None
    for p in range(opts.passes):
        er = ElasticRenderer(r, levels, transforms, u, opts.spacing)
        t0 = time.perf_counter()
        flows = ex.section_flows(er, size=opts.flow_size, step=opts.flow_step, settings=settings,
                                 progress=progress)
        flow_s += time.perf_counter() - t0
        if p > 0:
            flows = [replace(f, p1=_inverse(u[f.z], opts.spacing, f.p1), p2=_inverse(u[f.z + 1], opts.spacing, f.p2))
                     for f in flows]
        result = solve_elastic(flows, n, shape, opts, final=p == opts.passes - 1)
        u = result.displacement
    assert result is not None  # passes >= 1
    result.timings["flow"] = flow_s
    return result


def mesh_shape(shape: Tuple[int, int], spacing: float) -> Tuple[int, int]:
    """(ny, nx) nodes from canvas pixel 0 past the last row and column of ``shape`` (rows, cols)."""
    h, w = shape
    return max(2, math.ceil((h - 1) / spacing) + 1), max(2, math.ceil((w - 1) / spacing) + 1)


def _inverse(u: np.ndarray, spacing: float, points: np.ndarray) -> np.ndarray:
    return _core.place.mesh_inverse(u, spacing, 0.0, 0.0, np.ascontiguousarray(points, np.float64))


def solve_elastic(flows: Sequence[SectionFlow], n_sections: int, shape: Tuple[int, int],
                  opts: ElasticSettings, *, final: bool = True) -> ElasticResult:
    """The joint mesh of ``n_sections`` sections on a canvas of ``shape`` (rows, cols) from the
    flow between each pair of neighbours (see the module docstring); ``final``: warn about weak
    pairs and inverted triangles."""
    n = n_sections
    weak = [(f.z, int(f.kept.sum())) for f in flows if f.kept.sum() < max(6, 0.05 * len(f))]
    if weak and final:
        names = ", ".join(f"{z} and {z + 1} ({k} kept)" for z, k in weak[:10])
        if len(weak) > 10:
            names += f" and {len(weak) - 10} more pairs"
        warnings.warn(f"sections {names}: too few reliable flow matches; their meshes follow the affine "
                      f"alignment there (blank or damaged sections? lower min_snr, or raise flow_size)",
                      RuntimeWarning, stacklevel=4)
    t0 = time.perf_counter()
    ny, nx = mesh_shape(shape, opts.spacing)
    # A point the previous pass's mesh put beyond the canvas (an extrapolated, folded border) is not used.
    lo, hi = -opts.spacing / 2, np.array([shape[1] - 1, shape[0] - 1]) + opts.spacing / 2
    flows = [replace(f, kept=f.kept & np.all((f.p1 >= lo) & (f.p1 <= hi) & (f.p2 >= lo) & (f.p2 <= hi), 1))
             for f in flows]
    kept = [f for f in flows if f.kept.any()]
    za = np.concatenate([np.full(int(f.kept.sum()), f.z, np.int64) for f in kept] or [np.zeros(0, np.int64)])
    pa = np.concatenate([f.p1[f.kept] for f in kept] or [np.zeros((0, 2))])
    pb = np.concatenate([f.p2[f.kept] for f in kept] or [np.zeros((0, 2))])
    # Match weight per mesh cell ~1, so stiffness and pull do not depend on the flow density.
    weight = np.full(len(za), (opts.spacing / opts.flow_step) ** 2)
    sol = _core.place.solve_mesh(n, ny, nx, opts.spacing, 0.0, 0.0, za, za + 1, np.ascontiguousarray(pa),
                                 np.ascontiguousarray(pb), weight, opts.stiffness, opts.pull)
    res = np.asarray(sol.residual)
    before = np.full(n - 1, np.nan)
    after = np.full(n - 1, np.nan)
    for f in flows:
        if f.kept.any():
            sel = za == f.z
            before[f.z] = float(np.sqrt(np.mean(np.sum((f.p1[f.kept] - f.p2[f.kept]) ** 2, 1))))
            after[f.z] = float(np.sqrt(np.mean(np.sum(res[sel] ** 2, 1))))
    inverted = np.asarray(sol.inverted)
    if inverted.any() and final:
        listed = [(z, int(k)) for z, k in enumerate(inverted) if k]
        bad = ", ".join(f"{z} ({k})" for z, k in listed[:10]) + (
            f" and {len(listed) - 10} more" if len(listed) > 10 else "")
        warnings.warn(f"the elastic meshes of sections {bad} have inverted triangles (count in brackets): the "
                      f"matches there disagree (a fold or tear in the tissue?). Raise stiffness, or inspect "
                      f"those sections; they are rendered as solved", RuntimeWarning, stacklevel=3)
    info = {"unknowns": int(sol.unknowns), "nonzeros": int(sol.nonzeros), "solver": sol.solver,
            "cg_iterations": int(sol.cg_iterations), "assemble_s": sol.assemble_s, "factor_s": sol.factor_s,
            "solve_s": sol.solve_s}
    return ElasticResult(opts.spacing, (0.0, 0.0), np.asarray(sol.displacement), list(flows), before, after,
                         inverted, opts.stiffness, opts.pull, info, {"solve": time.perf_counter() - t0})
