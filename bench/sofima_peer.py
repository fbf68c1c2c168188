"""SOFIMA's elastic section alignment on the sections in an .npz, for bench_sections.py.

Runs in SOFIMA's own environment (bench/install_sofima.sh): the flow field of each
pair of neighbouring sections (JAX masked cross-correlation), cleaned with
``flow_utils.clean_flow``, then each section's mesh relaxed against the already
solved previous one (``mesh.relax_mesh`` with the settings of SOFIMA's EM
alignment notebook), the solved maps inverted (``map_utils.invert_map``) and
sampled at the query points. Writes, for every section z and query point q (x, y)
of the output, the section pixel (x, y) it shows, and the seconds per stage.

Masks: ``flow_field`` correlates the mean-subtracted patches *without*
normalisation when it is given no masks (``flow_field.masked_xcorr`` returns the
raw correlation); only with masks does it compute the normalised masked
cross-correlation (Padfield). On EM texture the raw peak is sharp enough, but on
smooth imagery (the 1 mm MNI slices of bench_sections.py) the raw correlation is
weighted by the shrinking patch overlap and its peak is pulled towards zero shift:
a pure (3, -2) px shift came back as 0-3 px per patch and 1.7 px RMS after the mesh.
So each section is given the mask SOFIMA's processors pass for invalid pixels:
here the empty background (``< --mask-below``), which switches the flow to the
normalised correlation (every patch of that shift then gives exactly (3, -2)).
``--mask-below`` < 0 reproduces the unmasked (raw correlation) run.

``--min-patch`` >= 0 adds the notebook's second flow, computed on the sections
downsampled 2x by area averaging, upsampled with ``map_utils.resample_map`` and
used to fill the 1x flow's gaps (``flow_utils.reconcile_flows``). Off by default:
on slices 60-64 it helped the notebook's stiff mesh (k 0.1: 0.92 -> 0.80 px) and
hurt the softer one (k 0.01: 0.51 -> 0.55 px; its vectors are whole 2x pixels).

Conventions (checked against a known shift): ``flow_field(pre, post)`` gives at
post's patch centre p the offset to the matching point of pre (post -> pre, x
then y); with the flow padded by patch/2/stride entries, entry (i, j) lies at
pixel (j, i) * stride. ``relax_mesh`` of the flow composed with the previous
solution gives a forward map (section pixel -> output), so ``invert_map`` gives
output -> section pixel, as ``warp.warp_subvolume`` renders it.

    python bench/sofima_peer.py IN.npz OUT.npz --patch 32 --stride 8
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--stride", type=int, default=8)
    ap.add_argument("--k0", type=float, default=0.01)
    ap.add_argument("--k", type=float, default=0.1)
    ap.add_argument("--mask-below", type=float, default=0.05,
                    help="mask pixels below this as invalid (empty background); < 0: no masks (raw correlation)")
    ap.add_argument("--min-patch", type=int, default=-1,
                    help=">= 0: also the notebook's 2x-downsampled flow, filling the 1x flow's gaps "
                         "(reconcile_flows with this min_patch_size); < 0: the 1x flow alone")
    a = ap.parse_args()

    import jax.numpy as jnp
    from scipy.ndimage import map_coordinates
    from sofima import flow_field, flow_utils, map_utils, mesh

    d = np.load(a.inp)
    sections, q = d["sections"].astype(np.float32), d["q"]
    n = len(sections)
    stride = a.stride
    t0 = time.perf_counter()
    mfc = flow_field.JAXMaskedXCorrWithStatsCalculator()

    def cleaned_flow(images):
        masks = [None] * n if a.mask_below < 0 else [s < a.mask_below for s in images]
        flows = [mfc.flow_field(images[z - 1], images[z], (a.patch, a.patch), (stride, stride), masks[z - 1],
                                masks[z], batch_size=256) for z in range(1, n)]
        pad = a.patch // 2 // stride
        flows = np.pad(np.array(flows), [[0, 0], [0, 0], [pad, pad], [pad, pad]], constant_values=np.nan)
        flows = np.transpose(flows, [1, 0, 2, 3])  # [channels, z, y, x]
        return flow_utils.clean_flow(flows, min_peak_ratio=1.6, min_peak_sharpness=1.6, max_magnitude=40,
                                     max_deviation=5)

    clean = cleaned_flow(sections)
    if a.min_patch >= 0:  # the notebook's 2x flow (area-averaged sections), upsampled onto the 1x grid
        h2, w2 = sections.shape[1] // 2, sections.shape[2] // 2
        half = sections[:, :2 * h2, :2 * w2].reshape(n, h2, 2, w2, 2).mean(axis=(2, 4))
        f2 = cleaned_flow(half)
        box1 = map_utils.bounding_box.BoundingBox(start=(0, 0, 0), size=(clean.shape[-1], clean.shape[-2], 1))
        box2 = map_utils.bounding_box.BoundingBox(start=(0, 0, 0), size=(f2.shape[-1], f2.shape[-2], 1))
        f2_hires = np.zeros_like(clean)
        for z in range(f2.shape[1]):
            f2_hires[:, z:z + 1] = map_utils.resample_map(f2[:, z:z + 1], box2, box1, 2, 1) * 2
        clean = flow_utils.reconcile_flows((clean, f2_hires), max_gradient=0, max_deviation=5,
                                           min_patch_size=a.min_patch)
    t_flow = time.perf_counter() - t0

    t0 = time.perf_counter()
    config = mesh.IntegrationConfig(dt=0.001, gamma=0.0, k0=a.k0, k=a.k, stride=(stride, stride), num_iters=1000,
                                    max_iters=100000, stop_v_max=0.005, dt_max=1000, start_cap=0.01, final_cap=10,
                                    prefer_orig_order=True)
    solved = [np.zeros_like(clean[:, 0:1, ...])]
    origin = jnp.array([0.0, 0.0])
    for z in range(clean.shape[1]):
        prev = map_utils.compose_maps_fast(clean[:, z:z + 1, ...], origin, stride, solved[-1], origin, stride)
        x = np.zeros_like(solved[0])
        x, _, _ = mesh.relax_mesh(x, prev, config)
        solved.append(np.array(x))
    solved = np.concatenate(solved, axis=1)
    t_mesh = time.perf_counter() - t0

    # Output point q shows section z at q + inv(q): invert each map on its own grid, then sample.
    t0 = time.perf_counter()
    box = map_utils.bounding_box.BoundingBox(start=(0, 0, 0), size=(solved.shape[-1], solved.shape[-2], 1))
    coords = np.zeros((n, len(q), 2))
    for z in range(n):
        inv = map_utils.invert_map(solved[:, z:z + 1], box, box, stride)
        inv = map_utils.fill_missing(inv, extrapolate=True)
        gy, gx = q[:, 1] / stride, q[:, 0] / stride
        for c in range(2):
            coords[z, :, c] = q[:, c] + map_coordinates(np.asarray(inv[c, 0]), [gy, gx], order=1, mode="nearest")
    t_invert = time.perf_counter() - t0
    np.savez(a.out, coords=coords, t_flow=t_flow, t_mesh=t_mesh, t_invert=t_invert,
             kept=np.isfinite(clean[0]).mean())


if __name__ == "__main__":
    main()
