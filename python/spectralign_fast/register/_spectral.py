"""Fourier-Mellin rotation/scale and phase-correlation translations for the global initialiser.

Every correlation (the log-polar maps' and the translations') runs on the C++ core's stack
registration (``_core.stackreg.StackRegCore``: whitened FFT cross-power, subpixel peak), several
frames per call. The magnitude spectra that Fourier-Mellin resamples are computed with
``numpy.fft`` because the core exposes no plain forward transform to Python; they are two
coarse (about 128 x 128) transforms per call. The log-polar resampling runs on the warp core
(``spectralign_fast.warp`` with a displacement field).
"""
from __future__ import annotations

import numpy as np

from .. import _core
from .._validate import as_core_array
from ..render.warp import warp
from ._coarse import Coarse

_N_THETA = 360          # log-polar angle samples over [0, 180) degrees
_N_RHO = 128            # log-polar radius samples
_WHITEN_LOGPOLAR = -1.0  # phase correlation for the log-polar maps
_WHITEN_SHIFT = -0.65    # the matcher's default for translations


def fast_size(n: int) -> int:
    """The smallest m >= n whose only prime factors are 2, 3, 5 and 7."""
    m = max(1, int(n))
    while True:
        k = m
        for p in (2, 3, 5, 7):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def _tukey(n: int, alpha: float = 0.5) -> np.ndarray:
    x = (np.arange(n, dtype=np.float64) + 0.5) / n
    w = np.ones(n)
    edge = alpha / 2
    lo, hi = x < edge, x > 1 - edge
    w[lo] = 0.5 * (1 - np.cos(np.pi * x[lo] / edge))
    w[hi] = 0.5 * (1 - np.cos(np.pi * (1 - x[hi]) / edge))
    return w


