"""Benchmark of Placement on synthetic tile grids (issue 3).

Each grid has R x C tiles of 1000 x 1000 px on a 900 px pitch, 8 matches per
neighbour edge (in the 100 px overlap) and 0.2 px Gaussian noise on the
matched points. Every case runs in its own subprocess so that the peak
resident memory (ru_maxrss of the child) covers the C++ allocations too.

    python bench/bench_place.py                 # the full table (Markdown)
    python bench/bench_place.py --sizes 30 100  # a subset
    python bench/bench_place.py --case 300 affine sparse auto   # one case, JSON
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

TILE = 1000.0
PITCH = 900.0
PER_EDGE = 8
NOISE = 0.2


def make_grid(rows: int, cols: int, *, affine: bool, noise: float = NOISE, per_edge: int = PER_EDGE,
              seed: int = 0):
    """Vectorised synthetic grid: (truth (N,2,3), t1, t2, P1, P2) with integer tile ids."""
    rng = np.random.default_rng(seed)
    n = rows * cols
    ids = np.arange(n, dtype=np.int64).reshape(rows, cols)
    truth = np.zeros((n, 2, 3))
    truth[:, 0, 0] = truth[:, 1, 1] = 1.0
    if affine:
        truth[:, :, :2] += rng.normal(0.0, 2e-3, (n, 2, 2))
    truth[:, 0, 2] = (ids % cols).ravel() * PITCH + rng.normal(0.0, 5.0, n)
    truth[:, 1, 2] = (ids // cols).ravel() * PITCH + rng.normal(0.0, 5.0, n)
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
    along = rng.uniform(50.0, TILE - 50.0, m)
    across = rng.uniform(PITCH + 10.0, TILE - 10.0, m)
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


def run_case(size: int, mode: str, method: str, solver: str) -> dict:
    affine = mode == "affine"
    t0 = time.perf_counter()
    truth, t1, t2, P1, P2 = make_grid(size, size, affine=affine)
    t_gen = time.perf_counter() - t0
    n = size * size
    out = {"size": size, "tiles": n, "matches": len(t1), "mode": mode, "method": method, "gen_s": t_gen}
    if method == "dense":
        t0 = time.perf_counter()
        sol = dense_solve(t1, t2, P1, P2, n, affine)
        out["solve_s"] = time.perf_counter() - t0
        out["solver"] = "numpy dense"
    else:
        import spectralign_fast as sf

        t0 = time.perf_counter()
        plc = sf.Placement()
        plc.addmatches(t1, t2, P1, P2)
        out["add_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = plc.affine(solver=solver) if affine else plc.rigid(solver=solver)
        out["solve_s"] = time.perf_counter() - t0  # includes building the result dict
        info = plc.solve_info
        out.update(solver=info["solver"], unknowns=info["unknowns"], cg_iterations=info["cg_iterations"],
                   cpp=info["timings"])
        sol = np.array([res[i] for i in range(n)]) if n <= 10000 else plc._result["params"]
        r = plc.residuals()
        out["resid_rms"] = r.rms
    ref = gauge_truth(truth, affine)
    if affine:
        # position error of the tile centres vs. the (gauged) truth
        c = np.array([TILE / 2, TILE / 2, 1.0])
        err = np.einsum("nij,j->ni", sol - ref, c)
    else:
        err = sol - ref
    out["err_rms_px"] = float(np.sqrt(np.mean(np.sum(err ** 2, axis=1))))
    return out


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


def child(size, mode, method, solver, timeout):
    """Run one case in a subprocess; its own peak RSS comes from os.wait4's rusage."""
    cmd = [sys.executable, __file__, "--case", str(size), mode, method, solver]
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
    a = ap.parse_args()
    if a.case:
        size, mode, method, solver = a.case
        print(json.dumps(run_case(int(size), mode, method, solver)))
        return
    cases = []
    for s in a.dense_sizes:
        for mode in ("rigid", "affine"):
            cases.append((s, mode, "dense", "-"))
    for s in a.sizes:
        for mode in ("rigid", "affine"):
            for solver in a.solvers:
                cases.append((s, mode, "sparse", solver))
    cases.sort(key=lambda c: (c[0] ** 2 * (6 if c[1] == "affine" else 1) * (40 if c[2] == "dense" else 1)))
    print(f"Hardware: {hardware()}\n")
    print("| grid | tiles | matches | mode | method | solver | build+add s | solve s | peak RSS MB "
          "| err RMS px |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size, mode, method, solver in cases:
        r = child(size, mode, method, solver, a.timeout)
        if "error" in r:
            print(f"| {size}x{size} | {size*size} | | {mode} | {method} | {solver} | | {r['error']} | | |")
        else:
            solv = r["solver"] + (f" ({r['cg_iterations']} it)" if r.get("cg_iterations") else "")
            add = r["gen_s"] + r.get("add_s", 0.0)
            print(f"| {size}x{size} | {r['tiles']} | {r['matches']} | {mode} | {method} | {solv} | "
                  f"{add:.2f} | {r['solve_s']:.3f} | {r['peak_rss_mb']:.0f} | {r['err_rms_px']:.3f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
