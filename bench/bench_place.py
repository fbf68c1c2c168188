"""Benchmark of Placement on synthetic tile grids (issues 3 and 19).

Each grid has R x C tiles of 1000 x 1000 px on a 900 px pitch, 8 matches per
neighbour edge (in the 100 px overlap) and 0.2 px Gaussian noise on the
matched points (``--noise``). Every case runs in its own subprocess so that
the peak resident memory (ru_maxrss of the child) covers the C++ allocations
too. Modes: rigid (translation truth), similarity (truth: rotation and scale
per tile, sd 2e-3), affine and affine-reg (truth: every entry of A_t off the
identity by sd 2e-3; affine-reg is ``affine(regularize=DEFAULT_REGULARIZE,
prior=MONTAGE_PRIOR)``, montage's default, its time including the similarity
solve of its prior and the similarity test; affine-rc is ``affine(regularize=1e-3,
prior="rigid-centres")``, its time including the rigid solve of its prior). affine-rc-lens solves
as affine-rc, on a truth whose tiles share one lens distortion (``LENS`` off the identity, as a
microscope's optics give every tile) plus a per-tile part of sd 2e-4: the drift case of issue 19,
which independent sd 2e-3 affines cannot pin below about 2 px even for the Bayes estimate.

    python bench/bench_place.py                 # the full table (Markdown)
    python bench/bench_place.py --sizes 30 100  # a subset
    python bench/bench_place.py --case 300 affine sparse auto   # one case, JSON
    python bench/bench_place.py --noise 0 --sizes 300 --dense-sizes --modes rigid similarity affine
        # noise-free grids: how close iterative refinement gets (method "norefine": without it)
    python bench/bench_place.py --montage       # the 8 x 8 grid of 2048 px tiles, regularize sweep
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

from typing import Any, Dict, List, Tuple

import numpy as np

TILE = 1000.0
PITCH = 900.0
PER_EDGE = 8
NOISE = 0.2
# affine-rc: affine(regularize=RC_REGULARIZE, prior="rigid-centres"), the weight near the best of
# 1e-4 ... 1 on these grids (bench/RESULTS.md).
RC_REGULARIZE = 1e-3


# affine-rc-lens: every tile's linear part is I + LENS + a per-tile part of sd LENS_SD.
LENS = np.array([[1e-3, 5e-4], [-3e-4, -1e-3]])
LENS_SD = 2e-4


MODES = ("rigid", "similarity", "affine", "affine-reg", "affine-rc", "affine-rc-lens")


def make_grid(rows: int, cols: int, *, affine: Any, noise: float = NOISE, per_edge: int = PER_EDGE,
              seed: int = 0, tile: float = TILE, pitch: float = PITCH):
    """Vectorised synthetic grid: (truth (N,2,3), t1, t2, P1, P2) with integer tile ids.
    ``affine``: True (random A_t), "similarity" (random rotation and scale), "lens" (LENS shared
    by every tile plus a random part of sd LENS_SD) or False."""
    rng = np.random.default_rng(seed)
    n = rows * cols
    ids = np.arange(n, dtype=np.int64).reshape(rows, cols)
    truth = np.zeros((n, 2, 3))
    truth[:, 0, 0] = truth[:, 1, 1] = 1.0
    if affine == "similarity":
        ab = rng.normal(0.0, 2e-3, (n, 2))
        truth[:, :, :2] += np.stack([np.stack([ab[:, 0], -ab[:, 1]], 1), np.stack([ab[:, 1], ab[:, 0]], 1)], 1)
    elif affine == "lens":
        truth[:, :, :2] += LENS + rng.normal(0.0, LENS_SD, (n, 2, 2))
    elif affine:
        truth[:, :, :2] += rng.normal(0.0, 2e-3, (n, 2, 2))
    truth[:, 0, 2] = (ids % cols).ravel() * pitch + rng.normal(0.0, 5.0, n)
    truth[:, 1, 2] = (ids // cols).ravel() * pitch + rng.normal(0.0, 5.0, n)
    h1 = ids[:, :-1].ravel()
    v1 = ids[:-1, :].ravel()
    e1 = np.concatenate([h1, v1])
    e2 = np.concatenate([h1 + 1, v1 + cols])
    horiz = np.concatenate([np.ones(len(h1), bool), np.zeros(len(v1), bool)])
    t1 = np.repeat(e1, per_edge)
    t2 = np.repeat(e2, per_edge)
    hz = np.repeat(horiz, per_edge)
    m = len(t1)
    # points of tile 1 inside the overlap with tile 2 (tile-1 pixel coordinates)
    along = rng.uniform(0.05 * tile, 0.95 * tile, m)
    across = rng.uniform(pitch + 0.01 * tile, tile - 0.01 * tile, m)
    P1 = np.empty((m, 2))
    P1[:, 0] = np.where(hz, across, along)
    P1[:, 1] = np.where(hz, along, across)
    P2 = np.empty_like(P1)
    step = 1 << 20  # bounded temporaries, so peak RSS reflects the solver
    for s in range(0, m, step):
        sl = slice(s, s + step)
        T1, T2 = truth[t1[sl]], truth[t2[sl]]
        q = np.einsum("mij,mj->mi", T1[:, :, :2], P1[sl]) + T1[:, :, 2]
        P2[sl] = np.linalg.solve(T2[:, :, :2], (q - T2[:, :, 2])[:, :, None])[:, :, 0]
    if noise > 0:
        P2 += rng.normal(0.0, noise, P2.shape)
    return truth, t1, t2, P1, P2


def gauge_truth(truth: np.ndarray, affine: bool) -> np.ndarray:
    """The truth in the mean gauge (mean X = 0; affine: mean A = I)."""
    if not affine:
        xy = truth[:, :, 2] - 0.0
        return xy - xy.mean(axis=0)
    g = np.linalg.inv(truth[:, :, :2].mean(axis=0))
    out = np.einsum("ij,njk->nik", g, truth)
    out[:, :, 2] -= out[:, :, 2].mean(axis=0)
    return out


def dense_solve(t1, t2, P1, P2, n, affine):
    """spectralign-style dense solve: (N+1)^2 per coordinate, or (6N+6)^2 (vectorised assembly)."""
    w = np.ones(len(t1))
    if not affine:
        out = np.zeros((n, 2))
        for d in range(2):
            A = np.zeros((n + 1, n + 1))
            b = np.zeros(n + 1)
            np.add.at(A, (t1, t1), w)
            np.add.at(A, (t2, t2), w)
            np.add.at(A, (t1, t2), -w)
            np.add.at(A, (t2, t1), -w)
            np.add.at(b, t1, w * (P2[:, d] - P1[:, d]))
            np.add.at(b, t2, -w * (P2[:, d] - P1[:, d]))
            A[n, :n] = A[:n, n] = 1.0
            out[:, d] = np.linalg.solve(A, b)[:n]
        return out
    size = 6 * n + 6
    M = np.zeros((size, size))
    b = np.zeros(size)
    m = len(t1)
    for r in range(2):
        cols = np.stack([6 * t1 + 2 * r, 6 * t1 + 2 * r + 1, 6 * t1 + 4 + r,
                         6 * t2 + 2 * r, 6 * t2 + 2 * r + 1, 6 * t2 + 4 + r], axis=1)
        vals = np.stack([P1[:, 0], P1[:, 1], np.ones(m), -P2[:, 0], -P2[:, 1], -np.ones(m)], axis=1)
        np.add.at(M, (cols[:, :, None], cols[:, None, :]), w[:, None, None] * vals[:, :, None] * vals[:, None, :])
    for k in range(6):
        M[6 * n + k, k:6 * n:6] = 1.0
        M[k:6 * n:6, 6 * n + k] = 1.0
    b[6 * n] = b[6 * n + 3] = n
    x = np.linalg.solve(M, b)[:6 * n].reshape(n, 6)
    return np.stack([np.stack([x[:, 0], x[:, 1], x[:, 4]], 1), np.stack([x[:, 2], x[:, 3], x[:, 5]], 1)], 1)


def corner_errors(sol: np.ndarray, truth: np.ndarray, tile: float = TILE) -> Tuple[float, float]:
    """(RMS over tiles of the tile-centre error, largest tile-corner error), px, with the solution
    and the truth both mapped into the mean gauge (mean A = I, mean X = 0)."""
    a, b = gauge_truth(sol, True), gauge_truth(truth, True)
    c = np.array([tile / 2, tile / 2, 1.0])
    centre = np.einsum("nij,j->ni", a - b, c)
    worst = 0.0
    step = 1 << 18
    for s in range(0, len(a), step):
        for corner in ((0.0, 0.0), (tile, 0.0), (0.0, tile), (tile, tile)):
            d = np.einsum("nij,j->ni", a[s:s + step] - b[s:s + step], np.array([*corner, 1.0]))
            worst = max(worst, float(np.hypot(d[:, 0], d[:, 1]).max()))
    return float(np.sqrt(np.mean(np.sum(centre ** 2, axis=1)))), worst


def run_case(size: int, mode: str, method: str, solver: str, noise: float = NOISE) -> dict:
    affine = mode in ("affine", "affine-reg", "affine-rc", "affine-rc-lens")
    truth_kind: Any = {"similarity": "similarity", "affine-rc-lens": "lens"}.get(mode, affine)
    t0 = time.perf_counter()
    truth, t1, t2, P1, P2 = make_grid(size, size, affine=truth_kind, noise=noise)
    t_gen = time.perf_counter() - t0
    n = size * size
    out = {"size": size, "tiles": n, "matches": len(t1), "mode": mode, "method": method, "gen_s": t_gen,
           "noise": noise}
    if method == "dense":
        t0 = time.perf_counter()
        sol = dense_solve(t1, t2, P1, P2, n, affine)
        out["solve_s"] = time.perf_counter() - t0
        out["solver"] = "numpy dense"
    elif method == "norefine":  # the C++ solve without iterative refinement (for comparison)
        from spectralign_fast import _core

        w = np.ones(len(t1))
        t0 = time.perf_counter()
        if mode == "similarity":
            from spectralign_fast.place.regularize import central_tile

            core = _core.place.solve_similarity(n, t1, t2, P1, P2, w, fix=0, refine=0,
                                                reference=central_tile(n, t1, t2))  # as similarity()
        else:
            core = _core.place.solve(n, t1, t2, P1, P2, w, affine=affine, refine=0)
        out["solve_s"] = time.perf_counter() - t0
        out["solver"] = core.solver
        sol = core.params
    else:
        import spectralign_fast as sf
        from spectralign_fast.place.regularize import DEFAULT_REGULARIZE, MONTAGE_PRIOR

        t0 = time.perf_counter()
        plc = sf.Placement()
        plc.addmatches(t1, t2, P1, P2)
        out["add_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        res: Any
        if mode == "similarity":
            res = plc.similarity()
        elif affine:
            lam = {"affine-reg": DEFAULT_REGULARIZE, "affine-rc": RC_REGULARIZE,
                   "affine-rc-lens": RC_REGULARIZE}.get(mode, 0.0)
            prior = "rigid-centres" if mode.startswith("affine-rc") else MONTAGE_PRIOR
            res = plc.affine(solver=solver, regularize=lam, prior=prior)
            out["regularize"] = lam
        else:
            res = plc.rigid(solver=solver)
        out["solve_s"] = time.perf_counter() - t0  # includes building the result dict
        info = plc.solve_info
        out.update(solver=info["solver"], unknowns=info["unknowns"], cg_iterations=info["cg_iterations"],
                   cpp=info["timings"], refinement=info["refinement"])
        sol = np.array([res[i] for i in range(n)]) if n <= 10000 else plc._result["params"]
        r = plc.residuals()
        out["resid_rms"] = r.rms
    if mode == "rigid":
        ref = gauge_truth(truth, False)
        err = sol - ref
        out["err_rms_px"] = float(np.sqrt(np.mean(np.sum(err ** 2, axis=1))))
        out["corner_max_px"] = float(np.hypot(err[:, 0], err[:, 1]).max())
    else:
        # tile centres (RMS) and corners (max) vs. the truth, both in the mean gauge
        out["err_rms_px"], out["corner_max_px"] = corner_errors(sol, truth)
    return out


def montage_sweep(seeds: int = 5, lams: Tuple[float, ...] = (1e-4, 1e-3, 1e-2, 0.1, 1.0),
                  priors: Tuple[str, ...] = ("similarity",)) -> None:
    """The 8 x 8 grid of 2048 px tiles, 10 % overlap, 20 matches per edge, 0.2 px noise: tile-corner
    errors (RMS over tiles and corners, mean over seeds) of affine, similarity and regularised affine
    for three truths: rotations only (sd 1e-3 rad), plus 0.5 % uniform scale per tile, plus 0.5 %
    scale per axis (a stretch that a similarity cannot follow)."""
    import spectralign_fast as sf

    tile, pitch = 2048.0, 2048.0 * 0.9
    cases = (("rotation", 0.0, 0.0), ("0.5% scale", 0.005, 0.0), ("0.5% per-axis scale", 0.0, 0.005))
    corners = np.array([[0.0, 0.0, 1.0], [tile, 0.0, 1.0], [0.0, tile, 1.0], [tile, tile, 1.0]])
    def label(prior: str, lam: float) -> str:
        return f"regularize={lam:g}" + ("" if prior == "similarity" else f" {prior}")

    models = ["affine", "similarity"] + [label(p, lam) for p in priors for lam in lams]
    print(f"| truth | {' | '.join(models)} |")
    print("|---|" + "---|" * len(models))
    for name, scale, axis in cases:
        errs: Dict[str, List[float]] = {m: [] for m in models}
        for seed in range(seeds):
            rng = np.random.default_rng(100 + seed)
            truth, t1, t2, P1, P2 = make_grid(8, 8, affine=False, noise=0.0, per_edge=20, seed=seed, tile=tile,
                                              pitch=pitch)
            th = rng.normal(0.0, 1e-3, 64)
            s = 1.0 + rng.normal(0.0, scale, 64) if scale else np.ones(64)
            sx = 1.0 + rng.normal(0.0, axis, 64) if axis else np.ones(64)
            sy = 1.0 + rng.normal(0.0, axis, 64) if axis else np.ones(64)
            rot = np.stack([np.stack([np.cos(th), -np.sin(th)], 1), np.stack([np.sin(th), np.cos(th)], 1)], 1)
            truth[:, :, :2] = rot * s[:, None, None] @ np.stack([np.stack([sx, 0 * sx], 1),
                                                                 np.stack([0 * sy, sy], 1)], 1)
            T1, T2 = truth[t1], truth[t2]
            q = np.einsum("mij,mj->mi", T1[:, :, :2], P1) + T1[:, :, 2]
            P2 = np.linalg.solve(T2[:, :, :2], (q - T2[:, :, 2])[:, :, None])[:, :, 0]
            P2 += rng.normal(0.0, NOISE, P2.shape)
            plc = sf.Placement()
            plc.addmatches(t1, t2, P1, P2)
            sols = {"affine": plc.affine(), "similarity": plc.similarity()}
            for prior in priors:
                for lam in lams:
                    sols[label(prior, lam)] = plc.affine(regularize=lam, prior=prior)
            ref = gauge_truth(truth, True)
            for m, sol in sols.items():
                arr = gauge_truth(np.array([np.asarray(sol[i]) for i in range(64)]), True)
                d = np.einsum("nij,kj->nki", arr - ref, corners)
                errs[m].append(float(np.sqrt(np.mean(np.sum(d ** 2, axis=-1)))))
        print(f"| {name} | " + " | ".join(f"{np.mean(errs[m]):.3f}" for m in models) + " |")


def hardware() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} logical cores{mem}, Python {platform.python_version()}, NumPy {np.__version__}"


def child(size, mode, method, solver, timeout, noise=NOISE):
    """Run one case in a subprocess; its own peak RSS comes from os.wait4's rusage."""
    cmd = [sys.executable, __file__, "--case", str(size), mode, method, solver, "--noise", str(noise)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        t0 = time.monotonic()
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > timeout:
                p.kill()
                os.wait4(p.pid, 0)
                return {"size": size, "mode": mode, "method": method, "error": f"timeout after {timeout:.0f} s"}
            time.sleep(0.05)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if p.returncode != 0:
        tail = stderr.strip().splitlines()[-1:] or [f"exit code {p.returncode}"]
        return {"size": size, "mode": mode, "method": method, "error": tail[0]}
    res = json.loads(stdout.strip().splitlines()[-1])
    res["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux: kilobytes
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", nargs=4, metavar=("SIZE", "MODE", "METHOD", "SOLVER"))
    ap.add_argument("--sizes", nargs="*", type=int, default=[30, 100, 300, 1000])
    ap.add_argument("--dense-sizes", nargs="*", type=int, default=[10, 20, 30, 40])
    ap.add_argument("--solvers", nargs="*", default=["auto"])
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--noise", type=float, default=NOISE, help="match noise, px (0: noise-free)")
    ap.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    ap.add_argument("--norefine", action="store_true", help="also run each sparse case without refinement")
    ap.add_argument("--montage", action="store_true", help="the 8 x 8 regularize sweep instead")
    ap.add_argument("--priors", nargs="*", default=["similarity"], help="--montage: the priors swept")
    ap.add_argument("--lams", nargs="*", type=float, default=[1e-4, 1e-3, 1e-2, 0.1, 1.0],
                    help="--montage: the regularize weights swept")
    a = ap.parse_args()
    if a.case:
        size, mode, method, solver = a.case
        print(json.dumps(run_case(int(size), mode, method, solver, a.noise)))
        return
    if a.montage:
        montage_sweep(lams=tuple(a.lams), priors=tuple(a.priors))
        return
    cases = []
    for s in a.dense_sizes:
        for mode in ("rigid", "affine"):
            if mode in a.modes:
                cases.append((s, mode, "dense", "-"))
    for s in a.sizes:
        for mode in a.modes:
            for solver in a.solvers:
                cases.append((s, mode, "sparse", solver))
            if a.norefine:
                cases.append((s, mode, "norefine", "auto"))
    weight = {"rigid": 1, "similarity": 4, "affine": 6, "affine-reg": 10, "affine-rc": 8, "affine-rc-lens": 8}
    cases.sort(key=lambda c: (c[0] ** 2 * weight[c[1]] * (40 if c[2] == "dense" else 1)))
    print(f"Hardware: {hardware()}\n")
    print("| grid | tiles | matches | noise px | mode | method | solver | build+add s | solve s | peak RSS MB "
          "| err RMS px | max corner err px |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size, mode, method, solver in cases:
        r = child(size, mode, method, solver, a.timeout, a.noise)
        if "error" in r:
            print(f"| {size}x{size} | {size*size} | | {a.noise:g} | {mode} | {method} | {solver} | | {r['error']} "
                  f"| | | |")
        else:
            solv = r["solver"] + (f" ({r['cg_iterations']} it)" if r.get("cg_iterations") else "")
            add = r["gen_s"] + r.get("add_s", 0.0)
            print(f"| {size}x{size} | {r['tiles']} | {r['matches']} | {a.noise:g} | {mode} | {method} | {solv} | "
                  f"{add:.2f} | {r['solve_s']:.3f} | {r['peak_rss_mb']:.0f} | {r['err_rms_px']:.3g} "
                  f"| {r['corner_max_px']:.3g} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
