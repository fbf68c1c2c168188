"""Worked example 3: serial sections, a short z-stack aligned with align_stack and rendered.

Five sections are cut from a real photograph (scikit-image's retina), each drifted from the
one before by up to 12 px, rotated by up to 1.5 degrees and stretched or compressed by up to
2 % along x and y (as sections do when they are cut), each blurred a little differently and with
its own noise. The middle section was imaged as a 2 x 2 grid of tiles (40 % overlap, each tile
off its stage position by up to 5 px and rotated by up to 0.5 degrees) instead of one image.
``align_stack`` matches every section to the next (and the middle one's tiles to each other),
places all tiles of all sections jointly, and renders the stack into one canvas. Because the
truth is known, the example prints how far each section's pixels land from where they belong.

Figures (PNG, in ``--output``): ``serial_sections_stack.png`` (the mean of all sections and a
red/green overlay of two neighbouring sections, as imaged and after alignment) and
``serial_sections_error.png`` (each section's error against the truth, before and after, and
the drift path that align_stack recovered).

    python examples/serial_sections.py --output serial-sections-output
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
from _common import cut_tile, photograph, report, save_figure, stereo, stretch_limits, transform_error
from spectralign_fast.synthetic import registration_error

LEVELS = 5
S = 512               # side of a section imaged as one image
T = 320               # side of a tile of the tiled section: 2 x 320 - 128 = 512
GRID_LEVEL = 2        # the section imaged as a 2 x 2 grid
DRIFT = 12.0          # px per section, uniform in x and y
MAX_ANGLE = 1.5       # degrees
MAX_STRETCH = 0.02    # fraction, independently in x and y
NOISE = 0.005         # standard deviation, fraction of the range


def make_stack(seed: int):
    """The sections (an image or a {(row, col): tile} grid each); the truth as
    ``{(z, row, col): Affine}`` from tile pixels to the photograph; each section's own map to
    the photograph; and the stage's idea of each tile's place in its section (what you have
    before aligning)."""
    photo = photograph()
    rng = np.random.default_rng(seed)
    centre = np.array([S / 2, S / 2])
    corner = np.array([(photo.shape[1] - S) / 2, (photo.shape[0] - S) / 2])
    drift = np.zeros(2)
    sections, truth, stage, section_tf = [], {}, {}, []
    for z in range(LEVELS):
        if z:
            drift += rng.uniform(-DRIFT, DRIFT, 2)
        sx, sy = 1 + rng.uniform(-MAX_STRETCH, MAX_STRETCH, 2)
        section = (sf.Affine.translator(corner + drift)
                   @ sf.Affine.rotator(np.radians(rng.uniform(-MAX_ANGLE, MAX_ANGLE)), centre)
                   @ sf.Affine.translator(centre) @ sf.Affine([[sx, 0, 0], [0, sy, 0]]) @ sf.Affine.translator(-centre))
        section_tf.append(section)
        # Each section is a different physical slice: its own focus and noise.
        content = ndimage.gaussian_filter(photo, rng.uniform(0.2, 0.7))
        if z == GRID_LEVEL:
            grid = {}
            for r in (0, 1):
                for c in (0, 1):
                    nominal = ((S - T) * c, (S - T) * r)
                    tf = (section @ sf.Affine.translator(np.add(nominal, rng.uniform(-5, 5, 2)))
                          @ sf.Affine.rotator(np.radians(rng.uniform(-0.5, 0.5)), (T / 2, T / 2)))
                    grid[r, c] = noisy(cut_tile(content, tf, (T, T)), rng)
                    truth[z, r, c] = tf
                    stage[z, r, c] = sf.Affine.translator(nominal)
            sections.append(grid)
        else:
            sections.append(noisy(cut_tile(content, section, (S, S)), rng))
            truth[z, 0, 0] = section
            stage[z, 0, 0] = sf.Affine()
    return sections, truth, section_tf, stage


def noisy(img: np.ndarray, rng) -> np.ndarray:
    return img + rng.normal(0, NOISE, img.shape).astype(np.float32)


def tiles_of(sections):
    """``{(z, row, col): tile}``, as align_stack names them."""
    return {(z,) + key: tile for z, sec in enumerate(sections)
            for key, tile in (sec.items() if isinstance(sec, dict) else [((0, 0), sec)])}


def level_errors(found, truth, levels):
    """Per section: RMS and max distance over its tiles' pixels between where ``found`` puts
    them and where they belong; model space is the first section's frame for both."""
    base = truth[0, 0, 0].inverse()
    out = []
    for level in levels:
        per = [transform_error(found[t], base @ truth[t], (S, S) if len(level) == 1 else (T, T))
               for t in level]
        out.append((float(np.sqrt(np.mean([r ** 2 for r, _ in per]))), max(m for _, m in per)))
    return out


def render_sections(transforms, tiles, levels, sizes):
    """Every section rendered into the first section's S x S frame."""
    r = sf.Renderer(affine=transforms, tilesize=sizes, blend=20)
    return np.stack([r.render_region((0, 0, S, S), {t: tiles[t] for t in level}) for level in levels])


