"""End-to-end montage benchmark: an 8x8 grid of 2048x2048 uint16 tiles read from TIFF files,
matched, placed and rendered into an OME-Zarr with a pyramid (issue 5: under 60 s on 2 cores).

The tiles are cut from a real photograph (the fundus disc of scikit-image's retina, upsampled 2x
with a cubic spline and mirrored to cover the grid: the repeat is far longer than the shifts any
matching window searches),
each with a known jitter of up to 20 px and a rotation of up to 0.2 degrees, noise and
vignetting, written once to a cache folder. Every run is a separate process (cold FFTW
plans, honest peak memory); threads=1 and 2 interleave; medians of the repeats.

    python bench/bench_montage.py [--grid 8] [--tile 2048] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from peak_memory import peak_rss_mb


def make_tiles(folder: Path, grid: int, tile: int, overlap: float, seed: int = 1) -> None:
    import tifffile
    from scipy.ndimage import zoom

    import spectralign_fast as sf
    from spectralign_fast.synthetic import photograph

    step = tile * (1 - overlap)
    extent = int(tile + (grid - 1) * step + 200)
    # The retina's fundus disc only: its black surround would give tiles with no content.
    retina = photograph("retina")
    c, half = retina.shape[0] // 2, 440
    base = zoom(retina[c - half:c + half, c - half:c + half].astype(np.float64), 2, order=3).astype(np.float32)
    reps = -(-extent // base.shape[0])
    mosaic = np.pad(base, ((0, base.shape[0] * (reps - 1)), (0, base.shape[1] * (reps - 1))), mode="symmetric")
    mosaic = sf.Image(np.ascontiguousarray(mosaic[:extent, :extent]))
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:tile, 0:tile]
    vignette = (1 - 0.15 * (((xs - tile / 2) ** 2 + (ys - tile / 2) ** 2) / (tile * tile / 2))).astype(np.float32)
    truth = {}
    for r in range(grid):
        for c in range(grid):
            centre = (tile - 1) / 2
            origin = np.array([100 + c * step, 100 + r * step]) + rng.uniform(-20, 20, 2)
            tf = (sf.Affine.translator(origin + centre) @ sf.Affine.rotator(np.radians(rng.uniform(-0.2, 0.2)))
                  @ sf.Affine.translator((-centre, -centre)))
            # Tile pixel (x, y) shows mosaic point tf * (x, y): render the mosaic through tf's inverse.
            img = np.asarray(tf.inverse().apply(mosaic, (0, 0, tile, tile))) * vignette
            img += rng.normal(0, 0.005, img.shape).astype(np.float32)
            tifffile.imwrite(folder / f"r{r}_c{c}.tif", np.rint(np.clip(img, 0, 1) * 65535).astype(np.uint16))
            truth[f"{r},{c}"] = np.asarray(tf).tolist()
    (folder / "truth.json").write_text(json.dumps(truth))


def run_once(folder: Path, threads: int, model: str) -> dict:
    import spectralign_fast as sf
    from spectralign_fast.synthetic import registration_error

    tiles = {(int(p.stem[1:].split("_c")[0]), int(p.stem.split("_c")[1])): p for p in folder.glob("r*_c*.tif")}
    truth = {tuple(map(int, k.split(","))): sf.Affine(np.array(v)) for k, v in
             json.loads((folder / "truth.json").read_text()).items()}
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        t0 = time.perf_counter()
        res = sf.montage(tiles, overlap=0.1, model=model, threads=threads, progress=False,
                         output=Path(tmp) / "montage.ome.zarr")
        total = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in (Path(tmp) / "montage.ome.zarr").rglob("*") if f.is_file())
    err = registration_error(res.transforms, truth, res.tile_sizes)
    return {"threads": threads, "model": model, "total": total, "timings": res.timings,
            "peak_rss_mb": peak_rss_mb(),
            "matches": res.n_matches, "residual_rms": res.residuals.rms, "error_rms": err["rms"],
            "error_max": err["max"], "canvas": list(res.canvas), "store_mb": size / 1e6}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", type=int, default=8)
    ap.add_argument("--tile", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--model", default="affine")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "spectralign-bench-montage"))
    ap.add_argument("--run", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    folder = Path(args.cache) / f"grid{args.grid}x{args.tile}-v2"
    if args.run is not None:
        print(json.dumps(run_once(folder, args.run, args.model)))
        return 0
    if not (folder / "truth.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        make_tiles(folder, args.grid, args.tile, 0.1)
        print(f"made {args.grid}x{args.grid} tiles of {args.tile} px in {time.perf_counter() - t0:.0f} s ({folder})")
    import spectralign_fast as sf

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {sf.config()['fftw_version']}")
    runs = []
    for rep in range(args.repeats):
        for threads in ((1, 2) if rep % 2 == 0 else (2, 1)):
            out = subprocess.run([sys.executable, __file__, "--run", str(threads), "--grid", str(args.grid),
                                  "--tile", str(args.tile), "--model", args.model, "--cache", args.cache],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            runs.append(r)
            print(json.dumps(r))
    print(f"\n{args.grid}x{args.grid} tiles of {args.tile}x{args.tile} uint16, model {args.model}, medians of "
          f"{args.repeats} runs\n")
    stages = list(runs[0]["timings"])
    print("| threads | " + " | ".join(stages) + " | total | peak RSS | registration error (RMS / max) |")
    print("|---|" + "---|" * (len(stages) + 3))
    for threads in (1, 2):
        rs = [r for r in runs if r["threads"] == threads]
        med = {s: float(np.median([r["timings"][s] for r in rs])) for s in stages}
        print(f"| {threads} | " + " | ".join(f"{med[s]:.2f} s" for s in stages)
              + f" | {np.median([r['total'] for r in rs]):.1f} s | {max(r['peak_rss_mb'] for r in rs):.0f} MB"
              f" | {rs[0]['error_rms']:.3f} / {rs[0]['error_max']:.3f} px |")
    r = runs[0]
    print(f"\ncanvas {r['canvas'][2]} x {r['canvas'][3]} px, {r['matches']} matches, residual RMS "
          f"{r['residual_rms']:.3f} px, store {r['store_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
