"""Stack registration benchmark: frames per second of CrossCorr.fit and
RegistrationModel.transform at 512 x 512, threads=1 and 2, measured in the
same run as (a) thunder-registration's algorithm in NumPy (rfftn
cross-correlation, integer peak; tests/thunder_oracle.py) and (b)
skimage.registration.phase_cross_correlation(upsample_factor=10), (a') the same
algorithm as (a) with pyFFTW plans (FFTW_MEASURE, wisdom kept, the transforms
planned once per shape and thread count: the fairest Python FFT peer), plus the FFT
floor (one r2c + one c2r of a frame through the core's plans). Every repeat
measures everything back to back; ratios are taken within a repeat, then the
median over repeats (the machine is shared). Prints Markdown for
bench/RESULTS.md.

    python bench/bench_stack.py [--quick]
    python bench/bench_stack.py --accuracy [--quick]

``--accuracy`` (issue 21, bench/bench_stack_accuracy.py): a 500-frame 512 x 512 uint16 movie
with smooth subpixel drift, made by cubic interpolation and by pixel-area integration;
mean absolute error and frames/s of ``CrossCorr(refine=None | "intensity")`` against
pystackreg, suite2p and skimage side by side, and ``transform`` against suite2p's apply.
Its peers: ``python -m pip install pystackreg suite2p`` (suite2p brings torch: not in the
``bench`` extra).
"""
from __future__ import annotations

import os

# BLAS worker threads spin on this 2-core machine and steal time from the
# single-threaded measurements.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import thunder_oracle  # noqa: E402

import spectralign_fast as sf  # noqa: E402
from spectralign_fast import _core  # noqa: E402
from spectralign_fast._config import cpu_name  # noqa: E402

if not hasattr(_core, "dev"):  # the FFT floor lives in the dev tools
    sys.exit("bench_stack.py needs spectralign_fast._core.dev: build with `make install` "
             "(pip: -C cmake.define.SPECTRALIGN_DEV_TOOLS=ON)")




