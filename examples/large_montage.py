"""Worked example 5: a montage written to OME-Zarr (from Python and from the command line).

A real photograph (the middle of scikit-image's retina, upsampled 1.4x) is cut into a 4 x 4 grid
of uint16 tiles with 25 % overlap, random jitter up to 15 px, rotations up to 0.5 degrees,
vignetting and noise (``spectralign_fast.synthetic.grid_tiles``, so the truth is known). Then:

1. ``montage(tiles, output="montage.ome.zarr")`` matches, places and renders the montage chunk by
   chunk straight into an OME-Zarr store with a pyramid (the whole canvas is never in memory);
   ``write_report`` draws the report PNG.
2. The same tiles, written as TIFF files ``tiles/r{row}_c{col}.tif``, go through the command line:
   ``spectralign-fast montage "tiles/r{row}_c{col}.tif" -o cli_montage.ome.zarr``, which also
   writes the alignment as JSON next to the image (``cli_montage.json``).
3. Both stores are read back with ``read_ome_zarr`` at every pyramid level and checked: the
   command line and Python give the same image, level 0 equals the montage rendered in memory,
   and every level is the 2 x 2 block mean of the one above it.

With ``--local-cluster N`` (a ``dask.distributed.LocalCluster`` of N worker processes started for
the run) or ``--scheduler ADDRESS`` (a running Dask scheduler; ``--output`` must then be on storage
every worker sees), the montage is also made on the cluster, from the TIFF files:
``montage(paths, output="cluster_montage.ome.zarr", client=client)``, and the command line gets
``--scheduler`` as well. FFTs are then planned with ``set_fft_planning("estimate")`` in this process
(and, through the tasks, on the workers), so the cluster's store must equal the local one bit for bit.

Figures (PNG, in ``--output``): ``large_montage_pyramid.png`` (every pyramid level as read back,
each at its own pixel size, and a full-resolution detail) and ``large_montage_report.png`` (tile
outlines, residual arrows and the SNR of every match).

    python examples/large_montage.py --output large-montage-output [--local-cluster 2]
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from scipy import ndimage

import spectralign_fast as sf
from _common import report, save_figure, stretch_limits
from spectralign_fast import write_report
from spectralign_fast.io import read_ome_zarr, write_tiff
from spectralign_fast.synthetic import grid_tiles, photograph, registration_error

ROWS = COLS = 4
OVERLAP = 0.25
CHUNK = 256           # small chunks so that this small montage still gets a 4-level pyramid
GRID = dict(overlap=OVERLAP, jitter=15.0, max_rotation=0.5, noise=0.005, vignetting=0.15)


def make_tiles(seed: int):
    """4 x 4 uint16 tiles from the middle 1000 x 1000 of the retina (vessels everywhere; the
    photograph's corners are black), upsampled 1.4x; and the true tile-to-photograph maps."""
    photo = photograph("retina")
    c = (photo.shape[0] - 1000) // 2
    photo = ndimage.zoom(photo[c:c + 1000, c:c + 1000], 1.4, order=3).astype(np.float32)
    return grid_tiles(photo, ROWS, COLS, seed=seed, **GRID)


def cli_command() -> list[str]:
    """``spectralign-fast`` as installed beside this Python, else the same module run with -m."""
    exe = Path(sys.executable).with_name("spectralign-fast")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "spectralign_fast.cli"]


def pyramid_levels(path: Path) -> list[np.ndarray]:
    import zarr

    datasets = zarr.open_group(path, mode="r").attrs["multiscales"][0]["datasets"]
    return [read_ome_zarr(path, level) for level in range(len(datasets))]


def block_mean_oracle(img: np.ndarray) -> np.ndarray:
    """2 x 2 block mean (edge blocks over the pixels they have), independent of the library."""
    h, w = img.shape
    a = np.pad(img.astype(np.float64), ((0, h % 2), (0, w % 2)))
    n = np.pad(np.ones((h, w)), ((0, h % 2), (0, w % 2)))
    s = a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]
    k = n[0::2, 0::2] + n[1::2, 0::2] + n[0::2, 1::2] + n[1::2, 1::2]
    return s / k


