"""Matching and placement demo on real image content (``make demo``).

1. The two overlapping YFP microscopy tiles (``../shared/data`` next to the
   project, or ``--data DIR``): a coarse match in the middle of the overlap,
   then a grid of fine matches along it with ``refine_many``; prints offsets
   and SNRs, places the tiles (rigid and affine ``Placement``), writes a
   red/green overlay.
2. Known subpixel shifts of a scikit-image photograph: recovered vs true.

    python -m spectralign_fast.demo [--data DIR] [--output DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from . import Image, Matcher, Placement, show_config
from ._io import write_atomically

TILES = ("C2-20250523_montage_YFP_ideal_02.jpg", "C2-20250523_montage_YFP_ideal_03.jpg")


def find_data(explicit: str | None) -> Path | None:
    candidates = [Path(explicit)] if explicit else []
    env = os.environ.get("SPECTRALIGN_SHARED_DATA")
    if env:
        candidates.append(Path(env))
    candidates += [Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data"]
    for c in candidates:
        if all((c / t).is_file() for t in TILES):
            return c
    return None


def overlay_png(left: np.ndarray, right: np.ndarray, to_left, path: Path) -> None:
    """Red: left tile; green: right tile rendered into left's frame; yellow
    where they agree."""
    from PIL import Image as PILImage

    moved = np.asarray(to_left.apply(right))
    covered = np.asarray(to_left.apply(np.ones_like(right))) > 0.999
    cols = np.flatnonzero(covered.any(axis=0))
    x0, x1 = max(0, cols.min() - 50), left.shape[1]
    lo, hi = np.percentile(left, [1, 99.7])

    def stretch(a):
        return np.clip((a - lo) / (hi - lo), 0, 1)

    rgb = np.zeros((left.shape[0], x1 - x0, 3), np.uint8)
    rgb[..., 0] = (stretch(left[:, x0:x1]) * 255).astype(np.uint8)
    rgb[..., 1] = (stretch(moved[:, x0:x1]) * covered[:, x0:x1] * 255).astype(np.uint8)
    write_atomically(path, lambda tmp: PILImage.fromarray(rgb).save(tmp, format="PNG"))


def yfp_demo(data: Path, out: Path) -> None:
    left = Image(data / TILES[0])
    right = Image(data / TILES[1])
    print(f"\n== Two real YFP tiles ({left.shape[1]}x{left.shape[0]} px), 03 to the right of 02")
    m = Matcher(left, right, stats=True)
    # Coarse: assume ~25% overlap; the middle of the guessed overlap in each tile.
    w = left.shape[1]
    guess = np.array([0.75 * w, 0.0])  # right tile origin in left's frame
    p1 = np.array([w - 0.125 * w, left.shape[0] / 2])
    p1, p2, st = m.refine(p1, p1 - guess, 256, iters=6, tolerance=0.01)
    coarse = p1 - p2
    print(f"coarse offset of tile 03 in tile 02's frame: ({coarse[0]:.2f}, {coarse[1]:.2f}) px, "
          f"snr {st.snr:.1f} after {st.niters} iterations")

    # Fine: a grid of points along the overlap, refined in one parallel call.
    overlap = w - coarse[0]
    xs = coarse[0] + overlap * np.array([0.3, 0.7])
    ys = np.arange(96.0, left.shape[0] - 96, 64.0)
    P1 = np.array([(x, y) for y in ys for x in xs])
    t0 = time.perf_counter()
    Q1, Q2, bst = m.refine_many(P1, P1 - coarse, 128, iters=4, tolerance=0.01)
    dt = time.perf_counter() - t0
    good = bst.snr > 12
    print(f"fine: {len(P1)} points (window 128, <=4 iterations) in {dt * 1e3:.1f} ms; "
          f"{good.sum()} with snr > 12 (the rest fall on dark background)")
    offs = Q1[good] - Q2[good]
    print(f"  offsets of good matches: x {offs[:, 0].min():.2f}..{offs[:, 0].max():.2f}, "
          f"y {offs[:, 1].min():.2f}..{offs[:, 1].max():.2f} px")

    # Placement: tile 02 fixed, tile 03 placed by an affine least-squares fit.
    placement = Placement()
    placement.addmatches("02", "03", Q1[good], Q2[good])
    to_left = placement.affine(fix="02")["03"]
    rigid = placement.rigid(fix="02")["03"]
    res = placement.residuals()
    print(f"  placement of tile 03 (tile 02 fixed): rigid at ({rigid[0]:.2f}, {rigid[1]:.2f}); "
          f"affine rotation {np.degrees(to_left.angle()) * 60:.2f} arcmin, "
          f"scale {to_left.magnification():.5f}")
    print(f"  rigid residuals: RMS {res.rms:.3f} px, max {res.max:.3f} px")
    placement.affine(fix="02")
    res = placement.residuals()
    print(f"  affine residuals: RMS {res.rms:.3f} px, max {res.max:.3f} px")
    overlay_png(np.asarray(left), np.asarray(right), to_left, out / "yfp_overlay.png")
    matches = {"tile1": TILES[0], "tile2": TILES[1], "convention": "points are (x, y) = (column, row)",
               "p1": Q1.tolist(), "p2": Q2.tolist(), "snr": bst.snr.tolist(),
               "affine_tile2_to_tile1": np.asarray(to_left).tolist()}
    write_atomically(out / "yfp_matches.json",
                     lambda tmp: Path(tmp).write_text(json.dumps(matches, indent=1)))
    print(f"  wrote {out / 'yfp_overlay.png'} (red: tile 02, green: tile 03, yellow: agreement) "
          f"and {out / 'yfp_matches.json'}")


def photo_demo() -> None:
    try:
        from skimage import data
    except ImportError:
        print("\n(scikit-image not installed: skipping the known-shift demo; pip install .[demo])")
        return
    img = data.retina()[..., :3].mean(axis=-1).astype(np.float32) / 255
    print(f"\n== Known subpixel shifts of a real photograph (scikit-image retina, {img.shape[1]}x{img.shape[0]})")
    rng = np.random.default_rng(2026)
    pad = 64
    padded = np.pad(img.astype(np.float64), pad, mode="symmetric")
    ky = np.fft.fftfreq(padded.shape[0])[:, None]
    kx = np.fft.fftfreq(padded.shape[1])[None, :]
    spectrum = np.fft.fft2(padded)
    errors = []
    for _ in range(5):
        d = rng.uniform(-5, 5, 2)
        moved = np.fft.ifft2(spectrum * np.exp(-2j * np.pi * (kx * d[0] + ky * d[1]))).real
        moved = moved[pad:-pad, pad:-pad].astype(np.float32)
        moved += rng.normal(0, 0.01, moved.shape).astype(np.float32)
        p = rng.uniform(400, 1000, 2)
        p1, p2, st = Matcher(img, moved, stats=True).refine(p, p, 512, iters=3)
        found = p2 - p1
        errors.append(found - d)
        print(f"  true ({d[0]:+.3f}, {d[1]:+.3f})  found ({found[0]:+.3f}, {found[1]:+.3f})  snr {st.snr:6.1f}")
    e = np.array(errors)
    print(f"  RMS error {np.sqrt(np.mean(np.sum(e**2, axis=1))):.4f} px (window 512, 3 iterations, noise 0.01)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m spectralign_fast.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="folder with the two YFP tiles (default: ../shared/data)")
    ap.add_argument("--output", default="demo-output", help="where to write the overlay and matches")
    args = ap.parse_args(argv)
    show_config()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    data = find_data(args.data)
    if data is None:
        print("\n(the YFP tiles were not found: pass --data DIR or set SPECTRALIGN_SHARED_DATA)")
    else:
        yfp_demo(data, out)
    photo_demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
