"""Accuracy and speed of rigid motion correction (issue 21): ``bench_stack.py --accuracy``.

The movie: 500 frames of 512 x 512 cut from scikit-image's retina photograph, a smooth
subpixel drift up to 10 px (gaussian-filtered random walk), noise 2% of the range, uint16
(the photograph's range mapped to 1000..30000, so int16 peers read the same numbers). Two
variants, so that no tool's interpolation model is favoured:

- *cubic*: each frame is the photograph shifted by cubic-spline interpolation
  (``scipy.ndimage.shift(order=3)``) and cropped (content enters at the edges);
- *area*: each pixel integrates an area: the photograph upsampled 8x (cubic), moved by whole
  fine pixels, block-averaged 8 x 8 (the truth is the drift rounded to 1/8 px).

Side by side in one run: ``CrossCorr`` with ``refine=None`` and ``"intensity"``, threads 1
and 2, with the true reference and with the default mean reference (the mean of the registered
frames, see ``spectralign_fast.register.motion_reference``; errors after removing the common
offset, since a mean reference sits at the mean position);
pystackreg ``StackReg(TRANSLATION)`` with the first frame as reference (errors against the
drift relative to frame 0, frame 0 left out); suite2p's rigid registration
(``suite2p.registration.register.register_frames(nonrigid=False)``, CPU, true reference;
integer shifts); ``skimage.registration.phase_cross_correlation(upsample_factor=100)``.
Speed: every repeat runs every tool back to back at one thread (torch and BLAS limited to
one thread), medians over repeats, ratios within a repeat. Apply: ``transform`` of the
uint16 movie with whole-pixel and with subpixel displacements against suite2p's
``register.shift_frames`` (``torch.roll``, its rigid apply), one thread.

Peers: ``python -m pip install pystackreg suite2p`` (suite2p pulls in torch, cellpose and
numba: too heavy for the ``bench`` extra).
"""
from __future__ import annotations

import statistics
import time
import warnings
from typing import Callable, Dict, List

import numpy as np
from scipy import ndimage as ndi

import spectralign_fast as sf

SIZE = 512
AMPLITUDE = 10.0
NOISE = 0.02
FINE = 8
LOW, HIGH = 1000.0, 30000.0