def pyramid_figure(levels: list[np.ndarray], path: Path) -> None:
    """Every level at its own pixel size (so each is half the one before), and a detail of
    level 0 at full resolution."""
    lim = stretch_limits(levels[-1])
    widths = [lv.shape[1] for lv in levels]
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    axes = fig.subplots(1, len(levels) + 1, width_ratios=widths + [widths[0] * 0.55])
    for k, (ax, lv) in enumerate(zip(axes, levels)):
        ax.imshow(lv, cmap="gray", vmin=lim[0], vmax=lim[1], interpolation="nearest")
        ax.set_xlim(-0.5, widths[0] / 2 ** k - 0.5)
        ax.set_ylim(levels[0].shape[0] / 2 ** k - 0.5, -0.5)
        ax.set_title(f"level {k}\n{lv.shape[1]} x {lv.shape[0]}", fontsize=9)
        ax.tick_params(labelsize=6)
    y0, x0, side = 100, 380, 200           # where the large vessels branch
    axes[0].add_patch(Rectangle((x0, y0), side, side, fill=False, color="#ffb000", lw=1))
    axes[-1].imshow(levels[0][y0:y0 + side, x0:x0 + side], cmap="gray", vmin=lim[0], vmax=lim[1],
                    interpolation="nearest", extent=(x0 - 0.5, x0 + side - 0.5, y0 + side - 0.5, y0 - 0.5))
    axes[-1].set_title("level 0, full resolution\n(orange box)", fontsize=9)
    axes[-1].tick_params(labelsize=6)
    fig.suptitle("The OME-Zarr pyramid as read back with read_ome_zarr (each level at its own pixel size)",
                 fontsize=10)
    save_figure(fig, path)


