"""Dask cluster vs local threads: a montage's stages timed side by side, and peak memory per worker.

An 8 x 8 grid of 2048 x 2048 uint16 tiles (15 % overlap, jittered by up to
20 px) cut from scikit-image's retina photograph, upsampled 2.5x and mirrored
to 14 000 px square, with noise; written as TIFF files to a temporary folder.
Each repeat runs the montage stages (match, place, second pass, place,
render + write OME-Zarr with chunk 1024) once with local threads (threads=0)
and once on a LocalCluster of 2 worker processes x 1 thread, interleaved, with
the same FFT planning; the table gives medians. Peak memory per worker is
the worker process's peak RSS (getrusage) minus its RSS before the run.

    python bench/bench_distributed.py [--repeats 2] [--grid 8] [--tile 2048]
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def make_tiles(folder: Path, n: int, tile: int, seed: int = 0):
    import tifffile
    from scipy.ndimage import zoom

    from spectralign_fast.synthetic import photograph

    rng = np.random.default_rng(seed)
    step = int(tile * 0.85)
    need = step * (n - 1) + tile + 64
    photo = zoom(photograph("retina"), 2.5, order=1)
    reps = -(-need // photo.shape[0])
    row = np.concatenate([photo if k % 2 == 0 else photo[:, ::-1] for k in range(reps)], axis=1)
    big = np.concatenate([row if k % 2 == 0 else row[::-1] for k in range(reps)], axis=0)[:need, :need]
    paths = {}
    for r in range(n):
        for c in range(n):
            y, x = (np.array([r, c]) * step + 32 + rng.integers(-20, 21, 2))
            img = big[y:y + tile, x:x + tile] + rng.normal(0, 0.01, (tile, tile))
            paths[(r, c)] = folder / f"r{r}_c{c}.tif"
            tifffile.imwrite(paths[(r, c)], np.rint(np.clip(img, 0, 1) * 65535).astype(np.uint16))
    return paths


def run_local(paths, out: Path) -> dict:
    from spectralign_fast._pairs import neighbour_pairs  # noqa: F401  (same steps as montage())
    from spectralign_fast._tiles import TileStore, output_dtype
    from spectralign_fast.montage import MontageResult, _grid_hint, match_grid, rematch, render_result, solve
    from spectralign_fast.montage import check_settings

    s = check_settings(overlap=0.15, model="affine", coarse_size=None, fine_size=128, fine_step=100, iters=3,
                       min_snr=8.0, threads=0)
    keys = sorted(paths)
    t = {}
    t0 = time.perf_counter()
    store = TileStore(paths, capacity=2 * 8 + 4)
    m = match_grid(store, keys, s, diagonals=False, progress=False)
    store.probe_all()
    output_dtype(store.dtypes)
    t1 = time.perf_counter()
    tf, _ = solve(keys, m, "affine", keys[0], _grid_hint(s))
    t2 = time.perf_counter()
    m = rematch(store, m, tf, s, progress=False)
    t3 = time.perf_counter()
    tf, res = solve(keys, m, "affine", keys[0], _grid_hint(s))
    t4 = time.perf_counter()
    result = MontageResult(tf, m, res, "affine", dict(store.sizes))
    render_result(result, store, output=out, overwrite=False, blend=10, interpolation="linear", threads=0,
                  progress=False, chunk=1024)
    t5 = time.perf_counter()
    t.update(match=(t1 - t0) + (t3 - t2), place=(t2 - t1) + (t4 - t3), render=t5 - t4, total=t5 - t0)
    return t, result


def run_cluster(client, paths, out: Path) -> dict:
    from spectralign_fast._distributed import Cluster
    from spectralign_fast._pairs import neighbour_pairs
    from spectralign_fast._tiles import output_dtype
    from spectralign_fast.montage import MontageResult, _grid_hint, check_settings, solve

    s = check_settings(overlap=0.15, model="affine", coarse_size=None, fine_size=128, fine_step=100, iters=3,
                       min_snr=8.0, threads=0)
    keys = sorted(paths)
    t0 = time.perf_counter()
    cl = Cluster(client, paths, s.threads)
    m = cl.match(neighbour_pairs(keys, False), s, progress=False)
    cl.probe(keys)
    dtype = output_dtype(cl.dtypes)
    t1 = time.perf_counter()
    tf, _ = solve(keys, m, "affine", keys[0], _grid_hint(s))
    t2 = time.perf_counter()
    m = cl.rematch([(pm, s) for pm in m], tf, progress=False)
    t3 = time.perf_counter()
    tf, res = solve(keys, m, "affine", keys[0], _grid_hint(s))
    t4 = time.perf_counter()
    result = MontageResult(tf, m, res, "affine", {k: cl.sizes[k] for k in keys})
    r = result.renderer(threads=cl.threads)
    cl.render(result, r, dtype, output=out, overwrite=False, chunk=1024, progress=False, levels=None)
    t5 = time.perf_counter()
    return dict(match=(t1 - t0) + (t3 - t2), place=(t2 - t1) + (t4 - t3), render=t5 - t4, total=t5 - t0), result


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--grid", type=int, default=8)
    ap.add_argument("--tile", type=int, default=2048)
    args = ap.parse_args()

    import logging

    from distributed import Client, LocalCluster

    import spectralign_fast as sf

    sf.set_fft_planning("estimate")  # the same plans in every process (see tests/test_distributed.py)
    work = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    try:
        t0 = time.perf_counter()
        paths = make_tiles(work, args.grid, args.tile)
        print(f"{len(paths)} tiles of {args.tile}^2 written in {time.perf_counter() - t0:.0f} s")
        rows = {"local": [], "cluster": []}
        peaks = []
        same = True
        for rep in range(args.repeats):
            t_local, r_local = run_local(paths, work / f"local{rep}.ome.zarr")
            rows["local"].append(t_local)
            # A fresh cluster per repeat: peak RSS is per process lifetime.
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                              host="127.0.0.1", silence_logs=logging.CRITICAL) as lc, Client(lc) as client:
                client.run(sf.set_fft_planning, "estimate")
                client.run(lambda: __import__("spectralign_fast._distributed"))
                base = client.run(_rss)
                t_cl, r_cl = run_cluster(client, paths, work / f"cluster{rep}.ome.zarr")
                peak = client.run(_peak)
                peaks.append({w: (peak[w] - base[w]) / 2**20 for w in peak})
            rows["cluster"].append(t_cl)
            same &= all(np.array_equal(np.asarray(r_local.transforms[k]), np.asarray(r_cl.transforms[k]))
                        for k in r_local.transforms)
            from spectralign_fast.output import read_ome_zarr

            same &= bool(np.array_equal(read_ome_zarr(work / f"local{rep}.ome.zarr"),
                                        read_ome_zarr(work / f"cluster{rep}.ome.zarr")))
            shutil.rmtree(work / f"local{rep}.ome.zarr")
            shutil.rmtree(work / f"cluster{rep}.ome.zarr")
            print(f"repeat {rep}: local {t_local}, cluster {t_cl}, worker peaks {peaks[-1]}", flush=True)
        h, w = r_local.renderer().shape
        print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores; canvas {w} x {h} uint16 "
              f"({h * w * 2 / 2**20:.0f} MiB); {args.repeats} repeats; identical output: {same}\n")
        print("| stage | local threads (s) | LocalCluster 2x1 (s) | overhead |")
        print("|---|---|---|---|")
        for stage in ("match", "place", "render", "total"):
            a = statistics.median(r[stage] for r in rows["local"])
            b = statistics.median(r[stage] for r in rows["cluster"])
            print(f"| {stage} | {a:.2f} | {b:.2f} | {100 * (b / a - 1):+.0f}% |")
        allp = [v for p in peaks for v in p.values()]
        print(f"\npeak RSS per worker above its start: median {statistics.median(allp):.0f} MiB, "
              f"max {max(allp):.0f} MiB (chunk {1024 * 1024 * 2 / 2**20:.0f} MiB, one tile "
              f"{args.tile * args.tile * 2 / 2**20:.0f} MiB raw / {args.tile * args.tile * 4 / 2**20:.0f} MiB "
              f"float32)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
