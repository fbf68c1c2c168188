"""Independent NumPy implementation of the matching algorithm (the test oracle).

Written from spectralign's description of SWiFT-IR swim, in float64 and
without any code shared with the C++ core:

* windows of (w, h) pixels around each point; window pixel (i, j) shows image
  position (x - w/2 + j, y - h/2 + i). ``subpixel="fourier"`` (the engine's
  method) cuts the window at the integer origin floor(x - w/2) and applies
  the fractional remainder as a phase ramp on the cross-power spectrum;
  ``subpixel="bilinear"`` (spectralign's) resamples the window bilinearly.
* window 1 (and window 2 with ``apodize="both"``, the engine's default)
  apodized towards its mean (raised-cosine outer quarter) with the profile
  centred on the point itself (for cut windows: evaluated at j - frac), both
  windows mean-subtracted;
* cross-power spectrum S1 conj(S2) scaled by |.|^wht, inverse FFT;
* argmax peak folded to signed offsets, centre of mass of the mean-subtracted,
  clipped (2 rad + 1)^2 neighbourhood; shift = -(peak + com);
* refinement: p1 -= shift/2, p2 += shift/2, up to iters times, stopping when
  |shift| < tolerance.
"""
from __future__ import annotations

import numpy as np


def apodization_profile(n: int, frac: float = 0.0) -> np.ndarray:
    """spectralign's profile; pixel j sits at window coordinate j - frac."""
    xx = -1 + 2 * (np.arange(n) - frac) / max(n - 1, 1)
    prof = np.ones(n)
    edge = np.abs(xx) > 0.5
    prof[edge] = 0.5 - 0.5 * np.cos(2 * np.pi * xx[edge])
    prof[np.abs(xx) >= 1] = 0.0
    return prof


def _covered_mean(img: np.ndarray, x0: float, y0: float, w: int, h: int) -> float:
    H, W = img.shape
    c0, c1 = max(0, int(np.ceil(x0))), min(W, int(np.ceil(x0 + w)))
    r0, r1 = max(0, int(np.ceil(y0))), min(H, int(np.ceil(y0 + h)))
    if c1 <= c0 or r1 <= r0:
        return 0.0
    return float(img[r0:r1, c0:c1].astype(np.float64).mean())


def integer_window(img: np.ndarray, ix: int, iy: int, w: int, h: int, fill: float) -> np.ndarray:
    """img[iy:iy+h, ix:ix+w] with out-of-image pixels set to fill."""
    H, W = img.shape
    out = np.full((h, w), fill, dtype=np.float64)
    r0, r1 = max(0, iy), min(H, iy + h)
    c0, c1 = max(0, ix), min(W, ix + w)
    if r1 > r0 and c1 > c0:
        out[r0 - iy : r1 - iy, c0 - ix : c1 - ix] = img[r0:r1, c0:c1]
    return out


def bilinear_window(img: np.ndarray, cx: float, cy: float, w: int, h: int) -> np.ndarray:
    x0, y0 = cx - w / 2, cy - h / 2
    fill = _covered_mean(img, x0, y0, w, h)
    ix, iy = int(np.floor(x0)), int(np.floor(y0))
    fx, fy = x0 - ix, y0 - iy
    big = integer_window(img, ix, iy, w + 1, h + 1, fill)
    return ((1 - fy) * ((1 - fx) * big[:-1, :-1] + fx * big[:-1, 1:])
            + fy * ((1 - fx) * big[1:, :-1] + fx * big[1:, 1:]))


def _signed_frequencies(n: int) -> np.ndarray:
    """Angular frequency of each FFT bin; the Nyquist bin (even n) gets 0
    phase slope and is handled by taking the real part of its ramp."""
    return 2 * np.pi * np.fft.fftfreq(n)


