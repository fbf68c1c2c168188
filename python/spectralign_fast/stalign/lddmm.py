"""STalign's ``LDDMM`` and ``LDDMM_3D_to_slice``: the same parameters, defaults, energy and
gradient-descent schedule, on the C++ core (see ``register.lddmm_map`` for the energy)."""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np

from ..register.lddmm_map import (_numpy, class_mean, grid_of, image_of, make_problem, points_of,
                                  run_schedule, velocity_grid)
from .transforms import build_transform


def _out_dtype(dtype: Any) -> Any:
    """NumPy dtype for STalign's ``dtype`` (a torch or NumPy dtype, or a name)."""
    if dtype is None:
        return np.float64
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype).replace("torch.", "")
    if name in ("float32", "float"):
        return np.float32
    if name in ("float64", "double"):
        return np.float64
    raise ValueError(f"dtype must be float32 or float64, got {dtype}")


def _initial_affine(L: Any, T: Any, A: Any, d: int) -> np.ndarray:
    if A is not None:
        if L is not None or T is not None:
            raise ValueError("If specifying A, you must not specify L or T")
        Am = np.array(_numpy(A), dtype=np.float64)
        if Am.shape != (d + 1, d + 1):
            raise ValueError(f"A must be ({d + 1}, {d + 1}), got {Am.shape}")
    else:
        Am = np.eye(d + 1)
        if L is not None:
            Lm = np.array(_numpy(L), dtype=np.float64)
            if Lm.shape != (d, d):
                raise ValueError(f"L must be ({d}, {d}), got {Lm.shape}")
            Am[:d, :d] = Lm
        if T is not None:
            Tv = np.array(_numpy(T), dtype=np.float64).ravel()
            if Tv.shape != (d,):
                raise ValueError(f"T must have {d} entries, got {Tv.size}")
            Am[:d, d] = Tv
    Am[d] = 0.0
    Am[d, d] = 1.0
    if not np.isfinite(Am).all() or abs(np.linalg.det(Am)) < 1e-300:
        raise ValueError("the initial affine must be finite and invertible")
    return Am


def _run(xI: Sequence[Any], I: Any, xJ: Sequence[Any], J: Any, *, pointsI: Any, pointsJ: Any,
         L: Any, T: Any, A: Any, v: Any, xv: Any, a: float, p: float, expand: float, nt: int,
         niter: int, diffeo_start: int, epL: float, epT: float, epV: float, sigmaM: float,
         sigmaB: float, sigmaA: float, sigmaR: float, sigmaP: float, muA: Any, muB: Any,
         dtype: Any, threads: int) -> Dict[str, Any]:
    out_dtype = _out_dtype(dtype)
    if int(niter) < 1:
        raise ValueError(f"niter must be at least 1, got {niter}")
    if int(diffeo_start) < 0:
        raise ValueError(f"diffeo_start must be >= 0, got {diffeo_start}")
    d = len(xI)
    Ic = image_of(I, xI, "I")
    Jc = image_of(J, xJ, "J")
    if len(xJ) != d:
        raise ValueError(f"xI is {d}-D but xJ is {len(xJ)}-D")
    Am = _initial_affine(L, T, A, d)
    if (v is None) != (xv is None):
        raise ValueError("If inputting an initial v, must input both xv and v")
    if xv is None:
        xv_list: List[np.ndarray] = velocity_grid(xI, a, expand)
        shape = tuple(x.size for x in xv_list)
        v0 = np.zeros((int(nt),) + shape + (d,))
    else:
        xv_list = [np.asarray(_numpy(x), dtype=np.float64).ravel() for x in xv]
        _, _, shape = grid_of(xv_list, "xv")
        v0 = np.array(_numpy(v), dtype=np.float64)
        if v0.ndim != d + 2 or v0.shape[1:] != shape + (d,):
            raise ValueError(f"v must be (nt, {', '.join(map(str, shape))}, {d}) for this xv, got {v0.shape}")
        nt = v0.shape[0]
    if (pointsI is None) != (pointsJ is None):
        raise ValueError("Must specify corresponding sets of points or none at all")
    pI = pJ = None
    if pointsI is not None:
        pI = points_of(pointsI, d, "pointsI")
        pJ = points_of(pointsJ, d, "pointsJ")
        if pI.shape != pJ.shape:
            raise ValueError(f"pointsI and pointsJ must have the same number of points, got "
                             f"{pI.shape[0]} and {pJ.shape[0]}")
    mA = class_mean(muA, Jc.shape[0], "muA")
    mB = class_mean(muB, Jc.shape[0], "muB")
    problem = make_problem(xI, Ic, xJ, Jc, xv_list, nt=int(nt), a=a, p=p, sigmaM=sigmaM,
                           sigmaB=sigmaB, sigmaA=sigmaA, sigmaR=sigmaR, sigmaP=sigmaP,
                           points_I=pI, points_J=pJ, threads=threads)
    problem.affine = Am
    problem.velocity = v0
    if mA is not None:
        problem.muA = mA
    if mB is not None:
        problem.muB = mB
    energies, last_A = run_schedule(problem, niter=int(niter), diffeo_start=int(diffeo_start), epL=epL,
                            epT=epT, epV=epV, estimate_muA=mA is None, estimate_muB=mB is None)
    return {
        "A": last_A.astype(out_dtype),
        "v": problem.velocity.astype(out_dtype),
        "xv": [x.astype(out_dtype) for x in xv_list],
        "WM": problem.WM.astype(out_dtype),
        "WB": problem.WB.astype(out_dtype),
        "WA": problem.WA.astype(out_dtype),
        "E": energies,
    }


