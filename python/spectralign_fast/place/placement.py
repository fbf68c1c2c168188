"""Placement: least-squares placement of tiles in model space, as spectralign's.

The solve runs in C++ (Eigen sparse matrices: sparse Cholesky / LDL^T with a
fill-reducing ordering, or preconditioned conjugate gradients for very large
problems; after a direct solve, iterative refinement with residuals computed
from the matches, translations first); this module keeps the matches in
NumPy arrays and maps tile ids. The regularised affine's prior: regularize.py.
"""
from __future__ import annotations

from collections import namedtuple
from typing import Any, Dict, Hashable, List, Optional, Tuple, Union

import numpy as np

from .. import _core
from .._validate import as_float, as_int, as_point, as_points
from ..transforms.affine import Affine
from .diagnostics import (PlacementResiduals, check_graph, reject_round, residual_vectors, summarise_residuals,
                          underdetermined_indices)
from .regularize import (PRIOR_WEIGHTS, central_tile, check_prior, check_regularize, prior_transforms,
                         similarity_test, tested_pull)

Match = namedtuple("Match", ("tile1", "tile2", "p1", "p2", "weight"))
Match.__doc__ = """One pair of matching points: point ``p1`` = (x, y) of ``tile1`` and
point ``p2`` of ``tile2`` should lie at the same place in model space."""

# The stored matches: tile indices t1, t2 (M,), points P1, P2 (M, 2), weights (M,).
_MatchArrays = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]

_SOLVERS = ("auto", "cholesky", "ldlt", "cg")
_COMPONENTS = ("error", "separate")
def _hashable(tile: Any, name: str) -> Hashable:
    try:
        hash(tile)
    except TypeError:
        raise TypeError(
            f"{name} must be a hashable tile id (int, str, tuple, ...) or a 1-D numpy array of "
            f"per-point ids, got {type(tile).__name__}") from None
    return tile