def _phase_ramp(n: int, delta: float) -> np.ndarray:
    """exp(i * omega * delta) per bin; cos at the Nyquist bin (even n)."""
    ramp = np.exp(1j * _signed_frequencies(n) * delta)
    if n % 2 == 0:
        ramp[n // 2] = np.cos(np.pi * delta)
    return ramp


def _apodize(win: np.ndarray, frac: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    h, w = win.shape
    apo = apodization_profile(h, frac[1])[:, None] * apodization_profile(w, frac[0])[None, :]
    return win * apo + (1 - apo) * win.mean()


def swim(win1: np.ndarray, win2: np.ndarray, wht: float = -0.65, rad: int = 5,
         frac_delta: tuple[float, float] = (0.0, 0.0), apodize: str = "both",
         fracs: tuple = ((0.0, 0.0), (0.0, 0.0))):
    """(dx, dy, sx, sy, snr) for two windows; frac_delta = (fx1 - fx2, fy1 - fy2)
    is the subpixel offset still to apply (Fourier windows), fracs each
    window's own (fx, fy), where its apodization profile is centred."""
    a = np.asarray(win1, dtype=np.float64)
    b = np.asarray(win2, dtype=np.float64)
    h, w = a.shape
    for win in (a, b):  # no contrast: no information
        if win.std() <= 1e-6 * abs(win.mean()) or win.std() == 0:
            return 0.0, 0.0, 0.0, 0.0, 0.0
    a = _apodize(a, fracs[0])
    if apodize == "both":
        b = _apodize(b, fracs[1])
    a = a - a.mean()
    b = b - b.mean()
    prd = np.fft.fft2(a) * np.conj(np.fft.fft2(b))
    prd = prd * (np.abs(prd) ** 2 + 1e-300) ** (wht / 2)
    if frac_delta != (0.0, 0.0):
        prd = prd * _phase_ramp(h, frac_delta[1])[:, None] * _phase_ramp(w, frac_delta[0])[None, :]
    shf = np.real(np.fft.ifft2(prd))
    idx = int(np.argmax(shf))
    py, px = divmod(idx, w)
    peak = shf[py, px]
    if px >= w / 2:
        px -= w
    if py >= h / 2:
        py -= h
    n = 2 * rad + 1
    ys = (np.arange(n) + py - rad) % h
    xs = (np.arange(n) + px - rad) % w
    win = shf[np.ix_(ys, xs)]
    win = win - win.mean()
    win[win < 0] = 0
    off = np.arange(n) - rad
    sw = win.sum() + 1e-40
    cx = (win * off[None, :]).sum() / sw
    cy = (win * off[:, None]).sum() / sw
    vx = (win * (off[None, :] - cx) ** 2).sum() / sw
    vy = (win * (off[:, None] - cy) ** 2).sum() / sw
    snr = (peak - shf.mean()) / (shf.std() + 1e-40)
    return -(px + cx), -(py + cy), np.sqrt(vx), np.sqrt(vy), snr


def windows(img1, img2, p1, p2, w, h, subpixel):
    """The two windows and the subpixel offset swim() must still apply."""
    if subpixel == "bilinear":
        return (bilinear_window(img1, p1[0], p1[1], w, h),
                bilinear_window(img2, p2[0], p2[1], w, h), (0.0, 0.0), ((0.0, 0.0), (0.0, 0.0)))
    out, fracs = [], []
    for img, p in ((img1, p1), (img2, p2)):
        x0, y0 = p[0] - w / 2, p[1] - h / 2
        ix, iy = int(np.floor(x0)), int(np.floor(y0))
        out.append(integer_window(img, ix, iy, w, h, _covered_mean(img, x0, y0, w, h)))
        fracs.append((x0 - ix, y0 - iy))
    return out[0], out[1], (fracs[0][0] - fracs[1][0], fracs[0][1] - fracs[1][1]), tuple(fracs)


def refine(img1, img2, p1, p2, size, iters=1, tolerance=0.0, wht=-0.65, rad=5,
           subpixel="fourier", apodize="both"):
    """Returns (p1, p2, list of (dx, dy, sx, sy, snr) per iteration)."""
    w, h = (size, size) if np.ndim(size) == 0 else (int(size[0]), int(size[1]))
    p1 = np.array(p1, dtype=np.float64)
    p2 = np.array(p2, dtype=np.float64)
    history = []
    for _ in range(iters):
        a, b, delta, fracs = windows(img1, img2, p1, p2, w, h, subpixel)
        r = swim(a, b, wht, rad, delta, apodize, fracs)
        history.append(r)
        d = np.array(r[:2]) / 2
        p1 -= d
        p2 += d
        if tolerance > 0 and np.hypot(r[0], r[1]) < tolerance:
            break
    return p1, p2, history
