"""Worked example 8: a fluorescence image onto a brightfield (H&E-like) photograph, STalign's way.

STalign's H&E / fluorescence recipe, with only the import changed
(``from spectralign_fast import stalign as STalign``), on a pair with a known answer
(``synthetic_tissue.fluorescence_pair``): the target is scikit-image's immunohistochemistry
photograph (RGB, 256 x 256 px), the source a simulated fluorescence image of the same tissue
(one channel, 230 x 230 px), related by a zoom of 1.1, a 10 degree rotation, a shift and a smooth
deformation of up to 5 px.

1. Four imprecise landmarks (1 px noise per axis) give an affine: ``STalign.L_T_from_points``,
   ``STalign.to_A``; ``STalign.transform_image_source_with_A`` shows the source moved by it.
2. LDDMM (affine + diffeomorphism + contrast model + mixture weights + the landmarks) with this
   package's defaults and stopping rule: ``register.lddmm.LDDMM().fit(...)``.
3. 500 random tissue points of the source are mapped with ``result.transform_points`` and
   compared with the true map.

Figure (PNG, in ``--output``): ``stalign_he_fluorescence.png``: source, target, red/green
overlays after the landmark affine and after LDDMM (red: the target's grey inverted, which looks
like the fluorescence; green: the source moved onto the target; yellow where they agree), the
same overlays magnified on a 40 x 40 px box at single-cell scale (contrast stretched within the
box), and the energy per iteration (it rises once at iteration 50, where the mixture weights
start to be updated and the energy becomes a different function).

    python examples/stalign_he_fluorescence.py --output stalign-he-output
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from _common import report, save_figure, stereo
# STalign users change only this import: from STalign import STalign
from spectralign_fast import stalign as STalign
from spectralign_fast import synthetic_tissue
from spectralign_fast.register.lddmm import LDDMM

ZOOM = 40          # side of the magnified box, target pixels


def rms(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum((found - truth) ** 2, axis=1))))


def inside_source(points: np.ndarray, xI: list[np.ndarray]) -> np.ndarray:
    """Which of the source points ``(*grid, 2)`` lie on the source image (for the overlays)."""
    lo = np.array([x[0] for x in xI])
    hi = np.array([x[-1] for x in xI])
    return np.all((points >= lo) & (points <= hi), axis=-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", default="stalign-he-output", help="folder for the figure")
    args = ap.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)

    pair = synthetic_tissue.fluorescence_pair()
    # Landmarks clicked on both images: here 4 well-spread ones with 1 px of error per axis.
    pointsI, pointsJ = pair.landmarks(4, 1.0, seed=1)

    # 1. The affine from the landmarks, STalign's way.
    L, T = STalign.L_T_from_points(pointsI, pointsJ)
    A = STalign.to_A(L, T)
    affine_only = STalign.transform_image_source_with_A(A, pair.xI, pair.I, pair.xJ)
    affine_reads = STalign.build_transform(None, None, A, direction="b", XJ=pair.xJ)

    # 2. LDDMM with this package's defaults (derived from the images) and its stopping rule.
    t0 = time.perf_counter()
    result = LDDMM(threads=0).fit(pair.xI, pair.I, pair.xJ, pair.J,
                                  points_I=pointsI, points_J=pointsJ)
    seconds = time.perf_counter() - t0
    moved = result.transform(pair.I)
    lddmm_reads = result.map.sample_points()

    # 3. Accuracy on tissue points, against the true map.
    points = pair.tissue_points(500, seed=2)
    truth = pair.source_to_target(points)
    affine_rms = rms(points @ A[:2, :2].T + A[:2, 2], truth)
    lddmm_found = result.transform_points(points)
    lddmm_rms = rms(lddmm_found, truth)
    lddmm_max = float(np.max(np.linalg.norm(lddmm_found - truth, axis=1)))
    landmark_rms = rms(result.transform_points(pointsI), pair.source_to_target(pointsI))
    e = result.energies
    print(f"landmark affine: {affine_rms:.2f} px RMS over {len(points)} tissue points")
    print(f"LDDMM: {lddmm_rms:.3f} px RMS (max {lddmm_max:.2f} px), {result.iterations} iterations, "
          f"converged={result.converged}, {seconds:.1f} s")
    c = result.level_iterations[0]
    print(f"energy at half resolution: {e[0, 0]:.4g} -> {e[c - 1, 0]:.4g}; at full resolution: "
          f"{e[c, 0]:.4g} -> {e[-1, 0]:.4g} (matching {e[-1, 1]:.4g}, regularization {e[-1, 2]:.4g}, "
          f"points {e[-1, 3]:.4g})")

    # The figure: red = target grey inverted (fluorescence-like), green = moved source.
    red = 1.0 - synthetic_tissue.to_grey(pair.J)
    lim = (float(np.percentile(red, 1)), float(np.percentile(red, 99.7)))
    over_affine = stereo(red, np.where(inside_source(affine_reads, pair.xI), affine_only[0], 0.0), lim)
    over_lddmm = stereo(red, np.where(inside_source(lddmm_reads, pair.xI), moved[0], 0.0), lim)
    # The box: around the tissue point (among those in bright, cell-rich tissue) that the
    # landmark affine puts furthest from where it belongs.
    corner = np.clip(np.round(truth).astype(int) - ZOOM // 2, 0, np.array(red.shape) - ZOOM)
    brightness = np.array([red[r:r + ZOOM, c:c + ZOOM].mean() for r, c in corner])
    affine_error = np.linalg.norm(points @ A[:2, :2].T + A[:2, 2] - truth, axis=1)
    r0, c0 = corner[np.argmax(np.where(brightness > np.median(brightness), affine_error, -1.0))]
    box = (slice(r0, r0 + ZOOM), slice(c0, c0 + ZOOM))
    box_lim = (float(np.percentile(red[box], 1)), float(np.percentile(red[box], 99.5)))

    fig = Figure(figsize=(13, 6.6), layout="constrained")
    grid = fig.add_gridspec(2, 4)
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(pair.I[0], cmap="gray")
    ax.plot(pointsI[:, 1], pointsI[:, 0], "c+", ms=10, mew=2)
    ax.set_title("source: fluorescence (+ landmarks)", fontsize=10)
    ax = fig.add_subplot(grid[0, 1])
    ax.imshow(np.moveaxis(pair.J, 0, -1))
    ax.plot(pointsJ[:, 1], pointsJ[:, 0], "c+", ms=10, mew=2)
    ax.set_title("target: IHC photograph (+ landmarks)", fontsize=10)
    for k, (img, title) in enumerate(((over_affine, f"landmark affine: {affine_rms:.2f} px RMS"),
                                      (over_lddmm, f"LDDMM: {lddmm_rms:.2f} px RMS"))):
        ax = fig.add_subplot(grid[0, 2 + k])
        ax.imshow(img)
        ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), ZOOM, ZOOM, fill=False, ec="w", lw=1.2))
        ax.set_title(title, fontsize=10)
        ax = fig.add_subplot(grid[1, k])
        green = (affine_only if k == 0 else moved)[0]
        ax.imshow(stereo(red[box], green[box], box_lim), interpolation="nearest")
        ax.set_title(f"{ZOOM} x {ZOOM} px box: {'affine' if k == 0 else 'LDDMM'}", fontsize=10)
    for ax in fig.axes:
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(grid[1, 2:])
    it = np.arange(len(e))
    for col, name, colour in ((0, "total", "k"), (1, "matching", "tab:blue"),
                              (2, "regularization", "tab:orange"), (3, "landmarks", "tab:green")):
        keep = e[:, col] > 0
        ax.semilogy(it[keep], e[keep, col], color=colour, label=name)
    coarse = result.level_iterations[0]
    ax.axvline(50, color="0.6", ls=":", lw=1)
    ax.text(55, 20.0, "mixture weights\nupdated from here", fontsize=8, color="0.4", va="center")
    ax.axvline(coarse, color="0.3", ls="--", lw=1)
    ax.text(coarse + 5, 2e2, "full resolution\n(the energy's scale\nchanges)", fontsize=8, color="0.3")
    ax.set_xlabel("iteration")
    ax.set_ylabel("energy")
    ax.set_title(f"energy ({result.iterations} iterations, {seconds:.1f} s)", fontsize=10)
    ax.legend(fontsize=8)
    save_figure(fig, out / "stalign_he_fluorescence.png")

    report(affine_rms_px=round(affine_rms, 3), lddmm_rms_px=round(lddmm_rms, 3),
           lddmm_max_px=round(lddmm_max, 3), landmarks_rms_px=round(landmark_rms, 3),
           iterations=int(result.iterations), converged=bool(result.converged),
           energy_first=round(float(e[0, 0]), 1),
           energy_last=round(float(e[result.level_iterations[0] - 1, 0]), 1),  # the coarse level's
           points=len(points), lddmm_s=round(seconds, 2))


if __name__ == "__main__":
    main()
