"""Worked example 1: two horizontally adjacent tiles, as in spectralign's README.

Step by step: a coarse match in the middle of the expected overlap, a rigid placement and a
render; then a grid of fine matches along the overlap and an affine placement. It runs on

* a real photograph (scikit-image's retina) cut into two tiles with a known offset and a small
  rotation, so every result can be checked against the truth (always), and
* the two real YFP microscopy tiles in ``../shared/data`` (when present; there is no truth, so
  the check is how well the matches agree after placement).

Figures (PNG, in ``--output``): ``two_tiles_overlay.png`` (red: left tile, green: right tile,
yellow where they agree; as placed by the stage guess, rigidly, and affinely) and
``two_tiles_montage.png`` (the rendered montage with the fine matches), plus the same two with
``yfp_`` in front for the microscopy tiles.

    python examples/two_tiles.py --output two-tiles-output [--data DIR]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

import spectralign_fast as sf
from _common import (YFP_TILES, cut_tile, find_yfp, photograph, report, save_figure, stereo,
                     stretch_limits, transform_error)


def align_pair(left, right, overlap: float, *, coarse_size, fine_size: int, fine_step: int,
               fine_dx: float, min_snr: float):
    """The spectralign README recipe, with refine_many for the fine grid.

    Returns the stage guess, the rigid and the affine placements (tile "L" fixed) and what the
    figures need.
    """
    H, W = left.shape
    # Stage guess: the right tile starts (1 - overlap) widths to the right.
    guess = {"L": (0.0, 0.0), "R": ((1 - overlap) * W, 0.0)}
    p0 = np.array([(1 - overlap / 2) * W, H / 2])     # middle of the overlap, in L ...
    p0_ = np.array([overlap / 2 * W, H / 2])          # ... and the same spot in R, by the guess
    matcher = sf.Matcher(left, right, stats=True)
    p, p_, st = matcher.refine(p0, p0_, coarse_size, iters=5, tolerance=0.01)
    print(f"  coarse match: {p.round(2)} in L <-> {p_.round(2)} in R "
          f"(snr {st.snr:.1f}, {st.niters} iterations)")

    placement = sf.Placement()
    placement.addmatch("L", "R", p, p_)
    rigid = placement.rigid(fix="L")
    print(f"  rigid: tile R at ({rigid['R'][0]:.2f}, {rigid['R'][1]:.2f}) in L's frame "
          f"(the stage guess was ({guess['R'][0]:.1f}, {guess['R'][1]:.1f}))")

    # A grid of fine matches around the coarse one, all refined in one call.
    dys = np.arange(-H / 2 + fine_size / 2 + 8, H / 2 - fine_size / 2 - 8 + 1, fine_step)
    offsets = np.array([(dx, dy) for dy in dys for dx in (-fine_dx, fine_dx)])
    P, P_, bst = matcher.refine_many(p + offsets, p_ + offsets, fine_size, iters=3, tolerance=0.01)
    good = bst.snr > min_snr
    print(f"  fine: {len(P)} matches (window {fine_size}), {good.sum()} with snr > {min_snr:g}")

    fine = sf.Placement()
    fine.addmatches("L", "R", P[good], P_[good])
    fine.rigid(fix="L")
    rigid_res = fine.residuals()
    affine = fine.affine(fix="L")
    affine_res = fine.residuals()
    print(f"  residuals of the fine matches: rigid RMS {rigid_res.rms:.3f} px, "
          f"affine RMS {affine_res.rms:.3f} px (max {affine_res.max:.3f})")
    return dict(guess=guess, rigid=rigid, affine=affine, coarse=(p, p_), fine=(P[good], P_[good]),
                snr=bst.snr[good], rigid_rms=rigid_res.rms, affine_rms=affine_res.rms,
                affine_max=affine_res.max)


def overlay_figure(left, right, result, title: str, path: Path, zoom_y: int | None = None) -> None:
    """Red/green overlays of the overlap zone under the three placements, and a magnified
    corner of it, where a rotation that rigid placement cannot follow shows most."""
    H, W = left.shape
    x0 = int(np.floor(min(result["guess"]["R"][0], result["rigid"]["R"][0]))) - 24
    strip = (x0, 0, W + 24 - x0, H)
    # Magnify a part of the overlap with detail, favouring its ends: far from the coarse match,
    # rigid placement cannot follow a rotation. (zoom_y overrides the choice.)
    zx = int(round((x0 + 24 + W) / 2)) - 40
    cy = result["coarse"][0][1]
    ys = np.arange(8, H - 88, 16)
    score = [left[y:y + 80, zx:zx + 80].std() * (0.5 + abs(y + 40 - cy) / H) for y in ys]
    zoom = (zx, int(ys[int(np.argmax(score))]) if zoom_y is None else zoom_y, 80, 80)
    limits = stretch_limits(left, right)
    zoom_limits = stretch_limits(left[zoom[1]:zoom[1] + zoom[3], zoom[0]:zoom[0] + zoom[2]])
    stages = [("stage guess", dict(rigid=result["guess"])),
              ("coarse match, rigid", dict(rigid=result["rigid"])),
              ("fine matches, affine", dict(affine=result["affine"]))]
    fig = Figure(figsize=(7.5, 2.5 * H / strip[2] + 3.0), layout="constrained")
    axes = fig.subplots(2, len(stages), height_ratios=[H / strip[2], 1.0])
    for k, (name, placed) in enumerate(stages):
        r = sf.Renderer(**placed, tilesize=(W, H), blend=0)
        for ax, (rx, ry, rw, rh) in ((axes[0, k], strip), (axes[1, k], zoom)):
            red = r.render_region((rx, ry, rw, rh), {"L": left})
            green = r.render_region((rx, ry, rw, rh), {"R": right})
            # The magnified corner gets its own contrast, so faint vessels show.
            lim = limits if rw == strip[2] else zoom_limits
            ax.imshow(stereo(red, green, lim), interpolation="nearest",
                      extent=(rx - 0.5, rx + rw - 0.5, ry + rh - 0.5, ry - 0.5))
            ax.tick_params(labelsize=7)
        axes[0, k].add_patch(Rectangle(zoom[:2], zoom[2], zoom[3], fill=False, color="white", lw=1))
        axes[0, k].set_title(name, fontsize=10)
        axes[1, k].set_xlabel("x in tile L (px)", fontsize=8)
    axes[0, 0].set_ylabel("y (px)", fontsize=8)
    axes[1, 0].set_ylabel("magnified (white box)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def montage_figure(left, right, result, title: str, path: Path) -> None:
    """The affine montage, with the coarse match and the fine matches coloured by SNR."""
    H, W = left.shape
    r = sf.Renderer(affine=result["affine"], tilesize=(W, H), blend=20)
    img = r.render_all({"L": left, "R": right})
    x0, y0 = r.origin
    lo, hi = stretch_limits(img)
    fig = Figure(figsize=(8, 8 * r.shape[0] / r.shape[1] + 0.5), layout="constrained")
    ax = fig.subplots()
    ax.imshow(img, cmap="gray", vmin=lo, vmax=hi,
              extent=(x0 - 0.5, x0 + r.shape[1] - 0.5, y0 + r.shape[0] - 0.5, y0 - 0.5))
    P = result["fine"][0]
    sc = ax.scatter(P[:, 0], P[:, 1], c=result["snr"], s=14, cmap="viridis", edgecolors="white",
                    linewidths=0.3)
    ax.plot(*result["coarse"][0], marker="+", color="red", markersize=16, mew=2)
    fig.colorbar(sc, ax=ax, shrink=0.6, label="match SNR")
    ax.set_title(title, fontsize=10)
    save_figure(fig, path)


def photo_example(out: Path) -> dict:
    photo = photograph()
    W, H = 512, 480
    corner = np.array([200.0, 180.0])          # the left tile's pixel (0, 0) in the photograph
    # Truth: the right tile's pixel p shows the photograph at T_R * p.
    offset = np.array([0.8 * W - 13.6, 9.3])   # right tile origin in the left tile's frame
    angle = np.radians(0.8)
    to_photo_R = (sf.Affine.translator(corner + offset)
                  @ sf.Affine.rotator(angle, (W / 2, H / 2)))
    left = cut_tile(photo, sf.Affine.translator(corner), (W, H))
    right = cut_tile(photo, to_photo_R, (W, H))
    true_R = sf.Affine.translator(-corner) @ to_photo_R    # right tile -> left tile's frame
    print(f"\n== A photograph cut into two {W}x{H} tiles: R's true origin in L's frame is "
          f"({true_R[0, 2]:.2f}, {true_R[1, 2]:.2f}), rotated {np.degrees(angle):.2f} degrees")
    t0 = time.perf_counter()
    res = align_pair(left, right, 0.2, coarse_size=(96, 384), fine_size=64, fine_step=32,
                     fine_dx=24, min_snr=8)
    seconds = time.perf_counter() - t0
    rigid_R = sf.Affine.translator(res["rigid"]["R"])
    guess_rms, _ = transform_error(sf.Affine.translator(res["guess"]["R"]), true_R, (W, H))
    rigid_rms, rigid_max = transform_error(rigid_R, true_R, (W, H))
    affine_rms, affine_max = transform_error(res["affine"]["R"], true_R, (W, H))
    print(f"  error of tile R's placement against the truth, over the whole tile: stage guess "
          f"{guess_rms:.2f} px RMS; rigid {rigid_rms:.3f} px RMS (max {rigid_max:.3f}); "
          f"affine {affine_rms:.3f} px RMS (max {affine_max:.3f})")
    overlay_figure(left, right, res, "photograph, two tiles: red = L, green = R, yellow = agreement",
                   out / "two_tiles_overlay.png", zoom_y=H - 100)
    montage_figure(left, right, res, "affine montage with the fine matches (+ = coarse match)",
                   out / "two_tiles_montage.png")
    return dict(photo_guess_error_px=guess_rms, photo_rigid_error_px=rigid_rms,
                photo_rigid_max_error_px=rigid_max, photo_affine_error_px=affine_rms,
                photo_affine_max_error_px=affine_max, photo_matches=len(res["fine"][0]),
                photo_affine_residual_rms_px=res["affine_rms"], photo_seconds=seconds)


def yfp_example(data: Path, out: Path) -> dict:
    left, right = (sf.Image(data / name) for name in YFP_TILES)
    print(f"\n== Two real YFP microscopy tiles ({left.shape[1]}x{left.shape[0]}), "
          f"03 to the right of 02; no ground truth")
    res = align_pair(left, right, 0.25, coarse_size=256, fine_size=128, fine_step=64, fine_dx=60,
                     min_snr=12)
    overlay_figure(left, right, res, "YFP tiles 02 (red) and 03 (green), yellow = agreement",
                   out / "yfp_two_tiles_overlay.png")
    montage_figure(left, right, res, "YFP tiles, affine montage with the fine matches",
                   out / "yfp_two_tiles_montage.png")
    return dict(yfp_rigid_residual_rms_px=res["rigid_rms"], yfp_affine_residual_rms_px=res["affine_rms"],
                yfp_matches=len(res["fine"][0]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", default="two-tiles-output", help="folder for the figures")
    ap.add_argument("--data", help="folder with the two YFP tiles (default: ../shared/data)")
    args = ap.parse_args(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    claims = photo_example(out)
    data = find_yfp(args.data)
    if data is None:
        print("\n(the YFP tiles were not found: pass --data DIR or set SPECTRALIGN_SHARED_DATA; skipped)")
    else:
        claims.update(yfp_example(data, out))
    report(**claims)
    return 0


if __name__ == "__main__":
    sys.exit(main())
