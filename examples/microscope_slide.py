"""Worked example 11: a two-cycle, three-channel slide from its metadata to one registered OME-Zarr.

What a slide scanner and a cyclic-immunofluorescence protocol give you: one OME-TIFF per imaging
cycle, each holding every tile with its stage position, the pixel size and named channels. Here
both are written from scikit-image's retina photograph (``synthetic_slides``): a 3 x 4 layout in
serpentine order with a hole, tiles jittered by up to 6 px around their nominal places, stage
positions recorded with up to 1.5 px of error, an off-centre vignette on every tile, and a second
cycle that sees the slide shifted by (14.3, -9.6) px and rotated by 0.4 degrees. Truth maps every
tile's pixels to the photograph.

1. ``read_slide`` shows what the metadata holds (channels, pixel size, positions).
2. ``montage([cycle1, cycle2], align_channel="DAPI", flatfield="auto", output=...)``: the flat
   field estimated and refined from the tile overlaps, cycle 1 stitched from its stage positions,
   every tile of cycle 2 registered to cycle 1's montage, all six channels written to one
   OME-Zarr with their names and the pixel size.
3. The output is read back, and the accuracy measured against the truth: cycle 1's tile corners,
   cycle 2 against cycle 1 (where the two cycles put the same point of the photograph), and the
   seam contrast in the overlaps before and after the flat field.

Figures (PNG, in ``--output``): ``slide.png`` (cycle 1's tiles, residuals and SNR) and
``slide-illumination.png`` (every flat field, and cycle 2's residuals).

    python examples/microscope_slide.py --output slide-output
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from _common import report
import spectralign_fast as sf
from spectralign_fast import synthetic as syn, synthetic_slides as ss
from spectralign_fast.transforms.affine import Affine
from spectralign_fast.workflows.slide import write_slide_report

TILE = 320


def seam_contrast(tiles: dict, truth: dict) -> float:
    """Mean over overlapping tile pairs of |mean(a) - mean(b)| / mean, on the content both show."""
    ys, xs = np.mgrid[0:TILE:4, 0:TILE:4]
    pa = np.stack([xs.ravel(), ys.ravel()]).astype(float)
    keys, out = sorted(truth), []
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            pb = Affine(truth[b]).inverse() * (Affine(truth[a]) * pa)
            ok = np.all((pb >= 0) & (pb <= TILE - 1), axis=0)
            if ok.sum() < 200:
                continue
            va = tiles[a]().astype(float)[pa[1, ok].astype(int), pa[0, ok].astype(int)]
            vb = ndimage.map_coordinates(tiles[b]().astype(float), [pb[1, ok], pb[0, ok]], order=1)
            out.append(abs(va.mean() - vb.mean()) / (0.5 * (va.mean() + vb.mean())))
    return float(np.mean(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", default="slide-output", help="folder for the slides, the montage and the figures")
    args = ap.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)

    photo = syn.photograph("retina")
    layout = ss.slide_layout(3, 4, tile=TILE, holes=[(1, 1)], serpentine=True, jitter=6, margin=200, seed=3)
    c = photo.shape[1] / 2
    motion = Affine.translator((c + 14.3, c - 9.6)) @ Affine.rotator(np.radians(0.4)) @ Affine.translator((-c, -c))
    smooth = ndimage.gaussian_filter(photo, 3)
    flat = ss.vignette(TILE)
    s1 = ss.write_slide(out / "cycle1.ome.tiff", {"DAPI": photo, "CD3": smooth ** 2, "CD20": 1 - photo},
                        layout, flatfield=flat, seed=1)
    s2 = ss.write_slide(out / "cycle2.ome.tiff", {"DAPI": photo, "CD8": np.sqrt(smooth), "CD68": 1 - smooth},
                        layout, flatfield=flat, slide_motion=motion, seed=2)

    slide = sf.io.read_slide(s1.path)
    print(f"{slide.path.name}: {len(slide)} tiles of {slide.tile_shape}, channels {slide.channels}, "
          f"pixel {slide.pixel_size} um")

    t0 = time.perf_counter()
    result = sf.montage([s1.path, s2.path], align_channel="DAPI", flatfield="auto", progress=False,
                        output=out / "slide.ome.zarr", overwrite=True)
    seconds = time.perf_counter() - t0
    result.save(out / "slide.json")
    write_slide_report(result, out / "slide.png")
    print(result)

    back = sf.io.read_channels(out / "slide.ome.zarr")
    m1, m2 = result.cycles[0].montage.transforms, result.cycles[1].montage.transforms
    corners = syn.registration_error(m1, s1.truth, {t: (TILE, TILE) for t in s1.truth})
    between = ss.cycle_misregistration(m1, m2, s1.truth, s2.truth, TILE)
    raw = seam_contrast(sf.io.read_slide(s1.path).tiles("DAPI"), s1.truth)
    corrected = seam_contrast(result.cycles[0].slide.tiles("DAPI"), s1.truth)
    report(tiles=len(m1), channels=back.channels, pixel_size=[round(v, 4) for v in back.pixel_size or ()],
           shape=list(back.data.shape), seconds=round(seconds, 2),
           cycle1_corners_px=round(corners["rms"], 3),
           cycle2_vs_cycle1_px=[round(float(np.sqrt(np.mean(between ** 2))), 3), round(float(between.max()), 3)],
           cycle2_residual_px=round(result.cycles[1].residuals.rms, 3),
           seam_contrast=[round(raw, 4), round(corrected, 5)])


if __name__ == "__main__":
    main()
