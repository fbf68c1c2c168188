"""A global initialiser for intensity-based affine registration: no ``params0`` needed.

``initial_affine(static, moving)`` finds rotation, isotropic scale and translation together, so
that a local optimiser (``AffineRegistration``) starts in the right basin even for 90- and
180-degree rotations, periodic textures and cross-modality pairs. It tries several routes on a
coarse copy of both images and keeps the candidate with the highest normalised mutual
information:

* 2-D: Fourier-Mellin (rotation mod 180 degrees and scale from the phase correlation of the
  log-polar maps of the windowed, high-pass emphasised magnitude spectra; both 180-degree
  candidates kept), principal axes of the foreground (both sign choices) and a sweep of angles
  every 15 degrees, each with translations from phase correlation (intensities, inverted
  intensities, gradient magnitudes) and from the centres of mass;
* 3-D: principal axes of the foreground (every signed permutation of the axes that is a proper
  rotation) and the 24 rotations of the cube about the centre, translations from the centres
  of mass;

then the best few are refined by a small pattern search on the same score.

Conventions (DIPY's): arrays are in array axis order; ``grid2world`` maps a homogeneous array
index to world coordinates (identity when None: world = array index); the returned affine maps
STATIC world points to MOVING world points, so the moving image resampled onto the static grid
samples ``moving`` at ``inv(moving_grid2world) @ affine @ static_grid2world @ index``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .._validate import as_int
from ._coarse import Coarse, Scorer, moments, spacing, to_coarse, world_box
from ._spectral import ShiftFinder, fourier_mellin

__all__ = ["InitialAlignment", "initial_affine"]

MODELS = ("translation", "rigid", "similarity", "affine")
_TARGET = {2: 128, 3: 40}       # samples along the static image's longest world extent
_SWEEP_STEP = 15.0              # degrees, 2-D angle sweep
_REFINE_TOP = 3                 # candidates refined by the pattern search
_MAX_EVALUATIONS = {2: 120, 3: 160}


@dataclass(frozen=True)
class InitialAlignment:
    """What ``initial_affine`` returns.

    Attributes
    ----------
    affine : numpy.ndarray
        (d + 1, d + 1) float64, read-only: maps static world points to moving world points.
    method : str
        The route of the winning candidate: ``"fourier-mellin"``, ``"principal-axes"``,
        ``"angle-sweep"``, ``"cube-rotations"`` or ``"centres-of-mass"``, with the translation's
        source after a slash (``"phase-correlation"``, ``"inverted-correlation"``,
        ``"gradient-correlation"``, ``"centres-of-mass"``).
    score : float
        Its normalised mutual information minus 1 (Studholme's NMI; 0 for independent images)
        on the coarse grid, after refinement.
    candidates : tuple of (str, float)
        Every candidate tried before refinement, with its score, best first.
    """

    affine: np.ndarray
    method: str
    score: float
    candidates: tuple[tuple[str, float], ...] = field(default=(), repr=False)


def _rotation_2d(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def _rotation_3d(rotvec: np.ndarray) -> np.ndarray:
    theta = float(np.linalg.norm(rotvec))
    if theta == 0.0:
        return np.eye(3)
    k = rotvec / theta
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * K + (1 - np.cos(theta)) * (K @ K)


def _homogeneous(linear: np.ndarray, offset: np.ndarray) -> np.ndarray:
    d = linear.shape[0]
    T = np.eye(d + 1)
    T[:d, :d] = linear
    T[:d, d] = offset
    return T


# ---- validation ------------------------------------------------------------------------------------

def _as_image(image: Any, name: str) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype.kind not in "iufb":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise ValueError(f"{name} must be 2-D or 3-D, got {arr.ndim} dimension(s)")
    if min(arr.shape) < 4:
        raise ValueError(f"{name} is too small to align (shape {arr.shape}; at least 4 along each axis)")
    out = np.array(arr, dtype=np.float64)  # a copy: the caller's array is never touched
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} has NaN or infinite values")
    if not np.ptp(out) > 0:
        raise ValueError(f"{name} is constant (no contrast to align)")
    return out


def _as_grid2world(g: Any, d: int, name: str) -> np.ndarray:
    if g is None:
        return np.eye(d + 1)
    m = np.array(g, dtype=np.float64)
    if m.shape != (d + 1, d + 1):
        raise ValueError(f"{name} must be a ({d + 1}, {d + 1}) matrix for a {d}-D image, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} has NaN or infinite entries")
    if not np.array_equal(m[d], np.eye(1, d + 1, d)[0]):
        raise ValueError(f"{name}'s last row must be [0, ..., 0, 1], got {m[d].tolist()}")
    sv = np.linalg.svd(m[:d, :d], compute_uv=False)
    if not sv[-1] > 1e-12 * max(sv[0], 1e-300):
        raise ValueError(f"{name} is singular")
    return m


def _as_mask(mask: Any, shape: tuple[int, ...], name: str) -> Optional[np.ndarray]:
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValueError(f"{name} must have the image's shape {shape}, got {m.shape}")
    if m.dtype.kind not in "biuf" or (m.dtype.kind == "f" and not np.all(np.isfinite(m))):
        raise ValueError(f"{name} must be boolean or numeric and finite")
    b = np.array(m != 0, dtype=bool)
    if not b.any():
        raise ValueError(f"{name} is empty (no nonzero entries)")
    return b


# ---- candidates ------------------------------------------------------------------------------------

@dataclass
class _Candidate:
    method: str
    rotation: np.ndarray     # (d, d)
    log_scale: float
    offset: np.ndarray       # T x = exp(log_scale) R (x - cs) + cm + offset
    score: float = -np.inf


class _Problem:
    """The coarse pair, its reference centres, the scorer and the model's degrees of freedom."""

    def __init__(self, static: Coarse, moving: Coarse, moving_mask: bool, model: str, threads: int) -> None:
        self.static, self.moving, self.model, self.threads = static, moving, model, threads
        self.d = static.ndim
        self.com_s, self.cov_s = moments(static)
        self.com_m, self.cov_m = moments(moving)
        self.scorer = Scorer(static, moving, moving.valid if moving_mask else None)

    def matrix(self, c: _Candidate) -> np.ndarray:
        lin = np.exp(c.log_scale) * c.rotation
        return _homogeneous(lin, self.com_m + c.offset - lin @ self.com_s)

    def from_matrix(self, method: str, T: np.ndarray, rotation: np.ndarray, log_scale: float) -> _Candidate:
        d = self.d
        lin = np.exp(log_scale) * rotation
        return _Candidate(method, rotation, log_scale, T[:d, d] + lin @ self.com_s - self.com_m)

    def score(self, c: _Candidate) -> _Candidate:
        c.score = self.scorer(self.matrix(c))
        return c

    @property
    def free_rotation(self) -> bool:
        return self.model != "translation"

    @property
    def free_scale(self) -> bool:
        return self.model in ("similarity", "affine")

    def pa_scale(self) -> float:
        """log of the isotropic scale that relates the foreground's second moments."""
        if not self.free_scale:
            return 0.0
        ds, dm = np.linalg.det(self.cov_s), np.linalg.det(self.cov_m)
        return float(np.log(dm / ds) / (2 * self.d)) if ds > 0 and dm > 0 else 0.0

    def pa_rotations(self) -> list[np.ndarray]:
        """Rotations that carry the static principal axes onto the moving ones: every signed
        permutation P with det(V_m P V_s^T) = +1 (2 in 2-D, 24 in 3-D)."""
        _, vs = np.linalg.eigh(self.cov_s)
        _, vm = np.linalg.eigh(self.cov_m)
        out = []
        for perm in itertools.permutations(range(self.d)):
            if self.d == 2 and perm != (0, 1):
                continue  # in 2-D the axes' order is fixed by the eigenvalues' order
            for signs in itertools.product((1.0, -1.0), repeat=self.d):
                P = np.zeros((self.d, self.d))
                P[list(perm), range(self.d)] = signs
                R = vm @ P @ vs.T
                if np.linalg.det(R) > 0:
                    out.append(R)
        return out


def _candidates_2d(p: _Problem) -> list[_Candidate]:
    cands = [_Candidate("centres-of-mass", np.eye(2), 0.0, np.zeros(2))]
    if not p.free_rotation:
        base = [("centres-of-mass", np.eye(2), 0.0)]
    else:
        base = []
        angle, scale = fourier_mellin(p.static, p.moving, p.threads)
        log_s = float(np.log(scale)) if p.free_scale else 0.0
        base += [("fourier-mellin", _rotation_2d(angle + k * np.pi), log_s) for k in (0, 1)]
        base += [("principal-axes", R, p.pa_scale()) for R in p.pa_rotations()]
        for k in range(int(round(360 / _SWEEP_STEP))):
            base.append(("angle-sweep", _rotation_2d(np.deg2rad(k * _SWEEP_STEP)), log_s))
    finder = ShiftFinder(p.static, p.threads)
    coms = [_Candidate(m, R, s, np.zeros(2)) for m, R, s in base]
    shifted = finder.shifts(p.moving, [p.matrix(c) for c in coms])
    for c, maps in zip(coms, shifted):
        cands.append(_Candidate(c.method + "/centres-of-mass", c.rotation, c.log_scale, c.offset))
        for name, T in maps:
            cands.append(p.from_matrix(f"{c.method}/{name}", T, c.rotation, c.log_scale))
    return cands


def _cube_rotations() -> list[np.ndarray]:
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            P = np.zeros((3, 3))
            P[list(perm), range(3)] = signs
            if np.linalg.det(P) > 0:
                out.append(P)
    return out


def _candidates_3d(p: _Problem) -> list[_Candidate]:
    cands = [_Candidate("centres-of-mass", np.eye(3), 0.0, np.zeros(3))]
    if p.free_rotation:
        s = p.pa_scale()
        cands += [_Candidate("principal-axes/centres-of-mass", R, s, np.zeros(3)) for R in p.pa_rotations()]
        cands += [_Candidate("cube-rotations/centres-of-mass", R, s, np.zeros(3))
                  for R in _cube_rotations() if not np.allclose(R, np.eye(3))]
    return cands


# ---- refinement ------------------------------------------------------------------------------------

def _refine(p: _Problem, c: _Candidate) -> _Candidate:
    """Coordinate pattern search on (rotation, log scale, offset), steps halved when no move
    helps: a deterministic polish of a candidate on the coarse score."""
    d = p.d
    n_rot = (1 if d == 2 else 3) if p.free_rotation else 0
    n_scale = 1 if p.free_scale else 0
    steps = np.array([np.deg2rad(4.0)] * n_rot + [0.04] * n_scale + [2.0] * d)
    floor = steps / 16
    x = np.zeros(len(steps))

    def make(x: np.ndarray) -> _Candidate:
        delta = (_rotation_2d(x[0]) if d == 2 else _rotation_3d(x[:3])) if n_rot else np.eye(d)
        log_s = c.log_scale + (x[n_rot] if n_scale else 0.0)
        return _Candidate(c.method, delta @ c.rotation, log_s, c.offset + x[n_rot + n_scale:])

    best = p.score(make(x))
    budget = _MAX_EVALUATIONS[d]
    while budget > 0 and np.any(steps >= floor):
        moved = False
        for i in range(len(x)):
            for sign in (1.0, -1.0):
                if budget <= 0:
                    break
                trial = x.copy()
                trial[i] += sign * steps[i]
                t = p.score(make(trial))
                budget -= 1
                if t.score > best.score:
                    best, x, moved = t, trial, True
                    break
        if not moved:
            steps = steps / 2
    return best


def _distinct(cands: list[_Candidate], p: _Problem, k: int) -> list[_Candidate]:
    """The k best candidates whose maps differ (by more than 3 degrees or 2 coarse samples)."""
    out: list[_Candidate] = []
    for c in cands:
        T = p.matrix(c)
        if all(np.abs(T - p.matrix(o))[:p.d, :p.d].max() > 0.05 or
               np.abs(T - p.matrix(o))[:p.d, p.d].max() > 2.0 for o in out):
            out.append(c)
        if len(out) == k:
            break
    return out


# ---- public entry ------------------------------------------------------------------------------------

def initial_affine(static: Any, moving: Any, *, static_grid2world: Any = None, moving_grid2world: Any = None,
                   model: str = "affine", static_mask: Any = None, moving_mask: Any = None,
                   threads: int = 0) -> InitialAlignment:
    """A starting affine for registering ``moving`` to ``static``, found without ``params0``.

    Parameters
    ----------
    static, moving : array_like
        2-D or 3-D real images (both the same dimensionality; shapes and pixel sizes may
        differ), in array axis order. Never modified.
    static_grid2world, moving_grid2world : array_like, optional
        (d + 1, d + 1) homogeneous maps from array index to world coordinates (identity when
        None). Must be finite, non-singular, last row [0, ..., 0, 1].
    model : {"translation", "rigid", "similarity", "affine"}
        Which degrees of freedom the initialiser may use: a translation only; rotation and
        translation; or also an isotropic scale ("similarity" and "affine": the initialiser
        never needs shear).
    static_mask, moving_mask : array_like, optional
        Nonzero where the image counts (the images' shapes); only those samples are scored.
    threads : int
        Worker threads of the core (0: all cores). The result is identical for every count.

    Returns
    -------
    InitialAlignment
        ``affine`` maps static world points to moving world points (DIPY's direction): the
        moving image resampled onto the static grid samples moving at
        ``inv(moving_grid2world) @ affine @ static_grid2world @ index``.

    Raises
    ------
    ValueError
        For images of different or unsupported dimensionality, NaN/inf values, constant images,
        empty or misshaped masks, a singular or malformed grid2world, or an unknown model.
    """
    if not isinstance(model, str) or model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    nthreads = as_int(threads, "threads", minimum=0)
    s_img = _as_image(static, "static")
    m_img = _as_image(moving, "moving")
    d = s_img.ndim
    if m_img.ndim != d:
        raise ValueError(f"static is {d}-D but moving is {m_img.ndim}-D")
    gs = _as_grid2world(static_grid2world, d, "static_grid2world")
    gm = _as_grid2world(moving_grid2world, d, "moving_grid2world")
    s_mask = _as_mask(static_mask, s_img.shape, "static_mask")
    m_mask = _as_mask(moving_mask, m_img.shape, "moving_mask")

    lo_s, hi_s = world_box(s_img.shape, gs)
    lo_m, hi_m = world_box(m_img.shape, gm)
    h = float(max((hi_s - lo_s).max() / (_TARGET[d] - 1), spacing(gs).min()))
    shape_s = tuple(int(np.floor(e / h + 1e-9)) + 1 for e in hi_s - lo_s)
    shape_m = tuple(int(np.floor(e / h + 1e-9)) + 1 for e in hi_m - lo_m)
    if min(shape_s + shape_m) < 4:
        raise ValueError("an image is too thin to align at the coarse resolution "
                         f"(coarse shapes {shape_s} and {shape_m})")
    cs = to_coarse(s_img, gs, s_mask, h, lo_s, shape_s, "static", nthreads)
    cm = to_coarse(m_img, gm, m_mask, h, lo_m, shape_m, "moving", nthreads)

    p = _Problem(cs, cm, m_mask is not None, model, nthreads)
    cands = _candidates_2d(p) if d == 2 else _candidates_3d(p)
    for c in cands:
        p.score(c)
    order = sorted(range(len(cands)), key=lambda i: (-cands[i].score, i))  # stable: deterministic ties
    ranked = [cands[i] for i in order]
    refined = [_refine(p, c) for c in _distinct(ranked, p, _REFINE_TOP)]
    best = max(refined, key=lambda c: c.score)  # first of equals wins
    affine = cm.to_world @ p.matrix(best) @ np.linalg.inv(cs.to_world)
    affine[d] = np.eye(1, d + 1, d)[0]
    affine.flags.writeable = False
    return InitialAlignment(affine, best.method, float(best.score),
                            tuple((c.method, float(c.score)) for c in ranked))