def stack_figure(before, after, path: Path) -> None:
    """Mean over all sections (sharp only when they are aligned) and a red/green overlay of the
    tiled section and the one above it, magnified."""
    a, b = GRID_LEVEL - 1, GRID_LEVEL
    zoom = (230, 40, 140, 140)             # x0, y0, w, h: vessels across the tiled section's seams
    x0, y0, w, h = zoom
    fig = Figure(figsize=(10.5, 7.2), layout="constrained")
    axes = fig.subplots(2, 3)
    for row, (name, stack) in enumerate((("as imaged", before), ("after align_stack", after))):
        mean = stack.mean(axis=0)
        lim = stretch_limits(*after)
        axes[row, 0].imshow(mean, cmap="gray", vmin=lim[0], vmax=lim[1])
        axes[row, 0].set_title(f"{name}: mean of all {LEVELS} sections", fontsize=9)
        axes[row, 1].imshow(stereo(stack[a], stack[b], lim), interpolation="nearest")
        axes[row, 1].set_title(f"{name}: section {a} red, {b} green", fontsize=9)
        crop = (slice(y0, y0 + h), slice(x0, x0 + w))
        axes[row, 2].imshow(stereo(stack[a][crop], stack[b][crop], stretch_limits(stack[a][crop], stack[b][crop])),
                            interpolation="nearest", extent=(x0 - 0.5, x0 + w - 0.5, y0 + h - 0.5, y0 - 0.5))
        axes[row, 2].set_title("magnified (white box): yellow = agreement", fontsize=9)
        for ax in axes[row, :2]:
            ax.add_patch(Rectangle((x0, y0), w, h, fill=False, color="white", lw=1))
        for ax in axes[row]:
            ax.tick_params(labelsize=7)
    save_figure(fig, path)


def error_figure(before, after, drift_true, drift_found, path: Path) -> None:
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax, ax2 = fig.subplots(1, 2, width_ratios=[1.2, 1])
    z = np.arange(1, LEVELS)              # section 0 is the frame: no error by definition
    ax.bar(z - 0.27, [e[0] for e in before[1:]], 0.26, color="#c0c0c0", label="as imaged (stage), RMS")
    ax.bar(z, [e[0] for e in after[1:]], 0.26, color="#2060d0", label="align_stack, RMS")
    ax.bar(z + 0.27, [e[1] for e in after[1:]], 0.26, color="#80b0ff", label="align_stack, max")
    ax.set_yscale("log")
    ax.set_xticks(z, [f"{k}\n(2x2 tiles)" if k == GRID_LEVEL else str(k) for k in z])
    ax.set_xlabel("section")
    ax.set_ylabel("error against the truth (px)")
    ax.set_title("How far each section's pixels land from where they belong\n"
                 "(section 0 defines the frame)", fontsize=9)
    ax.set_ylim(0.01, 100)
    ax.legend(fontsize=8, loc="upper right", ncols=3)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax2.plot(drift_true[:, 0], drift_true[:, 1], "o-", color="#c0c0c0", lw=5, ms=11, label="true")
    ax2.plot(drift_found[:, 0], drift_found[:, 1], "o-", color="#2060d0", lw=1.5, ms=5, label="found")
    for k, (x, y) in enumerate(drift_true):
        ax2.annotate(str(k), (x, y), xytext=(6, 4), textcoords="offset points", fontsize=8)
    ax2.set_aspect("equal", adjustable="datalim")
    ax2.invert_yaxis()
    ax2.set_xlabel("dx (px)")
    ax2.set_ylabel("dy (px)")
    ax2.set_title("Drift: where each section's centre lies, relative to section 0's", fontsize=9)
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", default="serial-sections-output", help="folder for the figures")
    ap.add_argument("--seed", type=int, default=3, help="seed of the drift, rotations, stretches and noise")
    args = ap.parse_args(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)

    sections, truth, section_tf, stage = make_stack(args.seed)
    tiles = tiles_of(sections)
    print(f"== {LEVELS} sections of {S}x{S} px cut from a photograph: drift up to {DRIFT:g} px per section, "
          f"rotations up to {MAX_ANGLE:g} degrees, stretch up to {MAX_STRETCH:.0%}; section {GRID_LEVEL} "
          f"imaged as 2 x 2 tiles of {T}x{T} px")
    t0 = time.perf_counter()
    # The tiled section's tiles overlap by (2T - S) / T; matches between sections: 128 px
    # windows every 96 px, so every tile of the tiled section gets several.
    result = sf.align_stack(sections, model="affine", overlap=(2 * T - S) / T, fine_size=96, fine_step=64,
                            z_size=128, z_step=96, progress=False)
    seconds = time.perf_counter() - t0
    print(f"  align_stack: {result}, {seconds:.2f} s")

    sizes = result.tile_sizes
    before = level_errors(stage, truth, result.levels)
    after = level_errors(result.transforms, truth, result.levels)
    for z, ((b, _), (r, m)) in enumerate(zip(before, after)):
        print(f"  section {z}: as imaged {b:6.2f} px RMS off; after alignment {r:.3f} px RMS, {m:.3f} px max")
    reg = registration_error(result.transforms, truth, sizes)
    print(f"  registration error of all tile corners (best global affine removed): "
          f"RMS {reg['rms']:.3f} px, max {reg['max']:.3f} px")

    stack_figure(render_sections(stage, tiles, result.levels, sizes),
                 render_sections(result.transforms, tiles, result.levels, sizes), out / "serial_sections_stack.png")
    # Where each section's centre lies in section 0's frame: truly, and through the found
    # transform of the section's first tile.
    base, centre = truth[0, 0, 0].inverse(), np.array([S / 2, S / 2])
    drift_true = np.array([base @ section_tf[z] * centre - centre for z in range(LEVELS)])
    drift_found = np.array([result.transforms[z, 0, 0] @ truth[z, 0, 0].inverse() @ section_tf[z] * centre
                            - centre for z in range(LEVELS)])
    error_figure(before, after, drift_true, drift_found, out / "serial_sections_error.png")
    report(levels=LEVELS, tiles=len(result.transforms), matches=result.n_matches,
           residual_rms_px=result.residuals.rms, stack_shape=list(result.image.shape),
           before_error_px=[b for b, _ in before], error_px=[r for r, _ in after],
           max_error_px=[m for _, m in after], registration_rms_px=reg["rms"], registration_max_px=reg["max"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