class Placement:
    """Place tiles in model space from matching points (spectralign's ``Placement``).

    Points are (x, y) = (column, row) in each tile's own pixel coordinates.
    A match says that point ``p1`` of tile ``t1`` and point ``p2`` of tile
    ``t2`` lie at the same place in model space. Each tile gets a transform
    from tile coordinates to model space that minimises
    ``sum_matches weight * |T_t1(p1) - T_t2(p2)|**2``:

    * ``rigid()``: ``T_t(p) = p + (x_t, y_t)``; returns ``{tile: (x_t, y_t)}``,
      the model-space position of the tile's pixel (0, 0).
    * ``affine()``: ``T_t(p) = A_t p + X_t``; returns ``{tile: Affine}``, each
      mapping tile coordinates to model space.

    Gauge (as spectralign): the mean of all ``X_t`` is (0, 0) and, for
    ``affine()``, the mean of all ``A_t`` is the identity (exact Lagrange
    constraints); or, with ``fix=tile``, that tile's transform is the identity
    (position (0, 0)).

    Examples
    --------
    >>> plc = Placement()
    >>> plc.addmatch("a", "b", (900.0, 300.0), (100.0, 300.0))
    >>> plc.rigid()  # doctest: +SKIP
    {'a': (-400.0, 0.0), 'b': (400.0, 0.0)}
    """

    def __init__(self) -> None:
        self._ids: Dict[Hashable, int] = {}
        self._tiles: List[Hashable] = []
        self._chunks: List[_MatchArrays] = []
        self._single: List[Tuple[int, int, float, float, float, float, float]] = []
        self._arrays: Optional[_MatchArrays] = None
        self._result: Optional[Dict[str, Any]] = None

    # -- adding matches -----------------------------------------------------
    def _index(self, tile: Hashable) -> int:
        i = self._ids.get(tile)
        if i is None:
            i = self._ids[tile] = len(self._tiles)
            self._tiles.append(tile)
        return i

    def _indices(self, ids: np.ndarray) -> np.ndarray:
        """Dense indices of per-point tile ids (registering new ones in order of appearance)."""
        try:
            uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        except TypeError:  # unorderable objects: one dict lookup per point
            return np.fromiter((self._index(_hashable(t, "tile id")) for t in ids.tolist()),
                               dtype=np.int64, count=len(ids))
        order = np.argsort(first, kind="stable")
        idx = np.empty(len(uniq), dtype=np.int64)
        values = uniq.tolist()
        for j in order.tolist():
            idx[j] = self._index(_hashable(values[j], "tile id"))
        return idx[inverse.reshape(-1)]

    def _changed(self) -> None:
        self._arrays = None
        self._result = None

    def _flush_single(self) -> None:
        """Turn the pending addmatch() points into a chunk, so that chunks
        stay in insertion order."""
        if self._single:
            s = np.array(self._single, dtype=np.float64).reshape(-1, 7)
            self._chunks.append((s[:, 0].astype(np.int64), s[:, 1].astype(np.int64),
                                 s[:, 2:4].copy(), s[:, 4:6].copy(), s[:, 6].copy()))
            self._single = []

    def addmatch(self, tile1: Hashable, tile2: Hashable, p1: Any, p2: Any, weight: float = 1) -> None:
        """Add one pair of matching points connecting two tiles.

        Parameters
        ----------
        tile1, tile2 : hashable
            The tiles' ids (any hashable: int, str, tuple such as (row, col)).
        p1, p2 : (x, y)
            Points in tile1's and tile2's own coordinates that should occupy
            the same place in model space.
        weight : float, optional
            Positive, finite weight of this match (default 1).
        """
        _hashable(tile1, "tile1")
        _hashable(tile2, "tile2")
        if tile1 == tile2:
            raise ValueError(f"tile {tile1!r} is matched to itself; a match must connect two different tiles")
        a = as_point(p1, "p1")
        b = as_point(p2, "p2")
        w = as_float(weight, "weight")
        if not w > 0:
            raise ValueError(f"weight must be > 0, got {w}")
        self._single.append((self._index(tile1), self._index(tile2), a[0], a[1], b[0], b[1], w))
        self._changed()

    def addmatches(self, t1: Any, t2: Any, P1: Any, P2: Any, weights: Any = None) -> None:
        """Add many pairs of matching points at once (stored as arrays, no per-point Python work).

        Parameters
        ----------
        t1, t2 : hashable or 1-D numpy.ndarray
            The tiles' ids: one id each (all points connect the same pair of
            tiles) or numpy arrays of length N with one id per point (for
            building large problems; ints or strings are mapped vectorised).
            A tuple is one tile id, not a list of ids.
        P1, P2 : array_like, shape (N, 2)
            Rows (x, y): point i of P1 (in tile t1) and point i of P2 (in
            tile t2) should occupy the same place in model space.
        weights : float or array_like of shape (N,), optional
            Positive, finite weights (default 1).
        """
        P1 = as_points(P1, "P1")
        P2 = as_points(P2, "P2")
        n = len(P1)
        if len(P2) != n:
            raise ValueError(f"P1 and P2 must have the same number of points, got {n} and {len(P2)}")
        if weights is None:
            w = np.ones(n)
        else:
            try:
                w = np.array(weights, dtype=np.float64)
            except (TypeError, ValueError):
                raise TypeError("weights must be a number or an array of numbers") from None
            if w.ndim == 0:
                w = np.full(n, float(w))
            if w.shape != (n,):
                raise ValueError(f"weights must be one number or have shape ({n},), got shape {w.shape}")
            bad = ~(np.isfinite(w) & (w > 0))
            if bad.any():
                raise ValueError(f"weights must be finite and > 0; bad at rows {np.flatnonzero(bad)[:10].tolist()}")
        per_point = [isinstance(t, np.ndarray) for t in (t1, t2)]
        for t, name, pp in ((t1, "t1", per_point[0]), (t2, "t2", per_point[1])):
            if pp:
                if t.ndim != 1 or len(t) != n:
                    raise ValueError(f"{name} as an array must be 1-D with one tile id per point ({n}), "
                                     f"got shape {t.shape}")
            else:
                _hashable(t, name)
        if n == 0:
            return
        if not any(per_point):
            if t1 == t2:
                raise ValueError(f"tile {t1!r} is matched to itself; a match must connect two different tiles")
            i1 = np.full(n, self._index(t1), dtype=np.int64)
            i2 = np.full(n, self._index(t2), dtype=np.int64)
        else:
            # Check self-matches before registering any id.
            a, b = t1, t2
            if not per_point[0]:
                a = np.empty(n, dtype=object)
                a.fill(t1)  # fill() stores a tuple id as one object
            if not per_point[1]:
                b = np.empty(n, dtype=object)
                b.fill(t2)
            same = np.asarray(a == b, dtype=bool).reshape(-1) if a.shape == b.shape else np.zeros(n, bool)
            if same.any():
                k = int(np.flatnonzero(same)[0])
                raise ValueError(f"point {k} matches tile {a[k]!r} to itself; a match must connect "
                                 f"two different tiles")
            both = np.empty(2 * n, dtype=np.result_type(a, b) if a.dtype != object and b.dtype != object
                            else object)
            both[0::2] = a
            both[1::2] = b
            idx = self._indices(both)
            i1, i2 = idx[0::2].copy(), idx[1::2].copy()
        self._flush_single()
        self._chunks.append((i1, i2, P1, P2, w))
        self._changed()

    # -- stored matches -----------------------------------------------------
    def _match_arrays(self) -> _MatchArrays:
        if self._arrays is None:
            self._flush_single()
            parts = list(self._chunks)
            if not parts:
                empty = np.zeros(0, np.int64)
                self._arrays = (empty, empty, np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0))
            elif len(parts) == 1:
                self._arrays = parts[0]
            else:
                t1, t2, P1, P2, w = (np.concatenate([p[j] for p in parts]) for j in range(5))
                self._arrays = (t1, t2, P1, P2, w)
                self._chunks = [self._arrays]
        return self._arrays

    def __len__(self) -> int:
        """Number of matches added."""
        return sum(len(c[0]) for c in self._chunks) + len(self._single)

    @property
    def tiles(self) -> List[Hashable]:
        """Tile ids in order of first appearance (the order of the result dicts)."""
        return list(self._tiles)

    @property
    def matches(self) -> List[Match]:
        """All matches as ``Match(tile1, tile2, p1, p2, weight)`` (slow for millions)."""
        t1, t2, P1, P2, w = self._match_arrays()
        tl = self._tiles
        return [Match(tl[a], tl[b], tuple(p), tuple(q), float(ww))
                for a, b, p, q, ww in zip(t1.tolist(), t2.tolist(), P1.tolist(), P2.tolist(), w.tolist())]

    # -- solving ------------------------------------------------------------
    def rigid(self, fix: Optional[Hashable] = None, *, reject: Optional[float] = None,
              components: str = "error", solver: str = "auto", tol: float = 1e-12,
              maxiter: Optional[int] = None) -> Dict[Hashable, Tuple[float, float]]:
        """Translation-only placement: ``{tile: (x, y)}``.

        Tile t's pixel p = (x, y) lands at model point ``p + (x_t, y_t)``;
        the returned pair is ``(x_t, y_t)``. The mean position over the tiles
        (of each connected component) is (0, 0), or ``fix``'s is (0, 0).

        Parameters
        ----------
        fix : hashable, optional
            A tile placed at (0, 0) instead of the mean-zero gauge.
        reject : float, optional
            Outlier rejection: after each solve, find the kept matches whose
            residual length exceeds ``reject`` times a robust spread (1.4826 x
            the median absolute deviation of the kept residuals' x and y
            components, never below 1e-6), drop those that are the worst on
            both of their tiles, and solve again, until none exceeds it. With Gaussian
            noise about exp(-reject**2 / 2) of good matches (1.1% for 3) are
            dropped too. See ``dropped`` and ``residuals()``.
        components : {"error", "separate"}
            A disconnected match graph raises ValueError naming the
            components, unless "separate": then each component gets its own
            gauge (mean zero; ``fix`` applies to its own component).
        solver : {"auto", "cholesky", "ldlt", "cg"}
            "cholesky": sparse Cholesky, SuiteSparse CHOLMOD's supernodal
            factorisation when the build has it (``config()["cholmod"]``),
            else Eigen's simplicial LDL^T; "ldlt": always Eigen's simplicial
            LDL^T (AMD ordering); "cg": conjugate gradients with a Jacobi
            preconditioner. "auto" uses "cholesky" up to 40 million unknowns
            with CHOLMOD (4 million without), one per tile for rigid, three
            for affine, and CG beyond, where a factor would not fit in
            memory. CG is slower on tile grids (affine especially: its system
            is badly conditioned), so prefer "cholesky" whenever memory allows.
        tol : float
            Relative residual of each CG solve (ignored by cholesky).
        maxiter : int, optional
            Iteration limit of each CG solve (default: scaled with size).

        Returns
        -------
        dict
            ``{tile: (x_t, y_t)}`` in order of first appearance.
        """
        params = self._solve(False, fix, reject, components, solver, tol, maxiter)
        return dict(zip(self._tiles, map(tuple, params.tolist())))

    def affine(self, fix: Optional[Hashable] = None, *, reject: Optional[float] = None,
               components: str = "error", solver: str = "auto", tol: float = 1e-12,
               maxiter: Optional[int] = None, regularize: float = 0.0,
               prior: str = "similarity") -> Dict[Hashable, Affine]:
        """Affine placement: ``{tile: Affine}``, each mapping tile coordinates to model space.

        Tile t's pixel p = (x, y) lands at model point ``T_t * p = A_t p + X_t``.
        Gauge: mean of ``X_t`` is (0, 0) and mean of ``A_t`` is the identity
        (per connected component), or ``fix``'s transform is the identity.
        As in spectralign the mean-identity gauge suits transforms near the
        identity (rotations well below 90 degrees).

        Parameters are those of ``rigid()``, and:

        regularize : float, optional
            ``lam >= 0`` (default 0: plain affine, spectralign's). With
            ``lam > 0`` every tile's affine is pulled toward its similarity
            placement ``S_t`` (``similarity()``, or ``rigid()`` where the
            matches cannot determine a similarity), as EM_aligner / BigFeta
            do: the placement minimises ``sum_matches w |T_t1(p1) -
            T_t2(p2)|**2 + lam * sum_tiles W_t ||T_t - S_t||**2``, where
            ``W_t`` is the summed weight of tile t's matches and
            ``||T - S||**2 = |T(c0) - S(c0)|**2 + L**2 ||A_T - A_S||_F**2``
            (``c0``: the mean of all matched points in tile pixels, ``L``
            their RMS distance from ``c0``), a squared model-space
            displacement. So ``lam`` is dimensionless and does not depend on
            the tile size or the number of matches: ``lam = 1`` pulls a tile
            toward its similarity as hard as all its matches pull it toward
            its neighbours. A little (1e-2) stops most of the long-range
            drift of affine placements with narrow overlaps on small grids;
            but the weakly determined modes that drift are also those of true
            per-tile stretch, so the more ``lam``, the less of a true stretch
            or shear is followed (measured trade-off in bench/RESULTS.md;
            ``montage`` uses 10 with ``prior="similarity-tested"``). The regulariser
            fixes the solution (one sparse solve, no constraints); it is then
            moved by one global affine map into the gauge above, so the
            gauge holds exactly. Needs a connected match graph
            (``components="error"``).
        prior : {"similarity", "rigid", "rigid-centres", "similarity-tested"}
            What ``regularize`` pulls toward: the similarity placement
            (default), or the rigid one (translations only: the linear part
            pulled toward the identity, so that a long chain of tiles, e.g.
            serial sections, cannot drift in scale, as similarities can).
            "rigid-centres": only the tile centres ``T(c0)`` toward the rigid
            placement's, each tile's linear part left to its matches (a
            1e-6 share of the pull keeps a single row of tiles determined):
            drift-free on large grids, where the similarity placement itself
            bends (300 x 300 tiles with 0.2 px noise: 2.2 px RMS at the tile
            centres with ``regularize=1e-3``, against 91 px plain and 200 px
            with the similarity prior), but the rigid centres are biased
            wherever tiles rotate, scale or stretch individually, so on small
            grids it is no better than the similarity prior.
            "similarity-tested": the similarity placement, pulled with
            ``regularize`` times ``min(1, (2 / F)**8)``, where ``F`` measures
            how much better affines than similarities map each tile's matched
            points onto its neighbour's (an F statistic, about 1 where tiles
            only rotate, shift and scale; ``solve_info["similarity_test"]``):
            a similarity-like placement when the matches are consistent with
            one, the plain affine where tiles really stretch or shear.

        Returns
        -------
        dict
            ``{tile: Affine}`` in order of first appearance.
        """
        lam = check_regularize(regularize)
        if lam > 0 and components != "error":
            raise ValueError("regularize needs a connected match graph: leave components='error' (the similarity "
                             "placement it pulls toward is solved for the whole graph)")
        check_prior(prior)
        params = self._solve(True, fix, reject, components, solver, tol, maxiter, lam, prior)
        views = params.view(np.ndarray)
        return {t: views[i].view(Affine) for i, t in enumerate(self._tiles)}

    def similarity(self, fix: Optional[Hashable] = None, *, reject: Optional[float] = None
                   ) -> Dict[Hashable, Affine]:
        """Similarity placement: ``{tile: Affine}`` of rotation, uniform scale and translation.

        Not in spectralign. Tile t's pixel p = (x, y) lands at
        ``s_t R_t p + X_t``. Between rigid (translation only) and affine:
        it follows small stage rotations and magnification changes but
        cannot shear or stretch one axis, which an overlap strip a tenth of
        a tile wide determines poorly (an affine fit must extrapolate them
        across the tile). Solved as one sparse least-squares system, two
        complex unknowns per tile (CHOLMOD's supernodal Cholesky when the
        build has it, else Eigen's simplicial LDL^T), with the central tile
        of the match graph held at the identity, iteratively refined as the
        other solves, then moved by one global similarity so that ``fix``
        (default: the first tile) is the identity. The central reference
        matters: the least-squares misfit is measured in the reference
        tile's scale, and tiles far from it shrink (on a 100 x 100 grid with
        0.2 px noise, a corner reference put the far tiles 68 px RMS off,
        the central one 2 px); it also keeps the system well conditioned
        (noise-free 1000 x 1000 grid: within 1e-5 px, against 0.6 px with a
        corner reference).

        Parameters
        ----------
        fix : hashable, optional
            The tile that is the identity (the gauge); default the first tile.
        reject : float, optional
            Outlier rejection, as in ``rigid()``.

        Returns
        -------
        dict
            ``{tile: Affine}`` with linear parts ``[[a, -b], [b, a]]``, in order
            of first appearance. ``residuals()`` and ``dropped`` describe this solve.
        """
        params = self._solve("similarity", fix, reject, "error", "ldlt", 1e-12, None)
        views = params.view(np.ndarray)
        return {t: views[i].view(Affine) for i, t in enumerate(self._tiles)}

    def underdetermined(self, model: str = "affine") -> List[Hashable]:
        """Tiles whose matched points cannot fix their transform under ``model``.

        A tile is determined when one of its neighbours is tied to it strongly
        (an affine: three matched points not on one line, their spread across
        the line at least a pixel and 5 % of their length; a similarity: two
        distinct points), or when all its matches together are redundant
        (twice the points its transform has unknowns, not all on one line).
        Tiles tied only weakly to each other can be fitted exactly however
        wrong the result (a least-squares system with as many equations as
        unknowns fits every match's noise), which is what this refuses. A
        translation needs one point. Points are in each tile's own pixels.
        """
        if model not in ("rigid", "similarity", "affine"):
            raise ValueError(f"model must be 'rigid', 'similarity' or 'affine', got {model!r}")
        t1, t2, P1, P2, _ = self._match_arrays()
        return [self._tiles[i] for i in underdetermined_indices(len(self._tiles), t1, t2, P1, P2, model)]

    def _check_determined(self, model: str) -> None:
        weak = self.underdetermined(model)
        if weak:
            names = ", ".join(repr(t) for t in weak[:8]) + (" ..." if len(weak) > 8 else "")
            need = "three that are not on one line" if model == "affine" else "two distinct ones"
            weaker = "similarity() or rigid()" if model == "affine" else "rigid()"
            raise ValueError(f"ill-posed (singular or nearly so): {len(weak)} tile(s) have too few matched "
                             f"points to fix a {model} transform (each needs {need}, toward one neighbour or "
                             f"in all): {names}; add matches, or use {weaker}")

    def _solve(self, affine: Any, fix: Optional[Hashable], reject: Optional[float], components: str,
               solver: str, tol: float, maxiter: Optional[int], regularize: float = 0.0,
               prior_kind: str = "similarity") -> np.ndarray:
        similarity = affine == "similarity"
        affine = bool(affine)
        if solver not in _SOLVERS:
            raise ValueError(f"solver must be one of {_SOLVERS}, got {solver!r}")
        if components not in _COMPONENTS:
            raise ValueError(f"components must be one of {_COMPONENTS}, got {components!r}")
        tol = as_float(tol, "tol")
        if not 0 < tol < 1:
            raise ValueError(f"tol must be in (0, 1), got {tol}")
        maxit = 0 if maxiter is None else as_int(maxiter, "maxiter", minimum=1)
        if reject is not None:
            reject = as_float(reject, "reject")
            if not reject > 0:
                raise ValueError(f"reject must be > 0, got {reject}")
        t1, t2, P1, P2, w = self._match_arrays()
        if len(t1) == 0:
            raise ValueError("there are no matches: add some with addmatch() or addmatches() first")
        fixidx = -1
        if fix is not None:
            _hashable(fix, "fix")
            if fix not in self._ids:
                raise ValueError(f"fix tile {fix!r} is not in the match graph")
            fixidx = self._ids[fix]
        n = len(self._tiles)
        kept = np.ones(len(t1), dtype=bool)
        rounds = 0
        while True:
            k1, k2 = (t1, t2) if kept.all() else (t1[kept], t2[kept])
            check_graph(self._tiles, k1, k2, components, rounds > 0)
            if rounds == 0 and affine:
                self._check_determined("similarity" if similarity else "affine")
            if kept.all():
                args = (t1, t2, P1, P2, w)
            else:
                args = (k1, k2, P1[kept], P2[kept], w[kept])
            out: Union[_core.place.SimilaritySolution, _core.place.PlacementSolution]
            how: Dict[str, Any] = dict(prior=None, similarity_test=None, regularize_used=0.0)
            if similarity:
                out = _core.place.solve_similarity(n, *args, fix=max(fixidx, 0), reference=central_tile(n, k1, k2))
                how.update(solver=out.solver, cg_iterations=0, cg_error=0.0, n_components=1)
            else:
                prior, lam = None, regularize
                if regularize > 0:
                    prior, how["prior"] = prior_transforms(n, *args, kind=prior_kind)
                    if prior_kind == "similarity-tested":
                        how["similarity_test"] = similarity_test(n, *args)
                        lam = regularize * tested_pull(how["similarity_test"])
                    how["regularize_used"] = lam
                out = _core.place.solve(n, *args, affine=affine, fix=fixidx, separate=components == "separate",
                                        solver=solver, tol=tol, maxiter=maxit, regularize=lam, prior=prior,
                                        prior_centre=PRIOR_WEIGHTS[prior_kind][0],
                                        prior_linear=PRIOR_WEIGHTS[prior_kind][1])
                how.update(solver=out.solver, cg_iterations=out.cg_iterations, cg_error=out.cg_error,
                           n_components=out.n_components)
            params = out.params
            res = residual_vectors(params, affine, t1, t2, P1, P2)
            rounds += 1
            if reject is None:
                break
            if not reject_round(res, kept, t1, t2, n, reject):
                break
        # solve_info hands these out: plain Python values, timings a dict as before.
        t, rf = out.timings, out.refinement
        self._result = dict(params=params, affine=affine, kept=kept, residuals=res, rounds=rounds,
                            pivot_ratio=out.pivot_ratio, unknowns=out.unknowns, nonzeros=out.nonzeros,
                            timings=dict(assemble=t.assemble, analyze=t.analyze, factor=t.factor, solve=t.solve,
                                         refine=t.refine),
                            refinement=dict(steps=rf.steps, residual_initial=rf.residual_initial,
                                            residual_final=rf.residual_final),
                            regularize=regularize, **how)
        return params

    # -- after a solve ------------------------------------------------------
    def _need_result(self) -> Dict[str, Any]:
        if self._result is None:
            raise ValueError("no solution yet: call rigid() or affine() first (after the last addmatch)")
        return self._result

    @property
    def dropped(self) -> np.ndarray:
        """Indices (insertion order) of the matches the last solve's ``reject=`` dropped."""
        return np.flatnonzero(~self._need_result()["kept"])

    def dropped_matches(self) -> List[Match]:
        """The dropped matches as ``Match(tile1, tile2, p1, p2, weight)``."""
        idx = self.dropped
        t1, t2, P1, P2, w = self._match_arrays()
        return [Match(self._tiles[t1[i]], self._tiles[t2[i]], tuple(P1[i].tolist()), tuple(P2[i].tolist()),
                      float(w[i])) for i in idx.tolist()]

    @property
    def solve_info(self) -> Dict[str, Any]:
        """How the last solve went: solver, unknowns, nonzeros, cg_iterations, cg_error,
        pivot_ratio (smallest / largest LDL^T pivot), timings (seconds of the last C++ call:
        assemble, analyze, factor, solve, refine), refinement (steps of iterative refinement
        kept, and the normal equations' residual norm before and after them), rounds (of
        ``reject``), n_components, regularize, prior (the model of the regulariser's prior,
        "similarity", "rigid" or "rigid-centres", or None), similarity_test (prior
        "similarity-tested": the F statistic that scaled the pull, else None) and
        regularize_used (the weight the solve used)."""
        r = self._need_result()
        return {k: r[k] for k in ("solver", "unknowns", "nonzeros", "cg_iterations", "cg_error", "pivot_ratio",
                                  "timings", "refinement", "rounds", "n_components", "regularize", "prior",
                                  "similarity_test", "regularize_used")}

    def residuals(self) -> PlacementResiduals:
        """Per-match residual vectors of the last solve, in model space, with a summary.

        Returns
        -------
        PlacementResiduals
            ``vectors[i] = T_t1(p1) - T_t2(p2)`` (x, y) for match i, ``kept``,
            ``rms``, ``max`` and ``per_tile`` (RMS per tile over kept matches).
        """
        r = self._need_result()
        t1, t2, *_ = self._match_arrays()
        return summarise_residuals(self._tiles, t1, t2, r["residuals"], r["kept"])
