"""OME-Zarr writer throughput: level 0 and the pyramid, threads = 1 and 2.

An 8192 x 8192 uint16 image (the retina photograph tiled, plus noise so
chunks do not compress to nothing) is held in memory, and the region
function returns views of it, so the numbers measure chunk encoding and
writing, not rendering. Each repeat writes with threads=1 and threads=2
back to back (interleaved), timing level 0 (all 64 chunks of 1024 x 1024)
and the pyramid (levels 1-3 built from the written levels) separately.
Reference: zarr's own whole-array assignment of the same image into the same
chunk layout and codec. Medians of the repeats; MB/s counts uncompressed
bytes written.

    python bench/bench_output.py [--repeats 5] [--size 8192] [--dir /tmp]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time

import numpy as np


def make_image(size: int) -> np.ndarray:
    from skimage import data

    g = data.retina().astype(np.float32).mean(axis=-1) * 200  # 1411 x 1411, up to ~51000
    reps = -(-size // g.shape[0])
    img = np.tile(g, (reps, reps))[:size, :size]
    rng = np.random.default_rng(0)
    img += rng.normal(0, 300, img.shape).astype(np.float32)
    return np.clip(img, 0, 65535).astype(np.uint16)


def du(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def run_writer(folder: str, img: np.ndarray, threads: int) -> tuple[float, float, int]:
    from tqdm.auto import tqdm

    from spectralign_fast.io.omezarr import OmeZarrWriter, _run_tasks

    path = os.path.join(folder, f"t{threads}.ome.zarr")
    w = OmeZarrWriter.create(path, img.shape, img.dtype, chunk=1024)
    gx = w.grid_shape(0)[1]
    tasks = [(lambda k=k, r=r: w.write_chunk(k // gx, k % gx, img[r[0]:r[0] + r[2], r[1]:r[1] + r[3]]))
             for k, r in enumerate(w.grid(0))]
    with tqdm(disable=True) as bar:
        t0 = time.perf_counter()
        _run_tasks(tasks, threads, bar)
        t1 = time.perf_counter()
        for lv in range(1, w.levels):
            gy, gxl = w.grid_shape(lv)
            _run_tasks([(lambda lv=lv, cy=cy, cx=cx: w.build_chunk(lv, cy, cx))
                        for cy in range(gy) for cx in range(gxl)], threads, bar)
        t2 = time.perf_counter()
    w.commit()
    size = du(path)
    shutil.rmtree(path)
    return t1 - t0, t2 - t1, size


def run_zarr_reference(folder: str, img: np.ndarray) -> float:
    import numcodecs
    import zarr

    path = os.path.join(folder, "ref.zarr")
    t0 = time.perf_counter()
    a = zarr.create_array(path, shape=img.shape, dtype=img.dtype, chunks=(1024, 1024), zarr_format=2,
                          fill_value=0, compressors=numcodecs.Blosc(cname="lz4", clevel=5,
                                                                     shuffle=numcodecs.Blosc.SHUFFLE))
    a[...] = img
    t = time.perf_counter() - t0
    shutil.rmtree(path)
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--dir", default=None, help="folder for the stores (default: system temp)")
    args = ap.parse_args()
    img = make_image(args.size)
    mb0 = img.nbytes / 1e6
    mbp = sum((-(-args.size // 2**k)) ** 2 for k in range(1, 4)) * 2 / 1e6
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"image {args.size} x {args.size} uint16 ({mb0:.0f} MB), pyramid levels 1-3 {mbp:.1f} MB")
    rows = {1: ([], []), 2: ([], [])}
    ref, ratio0, ratiop, sizes = [], [], [], []
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        run_writer(folder, img, 2)  # warm-up: imports, page cache
        for rep in range(args.repeats):
            per = {}
            for threads in (1, 2) if rep % 2 == 0 else (2, 1):
                t0, tp, size = run_writer(folder, img, threads)
                rows[threads][0].append(t0)
                rows[threads][1].append(tp)
                per[threads] = (t0, tp)
                sizes.append(size)
            ratio0.append(per[1][0] / per[2][0])
            ratiop.append(per[1][1] / per[2][1])
            ref.append(run_zarr_reference(folder, img))
    print(f"compressed store: {statistics.median(sizes) / 1e6:.0f} MB "
          f"({statistics.median(sizes) / (img.nbytes * 4 / 3):.2f} of raw, all levels)")
    print("| threads | level 0 | level 0 MB/s | pyramid (levels 1-3) | pyramid MB/s |")
    print("|---|---|---|---|---|")
    for threads in (1, 2):
        t0 = statistics.median(rows[threads][0])
        tp = statistics.median(rows[threads][1])
        print(f"| {threads} | {t0:.3f} s | {mb0 / t0:.0f} | {tp:.3f} s | {mbp / tp:.0f} |")
    print(f"2-thread speed-up (median of per-repeat ratios): level 0 {statistics.median(ratio0):.2f}x, "
          f"pyramid {statistics.median(ratiop):.2f}x")
    r = statistics.median(ref)
    print(f"reference, zarr whole-array assignment (same codec and chunks): {r:.3f} s, {mb0 / r:.0f} MB/s")


if __name__ == "__main__":
    main()
