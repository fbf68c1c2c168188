"""Deformable (SyN) registration benchmark: spectralign_fast next to DIPY and ANTsPy on the same
inputs with the same schedule, in one run.

Cases (known truth: the moving image is the static one deformed by a sum of Gaussian bumps,
``tests/deformation_oracle.py``; no affine part, so every tool runs SyN only):

* ``ihc512``: scikit-image's immunohistochemistry slide, grey, 512 x 512, bumps up to 6 px;
* ``mni2`` / ``mni1``: nilearn's MNI152 template at 2 mm / 1 mm, bumps up to 5 voxels.

Tools, all with local cross-correlation of radius 4 and 3 levels of 100, 100, 25 iterations:

* ours:  ``SymmetricDiffeomorphicRegistration(CCMetric(d), level_iters=[100, 100, 25], threads=n)``
         (the DIPY-compatible class with DIPY's defaults: the same algorithm as DIPY's);
* api:   ``register_syn(static, moving, prealign=None, level_iters=[100, 100, 25], threads=n)``,
         our own function with its own defaults (scale-space factor 0.5 where DIPY has 0.2);
* DIPY:  the same class from ``dipy.align.imwarp`` (no thread option: run once, as "1 thread");
* ANTs:  ``ants.registration(type_of_transform="SyNOnly", syn_metric="CC", syn_sampling=4,
         reg_iterations=(100, 100, 25))`` (identity initial transform), threads via
         ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS; ANTs' own gradient step and regularisation.

Every (tool, case, threads) runs in its own subprocess, which reports the wall time of the
registration, seconds per level (ours and DIPY, from their callbacks), its peak RSS (VmHWM) and
the RSS before it started (so ``peak - base`` is what the registration added), and the RMS error
(voxels) of the recovered static->moving displacement against the truth over the brain / image
(10% border excluded; for the brain, voxels above 10% of the maximum).

    pip install -e '.[bench]'
    OPENBLAS_NUM_THREADS=1 python bench/bench_syn.py [--cases ihc512 mni2] [--tools ours dipy ants]
    OPENBLAS_NUM_THREADS=1 python bench/bench_syn.py --scale-space 0.2 0.5 1.0   # the factor's sweep
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from bench_register import _peak_mb, _rss_mb  # noqa: E402

TOOLS = ("ours", "api", "dipy", "ants")
LEVEL_ITERS = [100, 100, 25]
RADIUS = 4


def _ihc() -> tuple[np.ndarray, np.ndarray]:
    from skimage import data
    img = data.immunohistochemistry().astype(np.float64).mean(axis=-1) / 255.0
    return img[:512, :512].astype(np.float32), np.eye(3)


def _mni(res: int) -> tuple[np.ndarray, np.ndarray]:
    from nilearn import datasets
    tpl = datasets.load_mni152_template(resolution=res)
    return np.asarray(tpl.get_fdata(), dtype=np.float32), np.diag([float(res)] * 3 + [1.0])


def make_case(case: str):
    import deformation_oracle as oracle
    if case == "ihc512":
        static, g2w = _ihc()
        moving, truth = oracle.deformed_pair(static, max_displacement=6.0, bumps=6, seed=3)
    else:
        static, g2w = _mni(int(case[3:]))
        moving, truth = oracle.deformed_pair(static, max_displacement=5.0, bumps=8, seed=11)
    return static, moving.astype(np.float32), g2w, truth.astype(np.float32)


def error(found_vox: np.ndarray, truth: np.ndarray, static: np.ndarray) -> float:
    import deformation_oracle as oracle
    region = oracle.interior(static.shape)
    diff = (found_vox - truth)[region]
    if static.ndim == 3:
        diff = diff[static[region] > 0.1 * static.max()]
    return float(np.sqrt((diff ** 2).sum(-1).mean()))


# ----------------------------------------------------------------------------- tools

def _level_timer(levels: list[float]):
    state = {}

    def callback(sdr, stage) -> None:
        # Both libraries number the stages alike: SCALE_START = 4, SCALE_END = 5.
        if int(stage) == 4:
            state["t"] = time.perf_counter()
        elif int(stage) == 5:
            levels.append(time.perf_counter() - state["t"])
    return callback


def run_ours(static, moving, g2w, threads):
    from spectralign_fast.register import CCMetric, SymmetricDiffeomorphicRegistration
    levels: list[float] = []
    sdr = SymmetricDiffeomorphicRegistration(CCMetric(static.ndim, radius=RADIUS), level_iters=LEVEL_ITERS,
                                             callback=_level_timer(levels), threads=threads)
    m = sdr.optimize(static, moving, static_grid2world=g2w, moving_grid2world=g2w)
    return m.get_forward_field() / np.diag(g2w)[:-1], levels


def run_dipy(static, moving, g2w, threads):
    from dipy.align.imwarp import SymmetricDiffeomorphicRegistration
    from dipy.align.metrics import CCMetric
    levels: list[float] = []
    sdr = SymmetricDiffeomorphicRegistration(CCMetric(static.ndim, radius=RADIUS), level_iters=LEVEL_ITERS,
                                             callback=_level_timer(levels))
    m = sdr.optimize(static, moving, static_grid2world=g2w, moving_grid2world=g2w)
    return np.asarray(m.get_forward_field()) / np.diag(g2w)[:-1], levels


def run_ants(static, moving, g2w, threads):
    import ants
    from spectralign_fast.io import read_displacement_field
    sp = tuple(np.diag(g2w)[:-1])
    fixed = ants.from_numpy(static, spacing=sp)
    mov = ants.from_numpy(moving, spacing=sp)
    out = ants.registration(fixed, mov, type_of_transform="SyNOnly", syn_metric="CC", syn_sampling=RADIUS,
                            reg_iterations=tuple(LEVEL_ITERS), random_seed=1)
    warp = [p for p in out["fwdtransforms"] if p.endswith("Warp.nii.gz")][0]
    # ants.from_numpy keeps array axis order as ITK's (x = axis 0), spacing only: "lps" world.
    field = read_displacement_field(warp, world="lps").field
    return field / np.array(sp), []


def run_api(static, moving, g2w, threads):
    from spectralign_fast.register import register_syn
    result = register_syn(static, moving, static_grid2world=g2w, moving_grid2world=g2w, prealign=None,
                          level_iters=LEVEL_ITERS, threads=threads)
    return result.mapping.get_forward_field() / np.diag(g2w)[:-1], [lv.seconds for lv in result.levels]


RUNNERS = {"ours": run_ours, "api": run_api, "dipy": run_dipy, "ants": run_ants}


def worker(args) -> None:
    data = np.load(os.path.join(args.cache, f"{args.case}.npz"))
    static, moving, g2w, truth = data["static"], data["moving"], data["g2w"], data["truth"]
    if args.tool == "ants":
        import ants  # noqa: F401
    elif args.tool == "dipy":
        import dipy.align.imwarp  # noqa: F401
    else:
        import spectralign_fast.register  # noqa: F401
    base = _rss_mb()
    t0 = time.perf_counter()
    field, levels = RUNNERS[args.tool](static, moving, g2w, args.threads)
    seconds = time.perf_counter() - t0
    print("RESULT " + json.dumps({"tool": args.tool, "case": args.case, "threads": args.threads,
                                  "seconds": seconds, "levels": levels, "error": error(field, truth, static),
                                  "peak_mb": _peak_mb(), "base_mb": base, "voxels": int(static.size)}),
          flush=True)


def launch(tool: str, case: str, threads: int, cache: str, timeout: float) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS=str(threads),
               ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=str(threads))
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--tool", tool, "--case", case,
           "--threads", str(threads), "--cache", cache]
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"tool": tool, "case": case, "threads": threads, "failed": f"timeout after {timeout:.0f} s"}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
    return {"tool": tool, "case": case, "threads": threads, "failed": " / ".join(tail)[-300:]}


def table(results: list[dict]) -> list[str]:
    rows = ["| case | tool | threads | seconds | x ours | error (voxels) | peak RSS MB (added) | "
            "bytes/voxel added | seconds per level (coarse to fine) |",
            "|---|---|---|---|---|---|---|---|---|"]
    ours = {(r["case"], r["threads"]): r for r in results if r["tool"] == "ours" and "failed" not in r}
    for r in results:
        if "failed" in r:
            rows.append(f"| {r['case']} | {r['tool']} | {r['threads']} | failed: {r['failed']} ||||||")
            continue
        o = ours.get((r["case"], r["threads"])) or ours.get((r["case"], 1))
        ratio = f"{r['seconds'] / o['seconds']:.1f}" if o else "-"
        added = r["peak_mb"] - r["base_mb"]
        levels = ", ".join(f"{s:.2f}" for s in r["levels"]) or "-"
        rows.append(f"| {r['case']} | {r['tool']} | {r['threads']} | {r['seconds']:.2f} | {ratio} | "
                    f"{r['error']:.3f} | {r['peak_mb']:.0f} ({added:.0f}) | {added * 2 ** 20 / r['voxels']:.0f} | "
                    f"{levels} |")
    return rows


PHOTOS = ("camera", "astronaut", "brick", "moon", "immunohistochemistry", "coffee")
PHOTO_FIELDS = ((1, 6.0), (2, 4.0), (5, 8.0))  # (seed, largest displacement in px), 6 bumps each


def scale_space_sweep(factors: list[float], threads: int) -> list[str]:
    """Our SyN (CC radius 4, DIPY's other defaults) on scikit-image photographs (grey, up to
    512 x 512, scaled to [0, 1]) under known bump fields, for each scale-space factor: the RMS
    error (px) per case, and the median, mean and worst over the cases."""
    import deformation_oracle as oracle
    from skimage import color, data
    from spectralign_fast.register import CCMetric, SymmetricDiffeomorphicRegistration
    rows = ["| photograph | seed | largest px | " + " | ".join(f"factor {f:g}" for f in factors) + " |",
            "|---|---|---|" + "---|" * len(factors)]
    errors: dict[float, list[float]] = {f: [] for f in factors}
    for name in PHOTOS:
        img = getattr(data, name)()
        img = color.rgb2gray(img) if img.ndim == 3 else img
        img = np.asarray(img, np.float64)[:512, :512]
        img = (img / img.max()).astype(np.float32)
        for seed, largest in PHOTO_FIELDS:
            moving, truth = oracle.deformed_pair(img, max_displacement=largest, bumps=6, seed=seed)
            cells = []
            for f in factors:
                sdr = SymmetricDiffeomorphicRegistration(CCMetric(2, radius=RADIUS), ss_sigma_factor=f,
                                                         threads=threads)
                found = sdr.optimize(img, moving.astype(np.float32)).get_forward_field()
                e = error(found, truth.astype(np.float32), img)
                errors[f].append(e)
                cells.append(f"{e:.3f}")
            rows.append(f"| {name} | {seed} | {largest:g} | " + " | ".join(cells) + " |")
            print(rows[-1], flush=True)
    for label, fn in (("median", np.median), ("mean", np.mean), ("worst", np.max)):
        rows.append(f"| **{label}** | | | " + " | ".join(f"**{fn(errors[f]):.3f}**" for f in factors) + " |")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=["ihc512", "mni2", "mni1"], choices=["ihc512", "mni2", "mni1"])
    ap.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--skip-dipy-1mm", action="store_true", help="DIPY on the 1 mm volume takes many minutes")
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--out", help="also write the markdown table here")
    ap.add_argument("--scale-space", nargs="+", type=float, metavar="FACTOR",
                    help="instead: our SyN on 6 photographs x 3 known fields for each scale-space factor")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tool", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        args.threads = args.threads[0]
        worker(args)
        return
    if args.scale_space:
        lines = scale_space_sweep(args.scale_space, args.threads[-1])
        print("\n".join(lines))
        if args.out:
            with open(args.out, "w") as f:
                f.write("\n".join(lines) + "\n")
        return
    results = []
    with tempfile.TemporaryDirectory() as cache:
        for case in args.cases:
            static, moving, g2w, truth = make_case(case)
            np.savez(os.path.join(cache, f"{case}.npz"), static=static, moving=moving, g2w=g2w, truth=truth)
            for tool in args.tools:
                for threads in (args.threads if tool != "dipy" else [1]):
                    if tool == "dipy" and case == "mni1" and args.skip_dipy_1mm:
                        continue
                    r = launch(tool, case, threads, cache, args.timeout)
                    results.append(r)
                    print(json.dumps({k: v for k, v in r.items() if k != "levels"}), flush=True)
    lines = [f"SyN benchmark, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"{time.strftime('%Y-%m-%d')}", ""] + table(results)
    print("\n".join(lines))
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