@contextlib.contextmanager
def dask_client(scheduler: str | None, local_workers: int | None):
    """(client, scheduler address) for the run, or (None, None) without a cluster."""
    if scheduler is None and local_workers is None:
        yield None, None
        return
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler, timeout=30) as client:
            yield client, scheduler
        return
    with LocalCluster(n_workers=local_workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        # (the client closes before the cluster: the other order makes Dask log errors)
        yield client, cluster.scheduler_address


def max_level_difference(a: list[np.ndarray], b: list[np.ndarray]) -> int:
    assert len(a) == len(b) and all(x.shape == y.shape for x, y in zip(a, b))
    return max(int(np.abs(x.astype(np.int64) - y.astype(np.int64)).max()) for x, y in zip(a, b))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", default="large-montage-output", help="folder for the outputs and figures")
    ap.add_argument("--seed", type=int, default=5, help="seed of the jitter, rotations and noise")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="also run on the Dask cluster at ADDRESS (e.g. tcp://host:8786); --output must be "
                            "on storage that every worker sees")
    where.add_argument("--local-cluster", type=int, metavar="N",
                       help="also run on a LocalCluster of N worker processes (1 thread each) started for the run")
    args = ap.parse_args(argv)
    if args.local_cluster is not None and args.local_cluster < 1:
        ap.error(f"--local-cluster needs at least 1 worker, got {args.local_cluster}")
    cluster = args.scheduler is not None or args.local_cluster is not None
    if cluster:
        # Before the first FFT: plans are cached per shape, and "measure" ones differ between processes.
        sf.set_fft_planning("estimate")
    out = Path(args.output).absolute()  # absolute: the command line runs in it, workers may run elsewhere
    out.mkdir(parents=True, exist_ok=True)

    tiles, truth = make_tiles(args.seed)
    side = tiles[0, 0].shape[1]
    print(f"== A {ROWS} x {COLS} grid of {side}x{side} uint16 tiles cut from a photograph: {OVERLAP:.0%} overlap, "
          f"jitter up to {GRID['jitter']:g} px, rotations up to {GRID['max_rotation']:g} degrees")

    tile_dir = out / "tiles"
    shutil.rmtree(tile_dir, ignore_errors=True)
    tile_dir.mkdir()
    for (r, c), tile in tiles.items():
        write_tiff(tile_dir / f"r{r}_c{c}.tif", tile)

    # 1. Python: straight into OME-Zarr, chunk by chunk.
    store = out / "montage.ome.zarr"
    t0 = time.perf_counter()
    result = sf.montage(tiles, overlap=OVERLAP, output=store, chunk=CHUNK, overwrite=True, progress=False)
    seconds = time.perf_counter() - t0
    result.save(out / "montage.json")
    write_report(result, tiles, out / "large_montage_report.png")
    err = registration_error(result.transforms, truth, result.tile_sizes)
    print(f"  montage(..., output={store.name!r}): {result} ({seconds:.2f} s)")
    print(f"  registration error of the tile corners against the truth: RMS {err['rms']:.3f} px, "
          f"max {err['max']:.3f} px")

    claims = {}
    with dask_client(args.scheduler, args.local_cluster) as (client, address):
        if client is not None:
            # 1b. The same montage on the cluster, from the TIFF files (the workers open them).
            paths = {(r, c): tile_dir / f"r{r}_c{c}.tif" for (r, c) in tiles}
            cluster_store = out / "cluster_montage.ome.zarr"
            workers = len(client.scheduler_info()["workers"])
            t0 = time.perf_counter()
            on_cluster = sf.montage(paths, overlap=OVERLAP, output=cluster_store, chunk=CHUNK, overwrite=True,
                                    progress=False, client=client)
            cluster_seconds = time.perf_counter() - t0
            on_cluster.save(out / "cluster_montage.json")
            same_matches = (len(on_cluster.matches) == len(result.matches) and all(
                np.array_equal(a.p1, b.p1) and np.array_equal(a.p2, b.p2) and np.array_equal(a.kept, b.kept)
                for a, b in zip(on_cluster.matches, result.matches)))
            cluster_tf_diff = max(float(np.abs(np.asarray(on_cluster.transforms[t])
                                               - np.asarray(result.transforms[t])).max()) for t in result.transforms)
            vs_cluster = max_level_difference(pyramid_levels(store), pyramid_levels(cluster_store))
            print(f"  on the Dask cluster at {address} ({workers} workers): {on_cluster} ({cluster_seconds:.2f} s)")
            print(f"  cluster vs this process: matches {'identical' if same_matches else 'DIFFERENT'}, transforms "
                  f"differ by at most {cluster_tf_diff:.2g} px, pyramid levels by at most {vs_cluster}"
                  + ("" if vs_cluster == 0 and cluster_tf_diff == 0 else
                     " (not bit-identical: workers that planned FFTs with 'measure' before keep those plans)"))
            claims.update(cluster_workers=workers, cluster_matches_identical=same_matches,
                          cluster_transform_diff=cluster_tf_diff, cluster_vs_local=vs_cluster,
                          cluster_levels=len(pyramid_levels(cluster_store)))

        # 2. The command line, on the same tiles written as TIFF files (on the cluster too, if there is one).
        cli_store = out / "cli_montage.ome.zarr"
        # (add --report cli_report.png for the report; write_report above drew the same figure)
        args_ = ["montage", "tiles/r{row}_c{col}.tif", "-o", cli_store.name, "--overlap", str(OVERLAP),
                 "--chunk", str(CHUNK), "--overwrite", "--quiet"] + (["--scheduler", address] if address else [])
        print("  $ cd " + str(out) + "; spectralign-fast " + " ".join(f"'{a}'" if "{" in a else a for a in args_))
        proc = subprocess.run(cli_command() + args_, capture_output=True, text=True, cwd=out)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
    cli = sf.MontageResult.load(out / "cli_montage.json")   # the JSON the command line writes next to the image
    tf_diff = max(float(np.abs(np.asarray(cli.transforms[t]) - np.asarray(result.transforms[t])).max())
                  for t in result.transforms)
    print(f"  the command line wrote {cli_store.name} and cli_montage.json; its transforms differ from "
          f"Python's by at most {tf_diff:.2g} px (FFTW may pick other algorithms in another process)")

    # 3. Read back every pyramid level and check it.
    levels = pyramid_levels(store)
    cli_levels = pyramid_levels(cli_store)
    in_memory = result.renderer().render_all(tiles)
    vs_memory = int(np.abs(levels[0].astype(np.int64) - in_memory.astype(np.int64)).max())
    vs_cli = max_level_difference(levels, cli_levels)
    vs_oracle = max(float(np.abs(levels[k].astype(np.float64) - block_mean_oracle(levels[k - 1])).max())
                    for k in range(1, len(levels)))
    for k, lv in enumerate(levels):
        print(f"  level {k}: {lv.shape[1]} x {lv.shape[0]} {lv.dtype}")
    print(f"  level 0 vs the montage rendered in memory: max difference {vs_memory}; command line vs Python: "
          f"{vs_cli}; each level vs the 2x2 block mean of the one above: max {vs_oracle:.2f} (uint16 rounding)")
    pyramid_figure(levels, out / "large_montage_pyramid.png")
    report(tiles=len(result.transforms), matches=result.n_matches, residual_rms_px=result.residuals.rms,
           registration_rms_px=err["rms"], registration_max_px=err["max"], levels=len(levels),
           shape=list(levels[0].shape), dtype=str(levels[0].dtype), level0_vs_memory=vs_memory,
           cli_vs_python=vs_cli, cli_transform_diff=tf_diff, pyramid_vs_block_mean=vs_oracle,
           cli_levels=len(cli_levels), **claims)
    return 0


if __name__ == "__main__":
    sys.exit(main())
