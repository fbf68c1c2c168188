"""Worked example 4: motion correction of a drifting movie with CrossCorr, as in
thunder-registration's example notebook.

A movie of a few hundred 256 x 256 frames is made from a real photograph (scikit-image's
retina) that drifts smoothly: a random walk, gaussian-filtered and scaled to +-10 px, in y and
x independently, each frame with its own noise. ``CrossCorr`` estimates every frame's
displacement, once against the mean of the frames (what you have in practice: no reference;
by default the mean of the registered frames, ``iterations=0`` the plain mean) and once against the true
reference (the undrifted, noise-free image), and thunder-registration's own answer
(``subpixel=False, whiten=0``: integer peaks of plain cross-correlation) for comparison.
``transform`` registers the movie; its mean image is sharp again.

Displacements are thunder-registration's: array axis order ``(dy, dx)`` = (row, column), and
positive when a frame's content lies further down / right than the reference's
(``frame[i] == reference[i - d]``); ``transform`` shifts each frame by ``-delta``. Against the
mean reference they are relative to the mean position, so the common offset (the mean of
estimated minus true) is removed before comparing with the truth.

Figures (PNG, in ``--output``): ``motion_correction_shifts.png`` (estimated against true shift
traces, both axes, and the per-frame error) and ``motion_correction_mean.png`` (one frame, the
mean image before and after registration, magnified below, with their sharpness).

    python examples/motion_correction.py --output motion-correction-output
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from scipy import ndimage

import spectralign_fast as sf
from _common import photograph, report, save_figure, stretch_limits

FRAMES = 300
SIZE = 256
AMPLITUDE = 10.0      # px: the largest |drift| along each axis
SMOOTH = 4.0          # frames: sigma of the gaussian filter on the random walk
NOISE = 0.25          # standard deviation, as a fraction of the image's own
ORIGIN = (560, 170)   # (row, col) of the reference in the photograph: vessels, no black corner
MARGIN = 16           # px left out at the edges when measuring sharpness (edge filling)


def make_movie(seed: int):
    """(frames, reference, true (dy, dx) per frame): frame i is the photograph moved by
    ``truth[i]`` (cubic spline, SciPy: independent of the library), plus noise."""
    rng = np.random.default_rng(seed)
    walk = ndimage.gaussian_filter1d(rng.standard_normal((FRAMES, 2)).cumsum(axis=0), SMOOTH, axis=0)
    walk -= walk.mean(axis=0)
    walk *= AMPLITUDE / np.abs(walk).max(axis=0)
    pad = int(AMPLITUDE) + 8
    y0, x0 = ORIGIN
    big = photograph()[y0 - pad:y0 + SIZE + pad, x0 - pad:x0 + SIZE + pad].astype(np.float64)
    coeffs = ndimage.spline_filter(big, order=3)
    reference = big[pad:pad + SIZE, pad:pad + SIZE].astype(np.float32)
    sigma = NOISE * float(reference.std())
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    frames = np.empty((FRAMES, SIZE, SIZE), np.float32)
    for i, (dy, dx) in enumerate(walk):
        # frame[i](r, c) = reference(r - dy, c - dx): content moved by +d
        frames[i] = ndimage.map_coordinates(coeffs, [rows + pad - dy, cols + pad - dx], order=3,
                                            prefilter=False)
    frames += rng.normal(0, sigma, frames.shape).astype(np.float32)
    return frames, reference, walk


def errors(estimated: np.ndarray, truth: np.ndarray, *, relative: bool):
    """Per-frame error vectors; with ``relative`` (a mean reference) less the common offset."""
    offset = (estimated - truth).mean(axis=0) if relative else np.zeros(2)
    return estimated - truth - offset, offset


def rms(err: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(err**2, axis=1))))


def sharpness(image: np.ndarray) -> float:
    """Gradient energy over the interior: the mean squared gradient after a 1 px gaussian, which
    drift blur lowers. (The gaussian keeps pixel noise, which the Laplacian's variance would
    mostly measure at this noise level, from counting as detail.)"""
    g = ndimage.gaussian_gradient_magnitude(np.asarray(image, np.float64), 1.0)
    return float(np.mean(g[MARGIN:-MARGIN, MARGIN:-MARGIN] ** 2))


def shifts_figure(truth, fits, path: Path) -> None:
    fig = Figure(figsize=(10.5, 8.2), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True, height_ratios=[1, 1, 1.1])
    t = np.arange(len(truth))
    for k, name in enumerate(("dy (rows, down)", "dx (columns, right)")):
        ax = axes[k]
        ax.plot(t, truth[:, k], color="#b8b8b8", lw=5, label="true drift")
        for label, (est, offset, _), style in fits:
            ax.plot(t, est[:, k] - offset[k], label=label, **style)
        ax.set_ylabel(f"{name} (px)")
        ax.grid(alpha=0.3)
    axes[0].set_title("Displacement of every frame relative to the reference: estimated against true\n"
                      "(mean reference: less its common offset)", fontsize=9)
    axes[0].legend(fontsize=8, loc="upper left", ncols=2)
    ax = axes[2]
    for label, (_, _, err), style in fits:
        ax.plot(t, np.hypot(err[:, 0], err[:, 1]), label=f"{label}: RMS {rms(err):.3f} px",
                **dict(style, lw=1))
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 2)
    ax.set_xlabel("frame")
    ax.set_ylabel("|estimated - true| (px)")
    ax.set_title("Error of every frame's displacement", fontsize=9)
    ax.legend(fontsize=8, loc="upper left", ncols=2)
    ax.grid(alpha=0.3, which="both")
    save_figure(fig, path)


def mean_figure(frame, before, after, sharp, path: Path) -> None:
    x0, y0, w = 140, 60, 80           # magnified box: crossing vessels
    fig = Figure(figsize=(10.5, 7.4), layout="constrained")
    axes = fig.subplots(2, 3)
    lim = stretch_limits(before, after)
    panels = (("one frame (noisy, drifted)", frame, stretch_limits(frame)),
              (f"mean before registration\nsharpness {sharp[0]:.2f} of the reference's", before, lim),
              (f"mean after transform\nsharpness {sharp[1]:.2f} of the reference's", after, lim))
    for k, (title, img, (lo, hi)) in enumerate(panels):
        axes[0, k].imshow(img, cmap="gray", vmin=lo, vmax=hi)
        axes[0, k].add_patch(Rectangle((x0, y0), w, w, fill=False, color="yellow", lw=1))
        axes[0, k].set_title(title, fontsize=9)
        axes[1, k].imshow(img[y0:y0 + w, x0:x0 + w], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest",
                          extent=(x0 - 0.5, x0 + w - 0.5, y0 + w - 0.5, y0 - 0.5))
        axes[1, k].set_title("magnified (yellow box)", fontsize=9)
        for ax in axes[:, k]:
            ax.tick_params(labelsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", default="motion-correction-output", help="folder for the figures")
    ap.add_argument("--seed", type=int, default=4, help="seed of the drift and the noise")
    args = ap.parse_args(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)

    frames, reference, truth = make_movie(args.seed)
    print(f"== {FRAMES} frames of {SIZE}x{SIZE} px from a photograph, smooth drift up to "
          f"{AMPLITUDE:g} px per axis, noise {NOISE:g} x the image's spread")

    t0 = time.perf_counter()
    mean_model = sf.CrossCorr().fit(frames, iterations=0)            # reference: the mean frame, as is
    t_mean = time.perf_counter() - t0
    iter_model = sf.CrossCorr().fit(frames)   # the default: the mean of the registered frames
    t0 = time.perf_counter()
    true_model = sf.CrossCorr().fit(frames, reference)               # the true reference
    t_true = time.perf_counter() - t0
    thunder_model = sf.CrossCorr(subpixel=False, whiten=0).fit(frames, reference)  # thunder's algorithm

    fits, claims = [], {}
    for key, label, model, relative, style in (
            ("mean", "mean reference", mean_model, True, dict(color="#e08020", lw=1)),
            ("mean_iter", "mean of registered frames (default)", iter_model, True, dict(color="#2060d0", lw=1)),
            ("true", "true reference", true_model, False, dict(color="#20a040", lw=1, ls="--")),
            ("thunder", "subpixel=False, whiten=0 (thunder's)", thunder_model, False,
             dict(color="#c02020", lw=0.8, ls=":"))):
        est = model.toarray()
        err, offset = errors(est, truth, relative=relative)
        worst = float(np.hypot(err[:, 0], err[:, 1]).max())
        print(f"  {label:38s} error RMS {rms(err):.3f} px, max {worst:.3f} px"
              + (f" (common offset ({offset[0]:+.3f}, {offset[1]:+.3f}) removed)" if relative else ""))
        claims[f"{key}_error_rms_px"], claims[f"{key}_error_max_px"] = rms(err), worst
        fits.append((label, (est, offset, err), style))
    print(f"  fit: {FRAMES / t_mean:.0f} frames/s with the mean reference, "
          f"{FRAMES / t_true:.0f} frames/s with a given one")

    t0 = time.perf_counter()
    registered = iter_model.transform(frames)                        # each frame shifted by -delta
    t_transform = time.perf_counter() - t0
    exact = sf.RegistrationModel({(i,): sf.Displacement(d) for i, d in enumerate(truth)}).transform(frames)
    before, after = frames.mean(axis=0), registered.mean(axis=0)
    # Sharpness as a fraction of the undrifted, noise-free photograph's: 1 is as sharp as it gets.
    full = sharpness(reference)
    sharp = (sharpness(before) / full, sharpness(after) / full, sharpness(exact.mean(axis=0)) / full)
    print(f"  transform: {FRAMES / t_transform:.0f} frames/s; sharpness of the mean image (gradient energy, "
          f"1 = the reference's): {sharp[0]:.2f} before, {sharp[1]:.2f} after ({sharp[1] / sharp[0]:.1f}x), "
          f"{sharp[2]:.2f} when registered by the true drift")

    shifts_figure(truth, fits, out / "motion_correction_shifts.png")
    mean_figure(frames[int(np.argmax(np.abs(truth).sum(axis=1)))], before, after, sharp,
                out / "motion_correction_mean.png")
    report(frames=FRAMES, size=SIZE, drift_max_px=float(np.abs(truth).max()),
           sharpness_before=sharp[0], sharpness_after=sharp[1], sharpness_true_drift=sharp[2],
           shape=list(registered.shape), dtype=str(registered.dtype), **claims)
    return 0


if __name__ == "__main__":
    sys.exit(main())