def drift(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    walk = ndi.gaussian_filter1d(rng.standard_normal((n, 2)).cumsum(axis=0), 8, axis=0)
    walk -= walk.mean(axis=0)
    return walk * (AMPLITUDE / np.abs(walk).max())


def _photo() -> np.ndarray:
    from skimage import data

    img = data.retina()[..., :3].mean(axis=-1)
    return LOW + (HIGH - LOW) * (img - img.min()) / np.ptp(img)


def _to_uint16(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    frames = frames + rng.normal(0, NOISE * (HIGH - LOW), frames.shape)
    return np.clip(np.round(frames), 0, 65535).astype(np.uint16)


def cubic_movie(shifts: np.ndarray, seed: int):
    photo = _photo()
    m = int(AMPLITUDE) + 8
    y0 = (photo.shape[0] - SIZE) // 2
    big = photo[y0 - m:y0 + SIZE + m, y0 - m:y0 + SIZE + m]
    coef = ndi.spline_filter(big, order=3)
    frames = np.empty((len(shifts), SIZE, SIZE))
    for k, d in enumerate(shifts):
        frames[k] = ndi.shift(coef, d, order=3, prefilter=False, mode="nearest")[m:m + SIZE, m:m + SIZE]
    rng = np.random.default_rng(seed)
    return _to_uint16(frames, rng), big[m:m + SIZE, m:m + SIZE].astype(np.float32), shifts


def area_movie(shifts: np.ndarray, seed: int):
    photo = _photo()
    m = int(AMPLITUDE) + 8
    width = SIZE + 2 * m
    y0 = (photo.shape[0] - width) // 2
    big = photo[y0:y0 + width, y0:y0 + width]
    zoom = ndi.zoom(np.eye(width), (FINE, 1), order=3, mode="nearest", grid_mode=True)

    def mat(shift: int) -> np.ndarray:
        idx = (m + np.arange(SIZE))[:, None] * FINE - shift + np.arange(FINE)[None]
        return zoom[idx].mean(axis=1)

    fine = np.round(shifts * FINE).astype(int)
    frames = np.empty((len(shifts), SIZE, SIZE))
    for k, (dy, dx) in enumerate(fine):
        frames[k] = mat(dy) @ big @ mat(dx).T
    a0 = mat(0)
    rng = np.random.default_rng(seed)
    return _to_uint16(frames, rng), (a0 @ big @ a0.T).astype(np.float32), fine / FINE


def err(d: np.ndarray, truth: np.ndarray, common: bool = False) -> float:
    e = d - truth
    if common:
        e = e - e.mean(axis=0)
    return float(np.abs(e).mean())


# --- peers --------------------------------------------------------------------------------


def pystackreg_fit(frames: np.ndarray, ref: np.ndarray) -> np.ndarray:
    from pystackreg import StackReg

    sr = StackReg(StackReg.TRANSLATION)
    out = np.empty((len(frames), 2))
    for k, f in enumerate(frames):
        tm = sr.register(ref, f)
        out[k] = tm[1, 2], tm[0, 2]
    return out


def suite2p_fit(frames: np.ndarray, ref: np.ndarray) -> np.ndarray:
    import torch
    from suite2p.registration import register

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = register.register_frames(frames.astype(np.int16), ref.astype(np.int16), nonrigid=False,
                                       device=torch.device("cpu"), apply_shifts=False, batch_size=100)
    off = res[3]
    return np.stack([off[0], off[1]], axis=1).astype(np.float64)


def skimage_fit(frames: np.ndarray, ref: np.ndarray) -> np.ndarray:
    from skimage.registration import phase_cross_correlation

    out = np.empty((len(frames), 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k, f in enumerate(frames):
            out[k] = -phase_cross_correlation(ref, f.astype(np.float32), upsample_factor=100)[0]
    return out


def suite2p_apply(frames: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    import torch
    from suite2p.registration import register

    d = torch.from_numpy(np.round(deltas).astype(np.int64))
    return register.shift_frames(torch.from_numpy(frames), d[:, 0], d[:, 1], device=torch.device("cpu"))


def seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --- the run --------------------------------------------------------------------------------


def run(n: int, peer_n: int, repeats: int) -> None:
    import os

    import torch

    torch.set_num_threads(1)
    shifts = drift(n, seed=21)
    movies = {"cubic": cubic_movie(shifts, seed=1), "area": area_movie(shifts, seed=2)}
    errors: Dict[str, Dict[str, float]] = {}
    fps_once: Dict[str, Dict[str, float]] = {}
    for name, (frames, ref, truth) in movies.items():
        e: Dict[str, float] = {}
        f: Dict[str, float] = {}
        for refine in (None, "intensity"):
            for threads in (1, 2):
                cc = sf.CrossCorr(refine=refine, threads=threads)
                key = f"ours refine={refine!r} threads={threads}"
                t = seconds(lambda: cc.fit(frames, ref))
                e[key + " (true ref)"] = err(cc.fit(frames, ref).toarray(), truth)
                f[key + " (true ref)"] = n / t
                t0 = time.perf_counter()
                d = cc.fit(frames).toarray()
                f[key + " (mean ref)"] = n / (time.perf_counter() - t0)
                e[key + " (mean ref)"] = err(d, truth, common=True)
        sub = frames[:peer_n]
        t0 = time.perf_counter()
        d = pystackreg_fit(sub, sub[0].astype(np.float64))
        f["pystackreg TRANSLATION (first frame)"] = peer_n / (time.perf_counter() - t0)
        e["pystackreg TRANSLATION (first frame)"] = err(d[1:], truth[1:peer_n] - truth[0])
        t0 = time.perf_counter()
        d = pystackreg_fit(sub, ref.astype(np.float64))
        f["pystackreg TRANSLATION (true ref)"] = peer_n / (time.perf_counter() - t0)
        e["pystackreg TRANSLATION (true ref)"] = err(d, truth[:peer_n])
        t0 = time.perf_counter()
        d = suite2p_fit(frames, ref)
        f["suite2p rigid (true ref)"] = n / (time.perf_counter() - t0)
        e["suite2p rigid (true ref)"] = err(d, truth)
        t0 = time.perf_counter()
        d = skimage_fit(sub, ref)
        f["skimage upsample_factor=100 (true ref)"] = peer_n / (time.perf_counter() - t0)
        e["skimage upsample_factor=100 (true ref)"] = err(d, truth[:peer_n])
        errors[name], fps_once[name] = e, f

    # Speed, interleaved: the cubic movie, true reference, one thread unless stated.
    frames, ref, truth = movies["cubic"]
    few = frames[:20]
    speed: Dict[str, List[float]] = {k: [] for k in ("none1", "int1", "none2", "int2", "mean_int1", "stackreg",
                                                     "suite2p", "skimage", "ap_whole", "ap_sub", "ap_s2p")}
    whole = np.round(truth)
    sub_d = truth.copy()
    m_whole = sf.RegistrationModel._from_arrays(whole, None, "bench", 1)
    m_sub = sf.RegistrationModel._from_arrays(sub_d, None, "bench", 1)
    out = np.empty_like(frames)
    s2p_in = frames.astype(np.int16)
    for _ in range(repeats):
        speed["none1"].append(n / seconds(lambda: sf.CrossCorr(refine=None, threads=1).fit(frames, ref)))
        speed["int1"].append(n / seconds(lambda: sf.CrossCorr(threads=1).fit(frames, ref)))
        speed["none2"].append(n / seconds(lambda: sf.CrossCorr(refine=None, threads=2).fit(frames, ref)))
        speed["int2"].append(n / seconds(lambda: sf.CrossCorr(threads=2).fit(frames, ref)))
        speed["mean_int1"].append(n / seconds(lambda: sf.CrossCorr(threads=1).fit(frames)))
        speed["stackreg"].append(len(few) / seconds(lambda: pystackreg_fit(few, ref.astype(np.float64))))
        speed["suite2p"].append(n / seconds(lambda: suite2p_fit(frames, ref)))
        speed["skimage"].append(len(few) / seconds(lambda: skimage_fit(few, ref)))
        speed["ap_whole"].append(n / seconds(lambda: m_whole.transform(frames, threads=1, out=out)))
        speed["ap_sub"].append(n / seconds(lambda: m_sub.transform(frames, threads=1, out=out)))
        speed["ap_s2p"].append(n / seconds(lambda: suite2p_apply(s2p_in, whole)))
    med = {k: statistics.median(v) for k, v in speed.items()}

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(speed[a], speed[b]))

    from spectralign_fast._config import cpu_name

    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical CPUs; {n} frames of {SIZE}x{SIZE} uint16 "
          f"(pystackreg and skimage: the first {peer_n}); speed: median of {repeats} interleaved repeats\n")
    print("| mean abs error (px) | cubic | area | frames/s (cubic, this run) |")
    print("|---|---|---|---|")
    for key in errors["cubic"]:
        print(f"| {key} | {errors['cubic'][key]:.4f} | {errors['area'][key]:.4f} | "
              f"{fps_once['cubic'][key]:.0f} |")
    print()
    print("| frames/s, 512x512, interleaved | value |")
    print("|---|---|")
    labels = {"none1": "ours refine=None, threads=1", "int1": "ours refine='intensity', threads=1",
              "none2": "ours refine=None, threads=2", "int2": "ours refine='intensity', threads=2",
              "mean_int1": "ours default (mean of registered frames, refine), threads=1",
              "stackreg": "pystackreg TRANSLATION", "suite2p": "suite2p rigid (torch CPU, 1 thread)",
              "skimage": "skimage phase_cross_correlation(upsample_factor=100)",
              "ap_whole": "transform, whole-pixel shifts (copy path), uint16, threads=1",
              "ap_sub": "transform, subpixel shifts (linear), uint16, threads=1",
              "ap_s2p": "suite2p shift_frames (torch.roll), int16, 1 thread"}
    for k, label in labels.items():
        print(f"| {label} | {med[k]:.0f} |")
    print()
    print("| ratio (same repeat, median) | value |")
    print("|---|---|")
    print(f"| refine='intensity' threads=1 / pystackreg | {ratio('int1', 'stackreg'):.0f}x |")
    print(f"| refine=None threads=1 / pystackreg | {ratio('none1', 'stackreg'):.0f}x |")
    print(f"| default mean-reference fit threads=1 / pystackreg | {ratio('mean_int1', 'stackreg'):.0f}x |")
    print(f"| refine='intensity' / refine=None, threads=1 | {ratio('int1', 'none1'):.2f} |")
    print(f"| refine='intensity' threads=1 / suite2p | {ratio('int1', 'suite2p'):.1f}x |")
    print(f"| transform whole-pixel / suite2p shift_frames | {ratio('ap_whole', 'ap_s2p'):.1f}x |")
    print(f"| transform subpixel linear / suite2p shift_frames (integer) | {ratio('ap_sub', 'ap_s2p'):.1f}x |")
