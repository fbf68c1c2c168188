"""``spectralign-fast register``: intensity-based affine registration of two images or volumes.

    spectralign-fast register static.nii.gz moving.nii.gz -o moved.nii.gz --transform out.tfm
    spectralign-fast register he.tif fluorescence.tif -o moved.tif --model rigid --metric mi

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

from ..io.transform_files import write_affine
from ..io.volumes import read_image, write_image
from ..register.pipeline import METRICS, MODELS, register_affine


def add_parser(sub: Any, usage_error: type[Exception]) -> None:
    """The ``register`` subcommand on an argparse subparsers object."""
    p = sub.add_parser("register", help="affine registration of two images or volumes (DIPY-style, "
                                         "mutual information)")
    p.add_argument("static", help="the reference image (TIFF/PNG or NIfTI)")
    p.add_argument("moving", help="the image to move onto the reference")
    p.add_argument("-o", "--output", help="the moving image resampled onto the static grid "
                                          "(.nii/.nii.gz or .tif)")
    p.add_argument("--transform", help="write the transform here (.tfm / .mat: ITK; other: matrix)")
    p.add_argument("--model", choices=MODELS, default="affine", help="transform family (affine)")
    p.add_argument("--metric", choices=METRICS, default="mi",
                   help="mi: mutual information, any modality (default); cc: correlation, same modality")
    p.add_argument("--initial", choices=("auto", "mass", "centers", "none"), default="auto",
                   help="starting alignment (auto: the global initialiser, finds large rotations)")
    p.add_argument("--threads", type=int, default=0, help="worker threads (0 = every core)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    p.set_defaults(run=lambda args: cmd_register(args, usage_error))


def cmd_register(args: argparse.Namespace, usage_error: type[Exception]) -> int:
    """Run the ``register`` subcommand."""
    if args.output is None and args.transform is None:
        raise usage_error("nothing to write: give -o/--output and/or --transform")
    for name in (args.output, args.transform):
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