def LDDMM(xI: Sequence[Any], I: Any, xJ: Sequence[Any], J: Any, pointsI: Any = None,
          pointsJ: Any = None, L: Any = None, T: Any = None, A: Any = None, v: Any = None,
          xv: Any = None, a: float = 500.0, p: float = 2.0, expand: float = 2.0, nt: int = 3,
          niter: int = 5000, diffeo_start: int = 0, epL: float = 2e-8, epT: float = 2e-1,
          epV: float = 2e3, sigmaM: float = 1.0, sigmaB: float = 2.0, sigmaA: float = 5.0,
          sigmaR: float = 5e5, sigmaP: float = 2e1, device: str = "cpu", dtype: Any = None,
          muB: Any = None, muA: Any = None, *, threads: int = 0) -> Dict[str, Any]:
    """LDDMM between a source ``I`` and a target ``J`` (2-D or 3-D), STalign's way.

    Jointly estimates an affine ``A`` and a diffeomorphism ``phi`` (source to target:
    ``x -> A phi(x)``) by ``niter`` steps of gradient descent with STalign's step sizes
    ``epL``, ``epT``, ``epV`` (the affine steps divided by 10 once the deformation starts at
    ``diffeo_start``); the mixture means every 5 iterations and the matching / artifact /
    background weights from iteration 50 on. Parameters as STalign's: coordinates ``xI``,
    ``xJ`` as lists of 1-D vectors in row-col order, images channels first, ``pointsI`` /
    ``pointsJ`` corresponding landmarks ``(n, d)`` in row-col order, ``L``/``T`` or ``A`` the
    initial affine, ``v``/``xv`` an initial velocity, ``a`` the velocity's smoothness length,
    ``p`` the operator's power, ``expand`` the velocity grid's margin, ``nt`` the time steps,
    ``sigmaM``/``sigmaB``/``sigmaA`` the mixture's standard deviations, ``sigmaR`` the
    regularisation's, ``sigmaP`` the landmarks', ``muA``/``muB`` fixed class means (estimated
    when None). ``device`` is ignored; ``dtype`` (float64 by default) is the results' type;
    ``threads`` (0 = all cores) is this package's addition.

    Returns STalign's dictionary: ``A`` ``(d+1, d+1)`` (as STalign returns it: the affine
    the last iteration started from, without that iteration's affine update), ``v`` ``(nt, *grid_v, d)``, ``xv``,
    ``WM``, ``WB``, ``WA`` (target-shaped weights), plus ``E``: the energy before each
    iteration, ``(niter, 4)`` = total, matching, regularization, points.
    """
    return _run(xI, I, xJ, J, pointsI=pointsI, pointsJ=pointsJ, L=L, T=T, A=A, v=v, xv=xv, a=a,
                p=p, expand=expand, nt=nt, niter=niter, diffeo_start=diffeo_start, epL=epL,
                epT=epT, epV=epV, sigmaM=sigmaM, sigmaB=sigmaB, sigmaA=sigmaA, sigmaR=sigmaR,
                sigmaP=sigmaP, muA=muA, muB=muB, dtype=dtype, threads=threads)


