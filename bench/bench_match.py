"""Matching benchmark: one refine iteration against the FFT floor and the
NumPy oracle, and refine_many throughput, all measured side by side in one
run (medians of several repeats). Prints Markdown for bench/RESULTS.md.

    python bench/bench_match.py [--quick] [--no-accuracy] [--planning patient]
"""
from __future__ import annotations

import os

# BLAS worker threads spin on this 2-core machine and steal time from the
# single-threaded measurements; numpy's FFT needs none.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# Plans made here with the rigor asked for, not taken from the user's wisdom
# cache (which a "patient" session elsewhere may have filled).
os.environ["SPECTRALIGN_FFTW_WISDOM"] = ""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import swim_oracle  # noqa: E402

import spectralign_fast as sf  # noqa: E402
from spectralign_fast import _core  # noqa: E402
from spectralign_fast._config import cpu_name  # noqa: E402

if not hasattr(_core, "dev"):  # the FFT floor lives in the dev tools
    sys.exit("bench_match.py needs spectralign_fast._core.dev: build with `make install` "
             "(pip: -C cmake.define.SPECTRALIGN_DEV_TOOLS=ON)")


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def test_image(size: int) -> np.ndarray:
    from skimage import data

    img = data.retina()[..., :3].mean(axis=-1).astype(np.float32) / 255
    reps = -(-size // img.shape[0])
    return np.tile(img, (reps, reps))[:size, :size].copy()


def matcher_2d(img: np.ndarray, moved: np.ndarray, n: int, Q: np.ndarray) -> sf.Matcher:
    """A matcher whose workspaces take the 2-D transform path at every size:
    the previous version's pipeline, for a side-by-side comparison."""
    previous = _core.dev.set_fused_min_pixels(2**62)
    try:
        m = sf.Matcher(img, moved)
        m.refine_many(Q[:4], Q[:4], n, threads=2)  # workspaces made now, with that path
    finally:
        _core.dev.set_fused_min_pixels(previous)
    return m


def speed(sizes, repeats: int) -> list[str]:
    times = ["| window | FFT floor (2 r2c + 1 c2r) "
             "| refine, 1 iteration, 1 call | refine, 3 iterations, per iteration "
             "| refine_many, 1 iteration, per pair | refine_many, 3 iterations, per iteration "
             "| same, 2-D transform path (previous version) | NumPy oracle, 1 iteration |",
             "|---|---|---|---|---|---|---|---|"]
    ratios = ["| window | 1 call / floor | refine 3 iterations / floor | refine_many 3 iterations / floor "
              "| speed-up over the 2-D path | vs NumPy, 1 call "
              "| vs NumPy, refine_many 3 iterations | refine_many pairs/s, threads=1 | threads=2 "
              "| 2-thread scaling | 2-D path, 2-thread scaling | FFT floor alone, 2-thread scaling |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    img = test_image(2600)
    moved = np.roll(img, (3, -2), axis=(0, 1))
    rng = np.random.default_rng(0)
    m = sf.Matcher(img, moved)
    for n in sizes:
        floor_reps = max(3, int(2e8 // (n * n * 20)))
        lo, hi = n / 2 + 8, img.shape[0] - n / 2 - 8
        pairs = 24 if n <= 512 else 8
        P = rng.uniform(lo, hi, (pairs, 2))
        # Throughput over a bigger batch, so thread start-up averages out.
        many = 96 if n <= 512 else 16
        Q = rng.uniform(lo, hi, (many, 2))
        m.refine_many(Q[:4], Q[:4], n, threads=2)  # plans, workspaces
        m2d = matcher_2d(img, moved, n, Q)

        def one_pass():
            # Single calls walk through fresh points, as refine_many does, so
            # neither measurement enjoys windows still hot in the cache.
            for p in P:
                m.refine(p, p, n)

        def three_pass():
            for p in P:
                m.refine(p, p, n, iters=3)

        # Every repeat measures everything back to back; ratios are taken
        # within a repeat, then the median over repeats (the machine is shared).
        samples = {k: [] for k in ("floor", "one", "three", "batch", "batch3", "batch3_2d", "numpy", "t1", "t2",
                                  "t1_2d", "t2_2d", "fft1", "fft2")}
        for _ in range(repeats):
            samples["floor"].append(_core.dev.fft_floor(n, n, floor_reps))
            samples["one"].append(median_time(one_pass, 1) / pairs)
            samples["three"].append(median_time(three_pass, 1) / (3 * pairs))
            samples["batch"].append(median_time(lambda: m.refine_many(P, P, n, iters=1, threads=1), 1) / pairs)
            # The production path (montage): a batch refined with 3 iterations.
            samples["batch3"].append(median_time(lambda: m.refine_many(P, P + 0.4, n, iters=3, threads=1), 1)
                                     / (3 * pairs))
            samples["batch3_2d"].append(median_time(lambda: m2d.refine_many(P, P + 0.4, n, iters=3, threads=1), 1)
                                        / (3 * pairs))
        # Thread scaling is the noisiest figure on a shared host (the second
        # vCPU comes and goes): many 1-vs-2 thread pairs, back to back, and
        # the same for the FFT floor alone (each thread transforming its own
        # fixed inputs, nothing else moving through memory).
        for _ in range(5 * repeats):
            samples["t1"].append(median_time(lambda: m.refine_many(Q, Q, n, iters=1, threads=1), 1) / many)
            samples["t2"].append(median_time(lambda: m.refine_many(Q, Q, n, iters=1, threads=2), 1) / many)
            samples["t1_2d"].append(median_time(lambda: m2d.refine_many(Q, Q, n, iters=1, threads=1), 1) / many)
            samples["t2_2d"].append(median_time(lambda: m2d.refine_many(Q, Q, n, iters=1, threads=2), 1) / many)
            samples["fft1"].append(_core.dev.fft_floor(n, n, max(3, floor_reps // 4)))
            samples["fft2"].append(_core.dev.fft_floor(n, n, max(3, floor_reps // 4), threads=2) / 2)
        for _ in range(max(3, repeats // 2)):
            samples["numpy"].append(median_time(lambda: swim_oracle.refine(img, img, P[0], P[0], n, iters=1), 1))
        med = {k: statistics.median(v) for k, v in samples.items()}

        def ratio(a: str, b: str) -> float:
            return statistics.median(x / y for x, y in zip(samples[a], samples[b]))

        times.append(f"| {n} | {med['floor'] * 1e3:.3f} ms "
                     f"| {med['one'] * 1e3:.3f} ms | {med['three'] * 1e3:.3f} ms | {med['batch'] * 1e3:.3f} ms "
                     f"| {med['batch3'] * 1e3:.3f} ms | {med['batch3_2d'] * 1e3:.3f} ms | {med['numpy'] * 1e3:.1f} ms |")
        ratios.append(f"| {n} | {ratio('one', 'floor'):.2f}x | {ratio('three', 'floor'):.2f}x "
                      f"| {ratio('batch3', 'floor'):.2f}x | {ratio('batch3_2d', 'batch3'):.2f}x "
                      f"| {med['numpy'] / med['one']:.1f}x | {med['numpy'] / med['batch3']:.1f}x "
                      f"| {1 / med['t1']:.0f} | {1 / med['t2']:.0f} | {ratio('t1', 't2'):.2f}x "
                      f"| {ratio('t1_2d', 't2_2d'):.2f}x | {ratio('fft1', 'fft2'):.2f}x |")
        print(f"window {n} done", file=sys.stderr, flush=True)
    print("\n".join(times) + "\n\n" + "\n".join(ratios), flush=True)
    return times + ratios


def accuracy() -> list[str]:
    """Known band-limited shifts of real photographs, window 512, 3 iterations."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import SHARED_DATA, YFP_TILES, fourier_shift, grey
    from skimage import data

    images = {"retina (skimage)": grey(data.retina()), "hubble (skimage)": grey(data.hubble_deep_field())}
    yfp = SHARED_DATA / YFP_TILES[0]
    if yfp.is_file():
        images["YFP tile 02"] = np.asarray(sf.Image(yfp))
    rows = ["| image | apodization | subpixel windows | RMS error (px) | max error (px) |",
            "|---|---|---|---|---|"]
    for name, base in images.items():
        rng = np.random.default_rng(7)
        h, w = base.shape
        cases = [(rng.uniform(-6, 6, 2), np.array([rng.uniform(264, w - 264), rng.uniform(264, h - 264)]))
                 for _ in range(8)]
        shifted = [(d, p, fourier_shift(base, *d)) for d, p in cases]
        for mode, sub in (("both (default)", "phase ramp (engine)"), ("first (spectralign)", "phase ramp (engine)"),
                          ("first (spectralign)", "bilinear (spectralign)")):
            errs = []
            for d, p, b in shifted:
                if sub.startswith("bilinear"):
                    q1, q2, _ = swim_oracle.refine(base, b, p, p, 512, iters=3, subpixel="bilinear",
                                                   apodize="first")
                else:
                    m = sf.Matcher(base, b)
                    m.setapodization(mode.split()[0])
                    q1, q2 = m.refine(p, p, 512, iters=3)
                errs.append(q2 - q1 - d)
            e = np.array(errs)
            rows.append(f"| {name} | {mode} | {sub} | {np.sqrt(np.mean(np.sum(e**2, 1))):.4f} "
                        f"| {np.abs(e).max():.4f} |")
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--no-accuracy", action="store_true")
    ap.add_argument("--planning", choices=["measure", "patient"], default="measure",
                    help="FFTW planning rigor for every plan, the floor's included")
    args = ap.parse_args()
    sf.set_fft_planning(args.planning)
    repeats = 3 if args.quick else 7
    cfg = sf.config()
    print(f"Hardware: {cpu_name()}, {os.cpu_count()} logical cores; {cfg['fftw_version']} "
          f"({cfg['fftw_source']}), FFT planning '{cfg['fft_planning']}', {cfg['compiler']}, "
          f"Python {cfg['python']}; medians of {repeats} repeats\n")
    speed([256, 512, 1024], repeats)
    if not args.no_accuracy:
        print()
        accuracy()


if __name__ == "__main__":
    main()
