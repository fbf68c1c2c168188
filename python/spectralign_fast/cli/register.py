"""``spectralign-fast register``: intensity-based registration of two images or volumes.

    spectralign-fast register static.nii.gz moving.nii.gz -o moved.nii.gz --transform out.tfm
    spectralign-fast register he.tif fluorescence.tif -o moved.tif --model rigid --metric mi
    spectralign-fast register t1.nii.gz mni.nii.gz -o moved.nii.gz --model syn --warp out_ --report grid.png

``--model syn`` chains an affine (``--metric``) and symmetric diffeomorphic registration
(``--syn-metric``); ``--warp PREFIX`` writes ``PREFIX0GenericAffine.mat``, ``PREFIX1Warp.nii.gz``
and ``PREFIX1InverseWarp.nii.gz`` as antsRegistration names them (ANTs and SimpleITK apply them),
``--report`` a PNG of the deformed grid over the registered image.

Images: TIFF/PNG/JPEG (2-D; the world is the array index) and NIfTI (2-D or 3-D; nibabel's
voxel-to-world affine, RAS+ millimetres, anisotropic voxels honoured). The moving image is
resampled onto the static grid and written with the static image's grid-to-world. The
transform (static world to moving world, DIPY's direction) is written as an ITK transform
(``.tfm``, or ``.mat`` as ANTs writes) that SimpleITK/ANTs read directly (converted to ITK's
LPS world), or as a plain matrix (any other suffix).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..io.displacement_fields import write_ants_transforms
from ..io.transform_files import write_affine
from ..io.volumes import read_image, write_image
from ..register.deformable import SMOOTHED_STEP_METRICS, SYN_METRICS, register_syn
from ..register.figures import deformation_report
from ..register.pipeline import METRICS, MODELS, register_affine


def add_parser(sub: Any, usage_error: type[Exception]) -> None:
    """The ``register`` subcommand on an argparse subparsers object."""
    p = sub.add_parser("register", help="affine or diffeomorphic (SyN) registration of two images or "
                                         "volumes (DIPY-style)")
    p.add_argument("static", help="the reference image (TIFF/PNG or NIfTI)")
    p.add_argument("moving", help="the image to move onto the reference")
    p.add_argument("-o", "--output", help="the moving image resampled onto the static grid "
                                          "(.nii/.nii.gz or .tif)")
    p.add_argument("--transform", help="write the transform here (.tfm / .mat: ITK; other: matrix)")
    p.add_argument("--model", choices=MODELS + ("syn",), default="affine",
                   help="transform family (affine); syn: affine then symmetric diffeomorphic")
    p.add_argument("--metric", choices=METRICS, default="mi",
                   help="affine metric: mi: mutual information, any modality (default); cc: correlation")
    p.add_argument("--syn-metric", choices=SYN_METRICS, default="cc",
                   help="SyN metric: cc local cross-correlation (default), mi mutual information "
                        "(different modalities), ssd, em")
    p.add_argument("--level-iters", type=lambda v: [int(x) for x in v.split(",")], default=None,
                   help="SyN iterations per level, coarsest first (default 100,100,25)")
    p.add_argument("--syn-sigma-diff", type=float, default=None, metavar="S",
                   help="SyN step smoothing in voxels for --syn-metric cc or mi (default 5; DIPY's is 2)")
    p.add_argument("--syn-step", type=float, default=None, metavar="L",
                   help="SyN step, in voxels of each level (default 0.15; DIPY's is 0.25)")
    p.add_argument("--warp", metavar="PREFIX",
                   help="with --model syn: write ANTs-style PREFIX0GenericAffine.mat, PREFIX1Warp.nii.gz, "
                        "PREFIX1InverseWarp.nii.gz")
    p.add_argument("--report", metavar="PNG", help="with --model syn: a PNG of the deformed grid")
    p.add_argument("--initial", choices=("auto", "mass", "centers", "none"), default="auto",
                   help="starting alignment (auto: the global initialiser, finds large rotations)")
    p.add_argument("--threads", type=int, default=0, help="worker threads (0 = every core)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    p.set_defaults(run=lambda args: cmd_register(args, usage_error))


def cmd_register(args: argparse.Namespace, usage_error: type[Exception]) -> int:
    """Run the ``register`` subcommand."""
    syn = args.model == "syn"
    if not syn and (args.warp or args.report or args.level_iters or args.syn_sigma_diff is not None
                    or args.syn_step is not None):
        raise usage_error("--warp, --report, --level-iters, --syn-sigma-diff and --syn-step need --model syn")
    if args.syn_sigma_diff is not None and args.syn_metric not in SMOOTHED_STEP_METRICS:
        raise usage_error("--syn-sigma-diff applies to --syn-metric cc or mi")
    if args.output is None and args.transform is None and args.warp is None:
        raise usage_error("nothing to write: give -o/--output, --transform and/or --warp")
    if args.level_iters is not None and (not args.level_iters or min(args.level_iters) < 0):
        raise usage_error("--level-iters needs non-negative counts, e.g. 100,100,25")
    warp_files = ([] if args.warp is None else
                  [f"{args.warp}0GenericAffine.mat", f"{args.warp}1Warp.nii.gz", f"{args.warp}1InverseWarp.nii.gz"])
    for name in [args.output, args.transform, args.report] + warp_files:
        if name is not None and Path(name).exists() and not args.overwrite:
            raise usage_error(f"{name} exists; pass --overwrite to replace it")
    if args.threads < 0:
        raise usage_error(f"--threads must be >= 0, got {args.threads}")
    for name in (args.static, args.moving):
        if not Path(name).is_file():
            raise usage_error(f"no such file: {name}")
    t0 = time.perf_counter()
    static, static_g2w = read_image(args.static)
    moving, moving_g2w = read_image(args.moving)
    if static.ndim != moving.ndim:
        raise usage_error(f"{args.static} is {static.ndim}-D but {args.moving} is {moving.ndim}-D")
    if syn:
        return _run_syn(args, static, static_g2w, moving, moving_g2w, t0)
    result = register_affine(static, moving, model=args.model, metric=args.metric,
                             static_grid2world=static_g2w, moving_grid2world=moving_g2w,
                             initial=args.initial, threads=args.threads, progress=not args.quiet)
    if args.transform is not None:
        write_affine(args.transform, result.affine, overwrite=args.overwrite)
    if args.output is not None:
        moved = result.transform(moving, threads=args.threads)
        write_image(args.output, np.asarray(moved, dtype=np.float32), static_g2w, overwrite=args.overwrite)
    if not args.quiet:
        written = " and ".join(n for n in (args.output, args.transform) if n)
        print(f"{args.model} ({args.metric}) registered in {time.perf_counter() - t0:.1f} s, "
              f"{result.evaluations} metric evaluations, start from {result.initial_method}; "
              f"wrote {written}")
    return 0


def _run_syn(args: argparse.Namespace, static: np.ndarray, static_g2w: np.ndarray, moving: np.ndarray,
             moving_g2w: np.ndarray, t0: float) -> int:
    result = register_syn(static, moving, metric=args.syn_metric, static_grid2world=static_g2w,
                          moving_grid2world=moving_g2w, affine_metric=args.metric,
                          level_iters=args.level_iters, threads=args.threads, progress=not args.quiet,
                          **({} if args.syn_step is None else {"step_length": args.syn_step}),
                          **({} if args.syn_sigma_diff is None else {"sigma_diff": args.syn_sigma_diff}))
    mapping = result.mapping
    if args.transform is not None:
        write_affine(args.transform, result.affine, overwrite=args.overwrite)
    if args.warp is not None:
        write_ants_transforms(args.warp, result.affine, mapping.get_forward_field(),
                              mapping.get_backward_field(), mapping.disp_grid2world
                              if mapping.disp_grid2world is not None else np.eye(static.ndim + 1),
                              overwrite=args.overwrite)
    if args.output is not None:
        moved = result.transform(moving, threads=args.threads)
        write_image(args.output, np.asarray(moved, dtype=np.float32), static_g2w, overwrite=args.overwrite)
    if args.report is not None:
        deformation_report(args.report, mapping, static, moving, overwrite=args.overwrite,
                           title=f"{Path(args.moving).name} -> {Path(args.static).name}")
    if not args.quiet:
        written = ", ".join(n for n in (args.output, args.transform, args.warp and args.warp + "*",
                                        args.report) if n)
        iters = "/".join(str(lv.iterations) for lv in result.levels)
        print(f"affine + SyN ({args.syn_metric}) registered in {time.perf_counter() - t0:.1f} s "
              f"(SyN {result.syn_seconds:.1f} s, iterations {iters}); wrote {written}")
    return 0
