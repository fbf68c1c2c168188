"""Non-rigid motion correction benchmark (issue 21): ``NonRigidCrossCorr`` against suite2p's
nonrigid registration on the same movie, side by side in one run.

The movie: scikit-image's camera photograph (512 x 512) moved per frame by known smooth
non-rigid motion (a global drift up to ~3 px plus three Gaussian bumps of displacement,
sigma 70-90 px, 1.5-2.5 px, drifting over the movie), frames made by cubic interpolation
(scipy.ndimage.map_coordinates, the independent oracle), noise 2% of the range, int16 (suite2p's
own frame type): ``spectralign_fast.synthetic.nonrigid_movie``. Both tools get the true
reference (the photograph) and 128 x 128 blocks.

Field error: for each frame the mean over the interior (a border of 64 px = block/2 left out)
of |estimated - true| dense displacement field (px), the field mapping reference coordinates to
frame coordinates (registered(x) = frame(x + d(x))). Ours: ``model.field(i)``; suite2p's: its
integer rigid shift plus its block shifts upsampled exactly as its ``transform_data`` does
(bilinear, ``F.interpolate(align_corners=True)`` between block centres, replicated outside).

Speed: frames/s of registration + applying it (ours ``fit`` + ``transform``; suite2p's
``register_frames(..., nonrigid=True)``, which computes the shifts and applies them), at 1
and 2 threads (suite2p: ``torch.set_num_threads``), on CPU; every repeat runs everything back to
back and the medians over repeats are reported (the machine is shared).

    python bench/bench_nonrigid.py [--frames 200] [--repeats 3]
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import logging
import statistics
import time
import warnings

import numpy as np

import spectralign_fast as sf
from spectralign_fast._config import cpu_name
from spectralign_fast.synthetic import nonrigid_movie

BLOCK = 128
BORDER = BLOCK // 2


def field_errors(fields, truth) -> np.ndarray:
    b = BORDER
    return np.array([np.linalg.norm(f[b:-b, b:-b] - t[b:-b, b:-b], axis=-1).mean() for f, t in zip(fields, truth)])


def ours(movie, ref, threads: int, refine: int = 1):
    t0 = time.perf_counter()
    model = sf.NonRigidCrossCorr(block_size=BLOCK, refine=refine, threads=threads).fit(movie, ref)
    t1 = time.perf_counter()
    model.transform(movie)
    t2 = time.perf_counter()
    return model, t1 - t0, t2 - t1


def suite2p_run(movie, ref, threads: int):
    import torch
    from suite2p.registration import register

    torch.set_num_threads(threads)
    out = np.empty_like(movie)
    t0 = time.perf_counter()
    res = register.register_frames(movie, ref.astype(np.int16), f_align_out=out, block_size=(BLOCK, BLOCK),
                                   nonrigid=True, device=torch.device("cpu"), batch_size=100)
    return res, time.perf_counter() - t0


def suite2p_fields(res, shape):
    """suite2p's dense fields (frame sampled at x + d(x)): rigid roll + its transform_data."""
    import torch
    import torch.nn.functional as F

    _, _, _, offsets, blocks, *_ = res
    ymax, xmax, _, ymax1, xmax1 = offsets[:5]
    yblock, xblock, nblocks = blocks[0], blocks[1], blocks[2]
    Ly, Lx = shape
    yb = np.array(yblock[::nblocks[1]]).mean(axis=1).astype("int")
    xb = np.array(xblock[:nblocks[1]]).mean(axis=1).astype("int")
    Lyc, Lxc = int(yb.max() - yb.min()), int(xb.max() - xb.min())
    y1 = torch.from_numpy(np.asarray(ymax1, np.float32)).reshape(-1, *nblocks)
    x1 = torch.from_numpy(np.asarray(xmax1, np.float32)).reshape(-1, *nblocks)
    up = F.interpolate(torch.stack((y1, x1), dim=1), size=(Lyc, Lxc), mode="bilinear", align_corners=True)
    up = F.pad(up, (int(xb.min()), Lx - int(xb.max()), int(yb.min()), Ly - int(yb.max())), mode="replicate")
    f = up.permute(0, 2, 3, 1).numpy().astype(np.float64)
    f[..., 0] += np.asarray(ymax, np.float64)[:, None, None]
    f[..., 1] += np.asarray(xmax, np.float64)[:, None, None]
    return f


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    logging.getLogger("suite2p").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    ref, movie, truth = nonrigid_movie(args.frames, dtype=np.int16)
    print(f"movie: {movie.shape} int16 made in {time.perf_counter() - t0:.0f} s")
    n = len(movie)
    have_s2p = True
    try:
        import suite2p  # noqa: F401
        import torch
        s2p_version = suite2p.version if hasattr(suite2p, "version") else "?"
        from importlib.metadata import version
        s2p_version = version("suite2p")
        torch_version = torch.__version__
    except ImportError as e:
        have_s2p = False
        print(f"suite2p not available: {e}")
    # Warm-up (plans, torch kernels).
    ours(movie[:4], ref, 1)
    if have_s2p:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            suite2p_run(movie[:4], ref, 1)
    fps = {k: [] for k in ("fit1", "fit2", "all1", "all2", "r0all1", "r0all2", "s2p1", "s2p2")}
    ratio1, ratio2 = [], []
    err_ours = err_s2p = err_r0 = None
    rigid = sf.CrossCorr().fit(movie, ref).toarray()
    err_rigid = field_errors((np.broadcast_to(r, ref.shape + (2,)) for r in rigid), truth)
    for rep in range(args.repeats):
        for threads in (1, 2):
            model, tf, tt = ours(movie, ref, threads)
            fps[f"fit{threads}"].append(n / tf)
            fps[f"all{threads}"].append(n / (tf + tt))
            if err_ours is None:
                err_ours = field_errors((model.field(i) for i in range(n)), truth)
            model0, tf0, tt0 = ours(movie, ref, threads, refine=0)
            fps[f"r0all{threads}"].append(n / (tf0 + tt0))
            if err_r0 is None:
                err_r0 = field_errors((model0.field(i) for i in range(n)), truth)
            if have_s2p:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res, ts = suite2p_run(movie, ref, threads)
                fps[f"s2p{threads}"].append(n / ts)
                (ratio1 if threads == 1 else ratio2).append((tf + tt) / ts)
                if err_s2p is None:
                    err_s2p = field_errors(suite2p_fields(res, ref.shape), truth)
        print(f"repeat {rep}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in fps.items() if v))
    med = {k: statistics.median(v) for k, v in fps.items() if v}
    print()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical CPUs (shared); {n} frames of 512 x 512 int16; "
          f"{args.repeats} repeats, medians" + (f"; suite2p {s2p_version} (torch {torch_version}, CPU)"
                                                  if have_s2p else ""))
    print()
    print("| field error, px (interior, per frame) | mean | median | max |")
    print("|---|---|---|---|")
    print(f"| `NonRigidCrossCorr(block_size=128)` (default `refine=1`) | {err_ours.mean():.3f} | "
          f"{np.median(err_ours):.3f} | {err_ours.max():.3f} |")
    print(f"| `NonRigidCrossCorr(block_size=128, refine=0)` | {err_r0.mean():.3f} | {np.median(err_r0):.3f} | "
          f"{err_r0.max():.3f} |")
    print(f"| (rigid `CrossCorr`, for scale) | {err_rigid.mean():.3f} | {np.median(err_rigid):.3f} | "
          f"{err_rigid.max():.3f} |")
    if have_s2p:
        print(f"| suite2p `register_frames(nonrigid=True, block_size=(128, 128))` | {err_s2p.mean():.3f} | "
              f"{np.median(err_s2p):.3f} | {err_s2p.max():.3f} |")
    print()
    print("| frames/s at 512 x 512 | threads=1 | threads=2 |")
    print("|---|---|---|")
    print(f"| ours: `fit` | {med['fit1']:.0f} | {med['fit2']:.0f} |")
    print(f"| ours: `fit` + `transform` (linear) | {med['all1']:.0f} | {med['all2']:.0f} |")
    print(f"| ours, `refine=0`: `fit` + `transform` | {med['r0all1']:.0f} | {med['r0all2']:.0f} |")
    if have_s2p:
        print(f"| suite2p: `register_frames` (shifts + applying them) | {med['s2p1']:.0f} | {med['s2p2']:.0f} |")
        print(f"| ratio ours / suite2p (same repeat, median) | {statistics.median(ratio1) ** -1:.1f}x | "
              f"{statistics.median(ratio2) ** -1:.1f}x |")


if __name__ == "__main__":
    main()