class PyfftwThunder:
    """thunder-registration's algorithm (tests/thunder_oracle.py) on planned pyFFTW transforms:
    rfftn and irfftn planned once (FFTW_MEASURE) for the frame shape, executed on aligned buffers."""

    def __init__(self, shape, threads: int) -> None:
        import pyfftw

        pyfftw.config.PLANNER_EFFORT = "FFTW_MEASURE"
        self.a = pyfftw.empty_aligned(shape, dtype="float64")
        self.fwd = pyfftw.builders.rfftn(self.a, threads=threads, planner_effort="FFTW_MEASURE")
        self.spec = pyfftw.empty_aligned(self.fwd.output_shape, dtype="complex128")
        self.inv = pyfftw.builders.irfftn(self.spec, s=shape, threads=threads, planner_effort="FFTW_MEASURE")
        self.shape = shape

    def displacement(self, image: np.ndarray, reference_spectrum_conj: np.ndarray) -> list:
        self.a[...] = image
        f = self.fwd()
        np.multiply(f, reference_spectrum_conj, out=self.spec)
        c = np.abs(self.inv(self.spec))
        inds = np.unravel_index(np.argmax(c), self.shape)
        return [int(d - n) if d > n // 2 else int(d) for d, n in zip(inds, self.shape)]

    def reference(self, reference: np.ndarray) -> np.ndarray:
        self.a[...] = reference
        return self.fwd().conjugate()


def seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def movie(n: int, size: int, seed: int = 0):
    """n frames of the retina photograph with integer drift up to 10 px, plus noise."""
    from skimage import data

    img = data.retina()[..., :3].mean(axis=-1).astype(np.float32) / 255
    rng = np.random.default_rng(seed)
    shifts = rng.integers(-10, 11, (n, 2))
    y0 = x0 = (img.shape[0] - size) // 2
    frames = np.array([img[y0 - dy:y0 - dy + size, x0 - dx:x0 - dx + size] for dy, dx in shifts])
    frames += rng.normal(0, 0.02, frames.shape).astype(np.float32)
    return frames, img[y0:y0 + size, x0:x0 + size].copy()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer frames and repeats")
    ap.add_argument("--accuracy", action="store_true",
                    help="issue 21: accuracy against pystackreg, suite2p and skimage (bench_stack_accuracy.py)")
    args = ap.parse_args()
    if args.accuracy:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import bench_stack_accuracy

        if args.quick:
            bench_stack_accuracy.run(60, 20, 2)
        else:
            bench_stack_accuracy.run(500, 500, 5)
        return
    size = 512
    n = 32 if args.quick else 96
    n_other = 8 if args.quick else 24
    repeats = 3 if args.quick else 7
    frames, ref = movie(n, size)
    from scipy.ndimage import shift as nd_shift
    from skimage.registration import phase_cross_correlation

    model = sf.CrossCorr(threads=1).fit(frames, ref)  # plans, warm-up
    out = np.empty_like(frames)
    model.transform(frames, out=out)
    _core.stackreg.shift_frames(frames[:2], model.toarray()[:2], "fourier", 1)  # plans

    def thunder_fit():
        for f in frames[:n_other]:
            thunder_oracle.displacement(f, ref)

    peer1 = PyfftwThunder(ref.shape, 1)
    peer2 = PyfftwThunder(ref.shape, 2)
    ref1, ref2 = peer1.reference(ref), peer2.reference(ref)
    assert all(peer1.displacement(f, ref1) == thunder_oracle.displacement(f, ref) for f in frames[:4])

    def pyfftw_fit(peer, ref_conj):
        def run():
            for f in frames[:n_other]:
                peer.displacement(f, ref_conj)
        return run

    def skimage_fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for f in frames[:n_other]:
                phase_cross_correlation(ref, f, upsample_factor=10)

    deltas = model.toarray()

    def scipy_transform():
        # thunder-registration's Displacement.apply: scipy.ndimage.shift, cubic spline, nearest.
        for f, d in zip(frames[:n_other], deltas):
            nd_shift(f, -d, mode="nearest")

    keys = ("floor", "fit1", "fit2", "fit_int1", "tr1", "tr2", "cubic1", "fourier1", "thunder", "pyfftw1", "pyfftw2", "skimage",
            "scipy")
    fps = {k: [] for k in keys}
    floor_reps = 20 if args.quick else 60
    for _ in range(repeats):
        fps["floor"].append(1.0 / _core.dev.fft_floor(size, size, floor_reps, 1))
        fps["fit1"].append(n / seconds(lambda: sf.CrossCorr(threads=1).fit(frames, ref)))
        fps["fit2"].append(n / seconds(lambda: sf.CrossCorr(threads=2).fit(frames, ref)))
        fps["fit_int1"].append(n / seconds(lambda: sf.CrossCorr(subpixel=False, threads=1).fit(frames, ref)))
        fps["tr1"].append(n / seconds(lambda: model.transform(frames, threads=1, out=out)))
        fps["tr2"].append(n / seconds(lambda: model.transform(frames, threads=2, out=out)))
        fps["cubic1"].append(n / seconds(lambda: model.transform(frames, interpolation="cubic", threads=1, out=out)))
        fps["fourier1"].append(n / seconds(lambda: model.transform(frames, interpolation="fourier", threads=1, out=out)))
        fps["thunder"].append(n_other / seconds(thunder_fit))
        fps["pyfftw1"].append(n_other / seconds(pyfftw_fit(peer1, ref1)))
        fps["pyfftw2"].append(n_other / seconds(pyfftw_fit(peer2, ref2)))
        fps["skimage"].append(n_other / seconds(skimage_fit))
        fps["scipy"].append(n_other / seconds(scipy_transform))
    med = {k: statistics.median(v) for k, v in fps.items()}

    def ratio(a, b):
        return statistics.median(x / y for x, y in zip(fps[a], fps[b]))

    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical CPUs; FFTW {sf.config()['fftw_version']} "
          f"({_core.config.fftw_source}); {n} frames of {size}x{size} (others: {n_other}), median of {repeats} "
          f"interleaved repeats\n")
    print("| frames/s at 512x512 | threads=1 | threads=2 | 2-thread scaling |")
    print("|---|---|---|---|")
    print(f"| FFT floor (1 r2c + 1 c2r, core plans) | {med['floor']:.0f} | | |")
    print(f"| `CrossCorr().fit` (whitened, subpixel) | {med['fit1']:.0f} | {med['fit2']:.0f} | "
          f"{ratio('fit2', 'fit1'):.2f}x |")
    print(f"| `CrossCorr(subpixel=False).fit` | {med['fit_int1']:.0f} | | |")
    print(f"| `transform` (linear) | {med['tr1']:.0f} | {med['tr2']:.0f} | {ratio('tr2', 'tr1'):.2f}x |")
    print(f"| `transform` (cubic) | {med['cubic1']:.0f} | | |")
    print(f"| `transform` (fourier) | {med['fourier1']:.0f} | | |")
    print(f"| (a) thunder-registration's algorithm (NumPy rfftn, integer peak) | {med['thunder']:.0f} | | |")
    print(f"| (a') the same with planned pyFFTW transforms (FFTW_MEASURE) | {med['pyfftw1']:.0f} | "
          f"{med['pyfftw2']:.0f} | {ratio('pyfftw2', 'pyfftw1'):.2f}x |")
    print(f"| (b) `skimage.registration.phase_cross_correlation(upsample_factor=10)` | {med['skimage']:.0f} | | |")
    print(f"| thunder's `apply` (`scipy.ndimage.shift`, cubic spline, nearest) | {med['scipy']:.0f} | | |")
    print()
    print("| ratio (same repeat, median) | value |")
    print("|---|---|")
    print(f"| fit, threads=1 / FFT floor | {ratio('fit1', 'floor'):.2f} |")
    print(f"| fit, threads=1 / (a) thunder | {ratio('fit1', 'thunder'):.1f}x |")
    print(f"| fit, threads=1 / (a') thunder on pyFFTW | {ratio('fit1', 'pyfftw1'):.1f}x |")
    print(f"| fit, threads=2 / (a') thunder on pyFFTW, 2 threads | {ratio('fit2', 'pyfftw2'):.1f}x |")
    print(f"| fit, threads=1 / (b) skimage | {ratio('fit1', 'skimage'):.1f}x |")
    print(f"| fit, threads=2 / (a) thunder | {ratio('fit2', 'thunder'):.1f}x |")
    print(f"| fit, threads=2 / (b) skimage | {ratio('fit2', 'skimage'):.1f}x |")
    print(f"| transform linear, threads=1 / scipy.ndimage.shift | {ratio('tr1', 'scipy'):.0f}x |")


if __name__ == "__main__":
    main()
