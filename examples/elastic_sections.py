"""Worked example 10: serial sections that warp, re-aligned elastically (align_stack(model="elastic")).

Sixty consecutive 1 mm axial slices (from slice 60 up) of nilearn's bundled MNI152 template (real anatomy that
changes from slice to slice) stand in for serial sections. Each is deformed as cutting and
imaging deform real sections, by its own known map
(``synthetic_sections.serial_sections``): a smooth non-linear displacement of up to 3 px, a
rotation of up to 1 degree, a scale change of up to 1 % and a shift of up to 3 px, plus noise.

1. ``align_stack(sections, model="affine")``: the affine alignment alone (the baseline).
2. ``align_stack(sections, model="elastic", mesh_spacing=16)``: the same affine alignment, then
   dense matches between neighbouring sections and a triangle mesh per section (nodes 16 px
   apart) solved jointly over all sections, rendered through the meshes.

The error is measured against the truth: at each output pixel, the undeformed points that two
neighbouring aligned sections show should coincide; the RMS distance between them over the brain
is reported for both alignments (tests/sections_truth.py does the same in the tests).

Figure (PNG, in ``--output``): ``elastic_sections.png``: an x-z reslice through the stack (the
view where misalignment between sections shows as jagged edges) as imaged, after the affine
alignment, after the elastic alignment, and of the undeformed slices.

    python examples/elastic_sections.py --output elastic-sections-output
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.ndimage import map_coordinates

from _common import report, save_figure
import spectralign_fast as sf
from spectralign_fast.synthetic_sections import mni_axial_slices, serial_sections

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import sections_truth as truth  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", default="elastic-sections-output", help="folder for the figure")
    ap.add_argument("--first", type=int, default=60, help="first axial slice of the template (60)")
    args = ap.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)

    n = 60
    ss = serial_sections(mni_axial_slices(args.first, n), seed=1, cycles=(0.5, 1.5), max_displacement=3.0)
    kw = dict(z_size=96, z_step=32, progress=False)
    affine = sf.align_stack(ss.images, model="affine", **kw)
    t0 = time.perf_counter()
    elastic = sf.align_stack(ss.images, model="elastic", mesh_spacing=16, **kw)
    seconds = time.perf_counter() - t0

    # Truth: the undeformed points each section shows, over the brain.
    q = truth.output_grid(elastic)
    keep = np.ones(len(q), bool)
    for z in range(n):
        X = truth.reference_points(elastic, ss, z, q)
        keep &= map_coordinates(ss.reference[z], [X[:, 1], X[:, 0]], order=1) > 0.15
    err_elastic = truth.neighbour_error(elastic, ss, q, keep)
    err_affine = truth.neighbour_error(elastic, ss, q, keep, elastic=False)

    # x-z reslices through the middle row of the brain.
    h = ss.reference.shape[1]
    row = h // 2
    canvas_row = int(round(row - elastic.canvas[1]))
    views = [("as imaged", np.array([im[row] for im in ss.images])),
             ("affine", affine.image[:, int(round(row - affine.canvas[1]))]),
             ("elastic", elastic.image[:, canvas_row]),
             ("undeformed slices (truth)", ss.reference[:, row])]
    fig = Figure(figsize=(6.5, 9), layout="constrained")
    axes = fig.subplots(len(views), 1)
    for ax, (title, img) in zip(axes, views):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1, aspect=2.0, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("section")
        ax.set_xticks([])
    axes[-1].set_xlabel("x (pixels)")
    fig.suptitle(f"x-z reslice of {n} MNI152 sections: neighbour error {err_affine:.2f} px affine, "
                 f"{err_elastic:.2f} px elastic", fontsize=11)
    save_figure(fig, out / "elastic_sections.png")
    report(sections=n, points=int(keep.sum()), affine_px=round(err_affine, 3), elastic_px=round(err_elastic, 3),
           inverted=int(elastic.elastic.inverted.sum()), seconds=round(seconds, 2),
           flow_rms_px=[round(float(np.mean(elastic.elastic.affine_rms)), 3),
                        round(float(np.mean(elastic.elastic.residual_rms)), 3)])


if __name__ == "__main__":
    main()
