"""Microscope slides side by side with ASHLAR: two imaging cycles, three channels each, from metadata
to a registered multi-channel pyramidal OME-TIFF (issue 20).

The slide: a 4 x 4 serpentine grid of 1024 px tiles (10 % overlap, jitter up to 8 px, stage error
up to 1.5 px, vignetting) cut from scikit-image's retina (fundus disc upsampled 2x, mirrored);
cycle 2 sees the slide shifted by (23.4, -17.8) px and rotated 0.3 degrees; uint16, 0.65 um
pixels. Written once as one OME-TIFF per cycle (stage positions in the OME-XML: what we read) and
as the same pixels in ASHLAR's file-series layout (cycle{k}/img_{series}_w{channel}.tif, snake
order, no Java). Truth maps every tile's pixel to the photograph.

Both run end to end (align every cycle, write all channels of all cycles into one pyramidal
OME-TIFF), each in its own process, interleaved, medians of the repeats. Accuracy: cycle 1 tile
corners against the truth (global affine gauge removed), and cycle 2 against cycle 1 (distance
between where the two cycles put the same photograph point; what shows as channel misalignment).

    bash bench/install_ashlar.sh          # once: ASHLAR into bench/.venv-ashlar
    python bench/bench_slides.py [--repeats 3] [--grid 4] [--tile 1024]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from peak_memory import peak_rss_mb

HERE = Path(__file__).resolve().parent
ASHLAR_PY = HERE / ".venv-ashlar" / "bin" / "python"
CYCLE2_SHIFT = (23.4, -17.8)
CYCLE2_DEGREES = 0.3
PIXEL = 0.65


def make_slides(folder: Path, grid: int, tile: int, overlap: float, zoom: float) -> None:
    import tifffile
    from scipy import ndimage

    from spectralign_fast import synthetic as syn, synthetic_slides as ss
    from spectralign_fast.transforms.affine import Affine

    retina = syn.photograph("retina")
    c, half = retina.shape[0] // 2, 440
    base = ndimage.zoom(retina[c - half:c + half, c - half:c + half].astype(np.float64), zoom, order=3)
    extent = int(tile * (1 + (grid - 1) * (1 - overlap)) + 300)
    reps = -(-extent // base.shape[0])
    photo = np.pad(base, ((0, base.shape[0] * (reps - 1)), (0, base.shape[1] * (reps - 1))), mode="symmetric")
    photo = np.clip(photo[:extent, :extent], 0, 1).astype(np.float32)
    smooth = ndimage.gaussian_filter(photo, 3)
    lay = ss.slide_layout(grid, grid, tile=tile, overlap=overlap, serpentine=True, jitter=8, margin=100, seed=7)
    flat = ss.vignette(tile, strength=0.3)
    cx, cy = extent / 2, extent / 2
    motion = (Affine.translator((cx + CYCLE2_SHIFT[0], cy + CYCLE2_SHIFT[1]))
              @ Affine.rotator(np.radians(CYCLE2_DEGREES)) @ Affine.translator((-cx, -cy)))
    channels = [{"DAPI": photo, "CD3": smooth ** 2, "CD20": 1 - photo},
                {"DAPI": photo, "CD8": np.sqrt(smooth), "CD68": 1 - smooth}]
    truth = {}
    for k, ch in enumerate(channels, start=1):
        s = ss.write_slide(folder / f"cycle{k}.ome.tiff", ch, lay, pixel_size=PIXEL, flatfield=flat,
                           slide_motion=None if k == 1 else motion, seed=10 + k)
        truth[k] = {str(t): np.asarray(tf).tolist() for t, tf in s.truth.items()}
        series = folder / f"cycle{k}"
        series.mkdir()
        with tifffile.TiffFile(s.path) as tif:
            for t in range(len(tif.series)):
                # One file per channel: ASHLAR reads single planes through skimage, which ignores page keys.
                for ci, plane in enumerate(tif.series[t].asarray()):
                    tifffile.imwrite(series / f"img_{t:03d}_w{ci}.tif", plane)
    (folder / "truth.json").write_text(json.dumps(truth))


def run_ours(folder: Path, threads: int, write: bool) -> dict:
    import spectralign_fast as sf

    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        t0 = time.perf_counter()
        res = sf.montage([folder / "cycle1.ome.tiff", folder / "cycle2.ome.tiff"], align_channel="DAPI",
                         threads=threads, progress=False, render=write,
                         output=Path(tmp) / "out.ome.tif" if write else None)
        total = time.perf_counter() - t0
    return {"total": total, "timings": res.timings,
            "transforms": [{str(t): np.asarray(tf).tolist() for t, tf in c.montage.transforms.items()}
                           for c in res.cycles],
            "peak_rss_mb": peak_rss_mb()}


def run_ashlar(folder: Path, grid: int, overlap: float, write: bool) -> dict:
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        cmd = [str(ASHLAR_PY), str(HERE / "ashlar_peer.py"), str(folder), "--cycles", "2", "--grid", str(grid),
               "--overlap", str(overlap), "--pixel-size", str(PIXEL)] + (
            ["--output", str(Path(tmp) / "ashlar.ome.tif")] if write else [])
        t0 = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
        wall = time.perf_counter() - t0
    d = json.loads(out.stdout.strip().splitlines()[-1])
    # ASHLAR's positions are (row, col) of each tile's pixel (0, 0): translations.
    d["transforms"] = [{str(t): [[1, 0, p[1]], [0, 1, p[0]]] for t, p in enumerate(pos)} for pos in d["positions"]]
    d["total"] = wall
    return d


def accuracy(transforms: list, truth: dict, tile: int) -> dict:
    from spectralign_fast import synthetic as syn, synthetic_slides as ss
    from spectralign_fast.transforms.affine import Affine

    t1 = {int(k): Affine(np.array(v)) for k, v in truth["1"].items()}
    t2 = {int(k): Affine(np.array(v)) for k, v in truth["2"].items()}
    m1 = {int(k): Affine(np.array(v)) for k, v in transforms[0].items()}
    m2 = {int(k): Affine(np.array(v)) for k, v in transforms[1].items()}
    e1 = syn.registration_error(m1, t1, {k: (tile, tile) for k in t1})
    d = ss.cycle_misregistration(m1, m2, t1, t2, tile)
    return {"cycle1_rms": e1["rms"], "cycle1_max": e1["max"],
            "cycle2_rms": float(np.sqrt(np.mean(d ** 2))), "cycle2_max": float(d.max())}


def child(args: argparse.Namespace) -> None:
    print(json.dumps(run_ours(Path(args.folder), args.threads, args.write)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", type=int, default=4)
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--overlap", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--zoom", type=float, default=2.0,
                    help="the retina's fundus disc is upsampled this much (2: smooth content; 1: sharp)")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "spectralign-bench-slides"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--write", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if not ASHLAR_PY.exists():
        sys.exit("ASHLAR is not installed: bash bench/install_ashlar.sh")
    folder = Path(args.cache) / f"g{args.grid}_t{args.tile}_z{args.zoom:g}"
    if not (folder / "truth.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        make_slides(folder, args.grid, args.tile, args.overlap, args.zoom)
        print(f"wrote the slides in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    truth = json.loads((folder / "truth.json").read_text())
    rows: dict = {}
    for rep in range(args.repeats):
        for name, write in (("align", False), ("end to end", True)):
            for threads in (1, 2):
                cmd = [sys.executable, __file__, "--child", "--folder", str(folder), "--threads", str(threads)] + (
                    ["--write"] if write else [])
                out = subprocess.run(cmd, check=True, capture_output=True, text=True)
                rows.setdefault(("ours", name, threads), []).append(json.loads(out.stdout.strip().splitlines()[-1]))
            rows.setdefault(("ASHLAR", name, 1), []).append(run_ashlar(folder, args.grid, args.overlap, write))
        print(f"repeat {rep + 1} done", file=sys.stderr)
    print(f"{args.grid} x {args.grid} tiles of {args.tile} px (retina disc x{args.zoom:g}), 2 cycles x 3 channels, uint16; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; medians of {args.repeats}\n")
    print("| tool | run | threads | seconds (median) | vs ASHLAR | cycle 1 corners RMS / max | "
          "cycle 2 vs cycle 1 RMS / max |")
    print("|---|---|---|---|---|---|---|")
    for (tool, name, threads), runs in rows.items():
        sec = statistics.median(r["total"] for r in runs)
        ref = statistics.median(r["total"] for r in rows[("ASHLAR", name, 1)])
        acc = accuracy(runs[0]["transforms"], truth, args.tile)
        print(f"| {tool} | {name} | {threads} | {sec:.2f} | {ref / sec:.1f}x | {acc['cycle1_rms']:.3f} / "
              f"{acc['cycle1_max']:.3f} px | {acc['cycle2_rms']:.3f} / {acc['cycle2_max']:.3f} px |")
    ours = rows[("ours", "end to end", 1)][0]
    print("\nour stages (end to end, 1 thread, first repeat):",
          ", ".join(f"{k} {v:.2f} s" for k, v in ours["timings"].items()))
    print("ASHLAR stages (end to end, first repeat):",
          ", ".join(f"{k} {v:.2f} s" for k, v in rows[("ASHLAR", "end to end", 1)][0]["timings"].items()))


if __name__ == "__main__":
    main()
