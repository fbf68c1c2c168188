"""``LDDMM``: STalign's energy (affine + diffeomorphism + contrast model + mixture weights +
landmarks) with defaults derived from the images, calibrated and adapted step sizes and a
stopping rule on the energy.

Conventions as ``register.lddmm_map`` states them (STalign's): physical coordinates in array
axis order, grids as lists of 1-D coordinate vectors, images channels first, the map taking
source points to target points (``y = A phi(x)``).

Resolution levels (``levels``, default 2): the images are block-averaged and registered coarse
to fine, each level starting from the last one's affine and velocity.

The step sizes: one trial step measures how far a unit step moves the map; the first steps
then move it by ``initial_step`` pixels at most. A step after which the energy went up is undone
and all step sizes halved; an accepted one lets them grow by 10 %. The mixture weights are
updated every 5 iterations (from ``weights_start`` on), and between two updates the energy is
a fixed function, so it must fall: the run stops when, over ``patience`` such blocks in a row,
it fell by less than ``tolerance`` (relative) per block.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .._validate import as_float, as_int
from ..transforms.points import affine_from_points
from .lddmm_map import (LddmmResult, LddmmTransform, _numpy, class_mean, grid_of, image_of,
                        make_problem, points_of, velocity_grid)

__all__ = ["LDDMM"]


def _block_mean(image: np.ndarray, x: Sequence[Any], factor: int) -> tuple[np.ndarray, list]:
    """``image`` (channels first) averaged over blocks of ``factor`` pixels along every axis
    long enough for two blocks (a remainder at the end is dropped), with the blocks' centre
    coordinates."""
    vecs = [np.asarray(_numpy(v), dtype=np.float64).ravel() for v in x]
    if factor == 1:
        return image, vecs
    out = image
    coords = []
    for a, v in enumerate(vecs):
        f = factor if v.size >= 2 * factor else 1
        n = (v.size // f) * f
        coords.append(v[:n].reshape(-1, f).mean(axis=1))
        if f == 1:
            continue
        taken = np.take(out, np.arange(n), axis=a + 1)
        shape = taken.shape[:a + 1] + (n // f, f) + taken.shape[a + 2:]
        out = taken.reshape(shape).mean(axis=a + 2)
    return np.ascontiguousarray(out), coords


class LDDMM:
    """Affine + diffeomorphic registration with a contrast model (STalign's energy).

    Parameters
    ----------
    a : float, optional
        Smoothness length of the velocity, in the images' physical units (default: a tenth of
        the target's smaller extent).
    p : float
        Power of the operator ``(I - a^2 Laplacian)^p``.
    expand : float
        The velocity grid covers the source's extent widened this many times (at least: each
        axis is then widened to a length with small prime factors, on which FFTs are fast).
    nt : int
        Time steps of the flow.
    sigmaM, sigmaB, sigmaA : float, optional
        Standard deviations of the matched, background and artifact classes (default: from
        the target's intensity spread, half its mean channel standard deviation for
        ``sigmaM``, ``sigmaB = sigmaM``, ``sigmaA = 2 sigmaM``).
    sigmaR : float, optional
        Regularisation (larger: a more flexible map). Default: chosen so that a smooth
        velocity of one target pixel costs as much as the matching term changes for a
        pixel-sized misfit over a hundredth of the target.
    sigmaP : float, optional
        Landmark standard deviation (default: 2 target pixels).
    max_iterations : int
        Upper bound on iterations.
    affine_iterations : int
        Iterations that move only the affine before the deformation starts.
    weights_start : int
        First iteration of the mixture-weight updates (STalign: 50).
    tolerance : float
        The stopping rule: a block of 5 iterations between two mixture-weight updates is quiet
        when the energy fell by less than this (relative) over it.
    patience : int
        The run stops after this many quiet blocks in a row (counted from ``weights_start``).
    initial_step : float
        Largest move of the map by the first step, in target pixels.
    levels : int
        Resolution levels: the images are block-averaged by 2^(levels-1), ..., 2, 1 and each
        level starts from the previous one's affine and velocity (both live in physical
        coordinates, so they carry over unchanged). The coarse levels cost a fraction of an
        iteration at full resolution. ``sigmaR`` and ``sigmaP`` are scaled with the pixel
        count so that every level has the same minimiser.
    threads : int
        Worker threads (0 = all cores); results are identical for any count.
    """

    def __init__(self, *, a: Optional[float] = None, p: float = 2.0, expand: float = 2.0,
                 nt: int = 3, sigmaM: Optional[float] = None, sigmaB: Optional[float] = None,
                 sigmaA: Optional[float] = None, sigmaR: Optional[float] = None,
                 sigmaP: Optional[float] = None, max_iterations: int = 2000,
                 affine_iterations: int = 0, weights_start: int = 50, tolerance: float = 2e-4,
                 patience: int = 4, initial_step: float = 0.5, levels: int = 2,
                 threads: int = 0) -> None:
        self.a = None if a is None else as_float(a, "a")
        self.p = as_float(p, "p")
        self.expand = as_float(expand, "expand")
        self.nt = as_int(nt, "nt", minimum=1)
        self.sigmaM, self.sigmaB, self.sigmaA, self.sigmaR, self.sigmaP = (
            None if s is None else as_float(s, n) for s, n in
            ((sigmaM, "sigmaM"), (sigmaB, "sigmaB"), (sigmaA, "sigmaA"), (sigmaR, "sigmaR"),
             (sigmaP, "sigmaP")))
        self.max_iterations = as_int(max_iterations, "max_iterations", minimum=1)
        self.affine_iterations = as_int(affine_iterations, "affine_iterations", minimum=0)
        self.weights_start = as_int(weights_start, "weights_start", minimum=0)
        self.tolerance = as_float(tolerance, "tolerance")
        self.patience = as_int(patience, "patience", minimum=1)
        self.initial_step = as_float(initial_step, "initial_step")
        self.levels = as_int(levels, "levels", minimum=1, maximum=6)
        self.threads = as_int(threads, "threads", minimum=0)
        for name in ("p", "expand", "tolerance", "initial_step"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")

    def fit(self, xI: Sequence[Any], I: Any, xJ: Sequence[Any], J: Any, *,
            points_I: Any = None, points_J: Any = None, A: Any = None,
            muA: Any = None, muB: Any = None) -> LddmmResult:
        """Register the source ``I`` (channels first on ``xI``) to the target ``J`` (on ``xJ``).

        ``points_I`` / ``points_J``: corresponding landmarks ``(n, d)`` in array order (they
        also start the affine when ``A`` is None and there are at least d + 1); ``A``: an
        initial source-to-target affine; ``muA``/``muB``: fixed artifact / background means.
        """
        d = len(xI)
        if len(xJ) != d:
            raise ValueError(f"xI is {d}-D but xJ is {len(xJ)}-D")
        Ic = image_of(I, xI, "I")
        Jc = image_of(J, xJ, "J")
        _, sJ, shJ = grid_of(xJ, "xJ")
        pixel = float(np.min(sJ[np.array(shJ) > 1])) if max(shJ) > 1 else 1.0
        extent = float(np.min([n * s for n, s in zip(shJ, sJ) if n > 1]))
        a = self.a if self.a is not None else extent / 10.0
        spread = float(np.mean([np.std(c) for c in Jc])) or 1.0
        sigmaM = self.sigmaM if self.sigmaM is not None else 0.5 * spread
        sigmaB = self.sigmaB if self.sigmaB is not None else sigmaM
        sigmaA = self.sigmaA if self.sigmaA is not None else 2.0 * sigmaM
        sigmaP = self.sigmaP if self.sigmaP is not None else 2.0 * pixel
        pI = pJ = None
        if (points_I is None) != (points_J is None):
            raise ValueError("give points_I and points_J together, or neither")
        if points_I is not None:
            pI = points_of(points_I, d, "points_I")
            pJ = points_of(points_J, d, "points_J")
            if pI.shape != pJ.shape:
                raise ValueError("points_I and points_J must have the same number of points")
        A0 = self._initial_affine(A, pI, pJ, d)
        xv = velocity_grid(xI, a, self.expand, fast_sizes=True)
        if self.sigmaR is not None:
            sigmaR = self.sigmaR
        else:
            # The cost of a unit velocity over the grid vs. a one-pixel misfit (0.5 sigmaM per
            # channel) on 1 % of the target: ER = DV nV nt / (2 sigmaR^2).
            area = float(np.prod([x[-1] - x[0] for x in xv]))
            em_unit = 0.01 * np.prod(shJ) * Jc.shape[0] * 0.125 / pixel ** 2
            sigmaR = float(np.sqrt(area * self.nt / (2.0 * em_unit)))
        means = {name: m for name, m in (("muA", class_mean(muA, Jc.shape[0], "muA")),
                                            ("muB", class_mean(muB, Jc.shape[0], "muB")))
                 if m is not None}
        A_k, v_k = A0, None
        all_energies = []
        converged = False
        for level in range(self.levels):
            factor = 2 ** (self.levels - 1 - level)
            Ik, xIk = _block_mean(Ic, xI, factor)
            Jk, xJk = _block_mean(Jc, xJ, factor)
            scale = float(np.sqrt(Jc[0].size / Jk[0].size))
            problem = make_problem(xIk, Ik, xJk, Jk, xv, nt=self.nt, a=a, p=self.p, sigmaM=sigmaM,
                                   sigmaB=sigmaB, sigmaA=sigmaA, sigmaR=sigmaR * scale,
                                   sigmaP=sigmaP * scale, points_I=pI, points_J=pJ,
                                   threads=self.threads)
            problem.affine = A_k
            if v_k is not None:
                problem.velocity = v_k
            for name, m in means.items():
                setattr(problem, name, m)
            # Later levels start aligned: their weights may move from the first block on.
            start = self.weights_start if level == 0 else min(self.weights_start, 5)
            energies, converged = self._descend(problem, pixel * factor, extent, muA is None,
                                                muB is None, start)
            all_energies.append(energies)
            A_k, v_k = problem.affine, problem.velocity
        energies = np.concatenate(all_energies)
        xI_list = [np.asarray(_numpy(x), dtype=np.float64).ravel() for x in xI]
        xJ_list = [np.asarray(_numpy(x), dtype=np.float64).ravel() for x in xJ]
        tf = LddmmTransform(problem.affine, problem.velocity, xv, xI_list, xJ_list, True,
                            self.threads)
        return LddmmResult(tf, problem.WM, problem.WA, problem.WB, energies, len(energies),
                           converged, problem.contrast_coefficients,
                           tuple(len(e) for e in all_energies))

    @staticmethod
    def _initial_affine(A: Any, pI: Optional[np.ndarray], pJ: Optional[np.ndarray],
                        d: int) -> np.ndarray:
        if A is not None:
            Am = np.array(_numpy(A), dtype=np.float64)
            if Am.shape != (d + 1, d + 1) or not np.isfinite(Am).all() or abs(np.linalg.det(Am)) < 1e-300:
                raise ValueError(f"A must be a finite, invertible ({d + 1}, {d + 1}) matrix")
            return Am
        Am = np.eye(d + 1)
        if pI is not None and pJ is not None:
            if pI.shape[0] > d:
                try:
                    return affine_from_points(pI, pJ)
                except ValueError:  # collinear / coplanar: the translation below
                    pass
            Am[:d, d] = pJ.mean(0) - pI.mean(0)
        return Am

    def _descend(self, problem: Any, pixel: float, extent: float, estimate_muA: bool,
                 estimate_muB: bool, weights_start: int) -> tuple[np.ndarray, bool]:
        d = problem.affine.shape[0] - 1
        # Calibration: how far one unit step moves the velocity, translation and linear part.
        v0, A0 = problem.velocity, problem.affine
        problem.step(1.0, 1.0, 1.0)
        dv = float(np.max(np.abs(v0 - problem.velocity)))
        dA = A0 - problem.affine
        problem.velocity, problem.affine = v0, A0
        tiny = np.finfo(float).tiny
        epV = self.initial_step * pixel / max(dv, tiny)
        epT = self.initial_step * pixel / max(float(np.max(np.abs(dA[:d, d]))), tiny)
        epL = self.initial_step * pixel / max(float(np.max(np.abs(dA[:d, :d]))) * extent * 0.5, tiny)
        cap = (epL * 8.0, epT * 8.0, epV * 8.0)
        energies = []
        prev_state = None
        prev_energy: Optional[float] = None
        blocks_quiet = 0
        block_first: Optional[float] = None
        converged = False
        it = 0
        while it < self.max_iterations:
            diffeo = it >= self.affine_iterations
            state = (problem.velocity, problem.affine)
            e = problem.step(epL, epT, epV if diffeo else 0.0)
            if prev_energy is not None and e.total > prev_energy and prev_state is not None:
                # The last step raised the energy: undo it, halve the steps, try again.
                problem.velocity, problem.affine = prev_state
                epL, epT, epV = epL * 0.5, epT * 0.5, epV * 0.5
                if epV * 1e6 < cap[2] and epT * 1e6 < cap[1]:
                    break
                continue
            energies.append((e.total, e.matching, e.regularization, e.points))
            prev_state, prev_energy = state, e.total
            epL, epT, epV = (min(epL * 1.1, cap[0]), min(epT * 1.1, cap[1]), min(epV * 1.1, cap[2]))
            if block_first is None:
                block_first = e.total
            if it % 5 == 0:
                # The block between two weight updates ends: did the energy still fall enough?
                if it >= weights_start and block_first is not None:
                    drop = (block_first - e.total) / max(abs(block_first), tiny)
                    blocks_quiet = blocks_quiet + 1 if drop < self.tolerance else 0
                    if blocks_quiet >= self.patience:
                        converged = True
                        it += 1
                        break
                problem.update_weights(estimate_muA, estimate_muB, it >= weights_start)
                prev_energy = None
                block_first = None
            it += 1
        return np.asarray(energies, dtype=np.float64).reshape(-1, 4), converged