def zero_mean(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The image minus its mean over ``valid``, 0 outside ``valid`` (float64)."""
    img = image.astype(np.float64)
    return np.where(valid, img - img[valid].mean(), 0.0)


def gradient_magnitude(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """|grad image| (central differences), 0 where a neighbour lies outside ``valid``."""
    img = np.where(valid, image.astype(np.float64), image[valid].mean())
    inner = valid.copy()
    for axis in range(image.ndim):
        inner &= np.roll(valid, 1, axis) & np.roll(valid, -1, axis)
    g = np.sqrt(sum(gi ** 2 for gi in np.gradient(img)))
    return np.where(inner, g, 0.0)


# ---- Fourier-Mellin (2-D) -----------------------------------------------------------------------

def _log_polar_spectrum(c: Coarse, n: int, r_min: float, r_max: float, threads: int) -> np.ndarray:
    """Log-polar map (rho rows, theta columns) of the windowed, high-pass emphasised magnitude
    spectrum of a coarse image padded to n x n."""
    v = zero_mean(c.image, c.valid)
    rows, cols = v.shape
    yy, xx = np.meshgrid(np.arange(rows) - (rows - 1) / 2, np.arange(cols) - (cols - 1) / 2, indexing="ij")
    radius = min(rows, cols) / 2
    r = np.sqrt(yy ** 2 + xx ** 2) / radius
    v = v * np.where(r < 1, 0.5 * (1 + np.cos(np.pi * np.minimum(r, 1))), 0.0)  # radial Hann
    padded = np.zeros((n, n))
    r0, c0 = (n - rows) // 2, (n - cols) // 2
    padded[r0:r0 + rows, c0:c0 + cols] = v
    mag = np.abs(np.fft.fftshift(np.fft.fft2(padded)))
    f = np.fft.fftshift(np.fft.fftfreq(n))
    cosprod = np.cos(np.pi * f)[:, None] * np.cos(np.pi * f)[None, :]
    mag = mag * (1.0 - cosprod) * (2.0 - cosprod)  # Reddy & Chatterji's high-pass emphasis
    mag = np.log1p(mag / max(float(mag.mean()), 1e-30))
    theta = np.pi * np.arange(_N_THETA) / _N_THETA
    rho = np.exp(np.linspace(np.log(r_min), np.log(r_max), _N_RHO))
    centre = n // 2
    coords = np.empty((_N_RHO, _N_THETA, 2), np.float64)
    coords[..., 0] = centre + rho[:, None] * np.cos(theta)[None, :]
    coords[..., 1] = centre + rho[:, None] * np.sin(theta)[None, :]
    grid = np.stack(np.meshgrid(np.arange(_N_RHO), np.arange(_N_THETA), indexing="ij"), axis=-1)
    field = (coords - grid).astype(np.float32)
    lp = warp(as_core_array(mag, np.float32), field, order=1, mode="nearest", threads=threads)
    lp = lp.astype(np.float64)
    lp -= lp.mean()
    lp *= _tukey(_N_RHO)[:, None]
    out = np.zeros((2 * _N_RHO, _N_THETA))
    out[: _N_RHO] = lp
    return out


def fourier_mellin(static: Coarse, moving: Coarse, threads: int) -> tuple[float, float]:
    """Rotation angle (radians, mod pi) and scale of the map from static to moving coordinates:
    ``T x = scale * R(angle) x + t`` with ``moving(T x) ~ static(x)`` and
    ``R(a) = [[cos a, -sin a], [sin a, cos a]]`` acting on (row, column) indices."""
    n = fast_size(max(static.image.shape + moving.image.shape))
    r_min, r_max = 2.0, 0.45 * n
    ls = _log_polar_spectrum(static, n, r_min, r_max, threads)
    lm = _log_polar_spectrum(moving, n, r_min, r_max, threads)
    d_rho = (np.log(r_max) - np.log(r_min)) / (_N_RHO - 1)
    max_rho = int(np.ceil(np.log(2.5) / d_rho))
    core = _core.stackreg.StackRegCore(as_core_array(ls[None], np.float32), _WHITEN_LOGPOLAR, True,
                                       [max_rho, -1])
    deltas, status = core.fit(as_core_array(lm[None], np.float32), 0, threads)
    if status[0] != 0 or not np.all(np.isfinite(deltas)):
        return 0.0, 1.0
    # lm(x) ~ ls(x - delta), delta = (-log(scale) / d_rho, angle / d_theta)
    angle = float(deltas[0, 1]) * np.pi / _N_THETA
    scale = float(np.exp(-float(deltas[0, 0]) * d_rho))
    return angle, scale


# ---- translations by phase correlation -----------------------------------------------------------

class ShiftFinder:
    """Translations that best line up the moving image, pulled onto the static grid through each
    of several candidate maps, with the static image: by whitened cross-correlation of the
    intensities, of the negated intensities (an inverted contrast) and of the gradient
    magnitudes (a modality-robust edge map), all frames of one core call."""

    def __init__(self, static: Coarse, threads: int) -> None:
        self.static = static
        self.threads = threads
        shape = static.image.shape
        self.shape = tuple(fast_size(int(np.ceil(1.5 * s))) for s in shape)
        window = np.ones(shape)
        for axis, n in enumerate(shape):
            sh = [1] * len(shape)
            sh[axis] = n
            window = window * _tukey(n).reshape(sh)
        self.window = np.zeros(self.shape)
        self.window[tuple(slice(0, s) for s in shape)] = window
        self.refs = [self._pad(zero_mean(static.image, static.valid)),
                     self._pad(gradient_magnitude(static.image, static.valid))]

    def _pad(self, image: np.ndarray) -> np.ndarray:
        out = np.zeros(self.shape)
        out[tuple(slice(0, s) for s in image.shape)] = image
        return out * self.window

    def shifts(self, moving: Coarse, maps: list[np.ndarray]) -> list[list[tuple[str, np.ndarray]]]:
        """For each map T (static coarse index -> moving coarse index): the corrected maps
        ``T @ translate(delta)`` with the correlation's name, one per correlation (intensity,
        negated, gradients); a correlation that fails gives no map."""
        pulled = [warp(moving.image, T, output_shape=self.shape, order=1, mode="constant", cval=-1.0,
                       threads=self.threads) for T in maps]
        intensity = np.stack([self.window * zero_mean(p, p >= 0) if (p >= 0).any() else self.window * 0
                              for p in pulled])
        grads = np.stack([self.window * gradient_magnitude(p, p >= 0) if (p >= 0).any() else self.window * 0
                          for p in pulled])
        out: list[list[tuple[str, np.ndarray]]] = [[] for _ in maps]
        runs = ((self.refs[0], np.concatenate([intensity, -intensity]), ("phase-correlation", "inverted-correlation")),
                (self.refs[1], grads, ("gradient-correlation",)))
        for ref, frames, names in runs:
            if not np.ptp(ref) > 0:
                continue
            core = _core.stackreg.StackRegCore(as_core_array(ref[None], np.float32), _WHITEN_SHIFT, True, [])
            deltas, status = core.fit(as_core_array(frames, np.float32), 0, self.threads)
            for k in range(len(frames)):
                if status[k] != 0 or not np.all(np.isfinite(deltas[k])):
                    continue
                i = k % len(maps)
                shift = np.eye(len(self.shape) + 1)
                shift[:-1, -1] = deltas[k]  # frame(x) ~ ref(x - delta): T(x + delta) lines up
                out[i].append((names[k // len(maps)], maps[i] @ shift))
        return out