def LDDMM_3D_to_slice(xI: Sequence[Any], I: Any, xJ: Sequence[Any], J: Any, pointsI: Any = None,
                      pointsJ: Any = None, L: Any = None, T: Any = None, A: Any = None,
                      v: Any = None, xv: Any = None, a: float = 500.0, p: float = 2.0,
                      expand: float = 1.25, nt: int = 3, niter: int = 5000, diffeo_start: int = 0,
                      epL: float = 1e-6, epT: float = 1e1, epV: float = 1e3, sigmaM: float = 1.0,
                      sigmaB: float = 2.0, sigmaA: float = 5.0, sigmaR: float = 1e8,
                      sigmaP: float = 2e1, device: str = "cpu", dtype: Any = None,
                      muA: Any = None, muB: Any = None, *, threads: int = 0) -> Dict[str, Any]:
    """A 3-D source (an atlas, ``I`` of shape ``(C, D, H, W)`` on ``xI``) mapped onto one 2-D
    target section, STalign's way: ``J`` ``(C, H, W)`` or ``(C, 1, H, W)`` on ``xJ`` =
    ``[rows, cols]`` or ``[[z], rows, cols]`` (the section is the plane ``z``, 0 when not
    given). ``A`` (4x4, row-col order with the slice axis first) carries the section's pose.
    Parameters and defaults as STalign's ``LDDMM_3D_to_slice``; STalign ignores landmarks here
    and so does this. Returns ``A``, ``v``, ``xv``, ``WM``, ``WB``, ``WA`` (``(1, H, W)``),
    ``Xs`` (the atlas point each target pixel reads, ``(1, H, W, 3)``) and ``E``.
    """
    Jn = np.asarray(_numpy(J))
    xJ3 = list(xJ)
    if len(xJ3) == 2:
        xJ3 = [np.array([0.0])] + [np.asarray(_numpy(x), dtype=np.float64) for x in xJ3]
    if Jn.ndim == 3:
        Jn = Jn[:, None]
    if len(xI) != 3:
        raise ValueError(f"LDDMM_3D_to_slice needs a 3-D source: xI must have 3 vectors, got {len(xI)}")
    if Jn.ndim != 4 or Jn.shape[1] != 1:
        raise ValueError(f"J must be one section, (C, H, W) or (C, 1, H, W), got {np.shape(J)}")
    out = _run(xI, I, xJ3, Jn, pointsI=None, pointsJ=None, L=L, T=T, A=A, v=v, xv=xv, a=a, p=p,
               expand=expand, nt=nt, niter=niter, diffeo_start=diffeo_start, epL=epL, epT=epT,
               epV=epV, sigmaM=sigmaM, sigmaB=sigmaB, sigmaA=sigmaA, sigmaR=sigmaR, sigmaP=sigmaP,
               muA=muA, muB=muB, dtype=dtype, threads=threads)
    out["Xs"] = build_transform(out["xv"], out["v"], out["A"], direction="b",
                                XJ=[np.asarray(x, dtype=np.float64).ravel() for x in xJ3])
    return out
