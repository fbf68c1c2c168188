"""The demo (``spectralign-fast demo``, ``make demo``): stitching with known truth.

1. A real photograph (scikit-image's retina) cut into a 3x3 grid of tiles with
   15% overlap, random jitter up to 20 px, rotations up to 0.5 degrees,
   vignetting and noise (uint16). ``montage`` stitches it with each placement
   model (rigid, similarity, affine); the registration error of the tile
   corners against the truth is printed; the montage, its
   JSON (transforms and matches) and a PNG report are written.
2. The two real overlapping YFP microscopy tiles (``../shared/data``, or
   ``--data DIR``), when present: stitched the same way, with a report.

    spectralign-fast demo [--output DIR] [--data DIR] [--seed N] [--quiet]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TypedDict

import numpy as np

from .._config import show_config
from ..synthetic import grid_tiles, photograph, registration_error
from ..workflows.montage import montage, write_report

YFP_TILES = ("C2-20250523_montage_YFP_ideal_02.jpg", "C2-20250523_montage_YFP_ideal_03.jpg")

# The demo's data set (also used by the tests and the montage benchmark).
class _Grid(TypedDict):
    """The keywords of ``grid_tiles`` for the demo's grid."""

    rows: int
    cols: int
    overlap: float
    jitter: float
    max_rotation: float
    noise: float
    vignetting: float


DEMO_GRID = _Grid(rows=3, cols=3, overlap=0.15, jitter=20.0, max_rotation=0.5, noise=0.005, vignetting=0.15)


def find_data(explicit: str | None) -> Path | None:
    candidates = [Path(explicit)] if explicit else []
    env = os.environ.get("SPECTRALIGN_SHARED_DATA")
    if env:
        candidates.append(Path(env))
    candidates += [Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data"]
    for c in candidates:
        if all((c / t).is_file() for t in YFP_TILES):
            return c
    return None


def photo_demo(out: Path, seed: int, progress: bool) -> dict:
    photo = photograph("retina")
    tiles, truth = grid_tiles(photo, seed=seed, **DEMO_GRID)
    tw = tiles[(0, 0)].shape[1]
    print(f"\n== A photograph (scikit-image retina, {photo.shape[1]}x{photo.shape[0]}) cut into a 3x3 grid of "
          f"{tw}x{tw} uint16 tiles: 15% overlap, jitter up to 20 px, rotation up to 0.5 deg, "
          f"vignetting {DEMO_GRID['vignetting']:.0%}, noise {DEMO_GRID['noise']:.1%} of the range")
    numbers = {}
    for model in ("rigid", "similarity", "affine"):
        t0 = time.perf_counter()
        res = montage(tiles, overlap=0.15, model=model, progress=progress,
                      output=out / f"montage_{model}.tif", overwrite=True)
        dt = time.perf_counter() - t0
        err = registration_error(res.transforms, truth, res.tile_sizes)
        res.save(out / f"montage_{model}.json")
        numbers[model] = err
        print(f"  {model:10s}: {res.n_matches} matches, residual RMS {res.residuals.rms:.3f} px; "
              f"registration error of tile corners vs truth: RMS {err['rms']:.3f} px, max {err['max']:.3f} px "
              f"({dt:.2f} s)")
        if model == "affine":
            report_of = res
    write_report(report_of, tiles, out / "report.png")
    print(f"  (rigid placements cannot follow the tiles' rotations; similarity and affine ones can, and a\n"
          f"  similarity cannot shear or stretch, which 75 px wide overlaps pin down poorly)\n"
          f"  wrote {out / 'montage_affine.tif'}, {out / 'montage_affine.json'} and {out / 'report.png'}")
    return numbers


def yfp_demo(data: Path, out: Path, progress: bool) -> None:
    tiles = {(0, 0): data / YFP_TILES[0], (0, 1): data / YFP_TILES[1]}
    print(f"\n== Two real YFP microscopy tiles ({YFP_TILES[0]} left of {YFP_TILES[1]})")
    t0 = time.perf_counter()
    res = montage(tiles, overlap=0.2, model="rigid", progress=progress, output=out / "yfp_montage.tif",
                  overwrite=True)
    dt = time.perf_counter() - t0
    x, y = np.asarray(res.transforms[(0, 1)])[:, 2]
    print(f"  tile 03 lies at ({x:.2f}, {y:.2f}) px in tile 02's frame; {res.n_matches} matches, residual RMS "
          f"{res.residuals.rms:.3f} px ({dt:.2f} s)")
    res.save(out / "yfp_montage.json")
    write_report(res, tiles, out / "yfp_report.png")
    print(f"  wrote {out / 'yfp_montage.tif'}, {out / 'yfp_montage.json'} and {out / 'yfp_report.png'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="spectralign-fast demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="folder with the two YFP tiles (default: ../shared/data)")
    ap.add_argument("--output", default="demo-output", help="where to write the montages and reports")
    ap.add_argument("--seed", type=int, default=2026, help="seed of the jitter, rotations and noise")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    show_config()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    photo_demo(out, args.seed, not args.quiet)
    data = find_data(args.data)
    if data is None:
        print("\n(the YFP tiles were not found: pass --data DIR or set SPECTRALIGN_SHARED_DATA)")
    else:
        yfp_demo(data, out, not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
