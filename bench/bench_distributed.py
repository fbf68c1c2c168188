"""Dask cluster vs local threads: a montage's stages timed side by side, and peak memory per worker.

An 8 x 8 grid of 2048 x 2048 uint16 tiles: bench_montage.py's set (the fundus
disc of scikit-image's retina upsampled 2x and mirrored, 10 % overlap, jitter
up to 20 px, rotation up to 0.2 degrees, vignetting, noise), cached as TIFF files.
Each repeat runs the montage stages (match, place, second pass, place,
render + write OME-Zarr with chunk 1024) once with local threads (threads=0)
and once on a LocalCluster of 2 worker processes x 1 thread, interleaved, with
the same FFT planning; the table gives medians. Peak memory per worker is
the worker process's RSS sampled every 10 ms minus its RSS before the run.

    python bench/bench_distributed.py [--repeats 2] [--grid 8] [--tile 2048]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def make_tiles(folder: Path, n: int, tile: int) -> dict:
    """bench_montage.py's tile set (cached there): the retina's fundus disc, 10% overlap."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import bench_montage

    if not (folder / "truth.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        bench_montage.make_tiles(folder, n, tile, 0.1)
    return {(int(p.stem[1:].split("_c")[0]), int(p.stem.split("_c")[1])): p for p in folder.glob("r*_c*.tif")}


def run_with(ex, paths, out: Path) -> dict:
    """The montage's stages through one executor (local or Dask), timed stage by stage."""
    from spectralign_fast.io.tiles import output_dtype
    from spectralign_fast.match.pairs import neighbour_pairs
    from spectralign_fast.workflows.common import check_settings, grid_hint, solve
    from spectralign_fast.workflows.result import MontageResult

    s = check_settings(overlap=0.1, model="affine", coarse_size=None, fine_size=128, fine_step=100, iters=3,
                       min_snr=8.0, threads=ex.threads)
    keys = sorted(paths)
    t0 = time.perf_counter()
    m = ex.match(neighbour_pairs(keys, False), s, progress=False)
    ex.probe(keys)
    dtype = output_dtype({k: ex.dtypes[k] for k in keys})
    t1 = time.perf_counter()
    tf, _ = solve(keys, m, "affine", keys[0], grid_hint(s))
    t2 = time.perf_counter()
    m = ex.rematch([(pm, s) for pm in m], tf, progress=False)
    t3 = time.perf_counter()
    tf, res = solve(keys, m, "affine", keys[0], grid_hint(s))
    t4 = time.perf_counter()
    result = MontageResult(tf, m, res, "affine", {k: ex.sizes[k] for k in keys})
    r = result.renderer(threads=ex.threads)
    ex.render(r, keys, dtype, output=ex.check_output(out, False), overwrite=False, chunk=1024, progress=False,
              levels=None)
    t5 = time.perf_counter()
    return dict(match=(t1 - t0) + (t3 - t2), place=(t2 - t1) + (t4 - t3), render=t5 - t4, total=t5 - t0), result


def run_local(paths, out: Path) -> dict:
    from spectralign_fast.execute import LocalExecutor

    return run_with(LocalExecutor(paths, 0, capacity=2 * 8 + 4), paths, out)


def run_cluster(client, paths, out: Path) -> dict:
    from spectralign_fast.execute import DaskExecutor

    return run_with(DaskExecutor(client, paths, 0), paths, out)


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _start_sampler() -> None:
    """Sample this worker's RSS every 10 ms. (getrusage's ru_maxrss is no use here: a spawned
    worker starts with its parent's peak, fork and exec keep it, so it reported the client's
    memory at cluster start, not the worker's.)"""
    import sys
    import threading

    import psutil

    proc = psutil.Process()
    sys._spectralign_peak_rss = 0  # on the worker's own sys module (this function travels by value)

    def run() -> None:
        import time as _time

        while True:
            sys._spectralign_peak_rss = max(sys._spectralign_peak_rss, proc.memory_info().rss)
            _time.sleep(0.01)

    threading.Thread(target=run, daemon=True).start()


def _peak() -> int:
    import sys

    return sys._spectralign_peak_rss


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
        paths = make_tiles(Path(tempfile.gettempdir()) / "spectralign-bench-montage" / f"grid{args.grid}x{args.tile}-v2",
                           args.grid, args.tile)
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
                client.run(lambda: __import__("spectralign_fast.execute.dask"))
                base = client.run(_rss)
                client.run(_start_sampler)
                t_cl, r_cl = run_cluster(client, paths, work / f"cluster{rep}.ome.zarr")
                peak = client.run(_peak)
                peaks.append({w: (peak[w] - base[w]) / 2**20 for w in peak})
            rows["cluster"].append(t_cl)
            same &= all(np.array_equal(np.asarray(r_local.transforms[k]), np.asarray(r_cl.transforms[k]))
                        for k in r_local.transforms)
            from spectralign_fast.io import read_ome_zarr

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
