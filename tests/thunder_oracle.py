"""Independent NumPy re-implementation of thunder-registration's CrossCorr
(thunder itself no longer imports on current NumPy), plus reference shifts.

thunder-registration's Displacement.compute(image, reference): the
cross-correlation irfftn(rfftn(image) * conj(rfftn(reference))), its
absolute value, the first argmax, and indices above n // 2 wrapped to
negative. Displacement.apply shifts by -delta with mode='nearest'.
"""
from __future__ import annotations

import numpy as np


def displacement(image: np.ndarray, reference: np.ndarray) -> list[int]:
    """thunder-registration's integer displacement of image relative to reference."""
    a = np.asarray(image, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    s = a.shape
    f = np.fft.rfftn(a)
    f *= np.fft.rfftn(b).conjugate()
    c = np.abs(np.fft.irfftn(f, s, axes=range(len(s))))
    inds = np.unravel_index(np.argmax(c), s)
    return [int(d - n) if d > n // 2 else int(d) for d, n in zip(inds, s)]


def local_displacement(image: np.ndarray, reference: np.ndarray, axis: int) -> list[list[int]]:
    """thunder-registration's LocalDisplacement.compute: one 2-D displacement per plane along axis."""
    return [displacement(a, b) for a, b in zip(np.rollaxis(image, axis, 0), np.rollaxis(reference, axis, 0))]


def fit(images: np.ndarray, reference: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Displacements of every frame, (n, ndim) or (n, planes, 2) with axis."""
    if axis is None:
        return np.array([displacement(im, reference) for im in images])
    return np.array([local_displacement(im, reference, axis) for im in images])


def shift_integer(image: np.ndarray, delta) -> np.ndarray:
    """out[x] = image[clamp(x + delta)] for integer delta (nearest-edge fill)."""
    out = np.asarray(image)
    for ax, d in enumerate(delta):
        d = int(d)
        idx = np.clip(np.arange(out.shape[ax]) + d, 0, out.shape[ax] - 1)
        out = np.take(out, idx, axis=ax)
    return out


def catmull_rom_weights(t: float) -> np.ndarray:
    """Keys cubic convolution (a = -0.5) weights of taps -1, 0, 1, 2."""
    def k(x):
        x = abs(x)
        if x < 1:
            return 1.5 * x**3 - 2.5 * x**2 + 1
        if x < 2:
            return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2
        return 0.0
    return np.array([k(t + 1), k(t), k(t - 1), k(t - 2)])


def shift_cubic(image: np.ndarray, delta) -> np.ndarray:
    """out[x] = cubic convolution of image at x + delta, indices clamped (float64)."""
    out = np.asarray(image, dtype=np.float64)
    for ax, d in enumerate(delta):
        base = int(np.floor(d))
        w = catmull_rom_weights(d - base)
        n = out.shape[ax]
        acc = 0
        for j, wj in zip(range(-1, 3), w):
            idx = np.clip(np.arange(n) + base + j, 0, n - 1)
            acc = acc + wj * np.take(out, idx, axis=ax)
        out = acc
    return out
