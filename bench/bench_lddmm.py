"""STalign's 2-D LDDMM next to ``spectralign_fast.stalign`` (same API), same inputs and settings.

STalign (JEFworks-Lab/STalign, torch) runs in its own venv, ours in the project's venv; each
(tool, case, dtype, threads, niter) is one subprocess that loads the inputs from an .npz written
once (so both tools see bit-identical arrays), calls the tool's ``LDDMM`` with the identical
arguments, maps points with its ``transform_points_source_to_target``, and reports its wall time
and peak RSS (VmHWM) as JSON.

Cases (coordinates are pixel centres, ``np.arange(n) * 1.0``, in (row, col) order):

* ``ihc``: target J = ``skimage.data.immunohistochemistry()`` RGB in [0, 1], 2x2-mean
  downsampled to (3, 256, 256); source I = its inverted greyscale sampled through a known map
  T (source px -> target px: zoom 1.1 and rotation 10 deg about the centre plus a smooth
  displacement of up to ~5 px), (1, 256, 256). Initial L, T from ``L_T_from_points`` on 4
  landmarks (T(p) + 1 px noise); the landmarks also go to LDDMM as pointsI/pointsJ. Accuracy:
  RMS px between the mapped source grid points and T(grid).
* ``points``: nuclei = ``peak_local_max`` (min_distance 5) on the hematoxylin channel of
  ``rgb2hed`` of the full photo; target = a second known smooth map of them, 10% dropped, 5%
  random extras; both rasterised by STalign's ``rasterize(x, y, dx=4, blur=1, draw=0)`` and
  scaled by the same constant. Accuracy: ``calculate_tre`` (mean +- std) and RMS over all
  source nuclei mapped vs truth (dropped ones included).

Timing. ``ms/it`` (median) comes from a timestamp at the start of every iteration: for STalign
its module-level ``to_A`` is wrapped (called once per iteration; the wrapper only records the
time). STalign's LDDMM draws matplotlib figures every 10 iterations (MPLBACKEND=Agg here);
the median skips those iterations. ``ms/it (diff)`` = (wall(niter) - wall(NSHORT)) / (niter -
NSHORT): setup removed, drawing included. ``--stalign-no-draw`` replaces STalign's ``plt`` by a
no-op stand-in (figures only; the optimisation is untouched). Ours reports the diff only
(ms/it median = diff) unless its result dict carries ``it_times`` (seconds per iteration).

    bash bench/install_stalign.sh /path/to/STalign   # STalign is not on PyPI; makes bench/.venv-stalign
    .venv/bin/python bench/bench_lddmm.py [--quick] [--threads 1 2] [--dtypes float64 float32]
                                          [--cases ihc points] [--niter N] [--output out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STALIGN_PY = os.path.join(HERE, ".venv-stalign", "bin", "python")
OURS_PY = os.path.join(ROOT, ".venv", "bin", "python")
sys.path.insert(0, HERE)
# Peak RSS as VmHWM; bench_register needs only the standard library and NumPy at import, so
# this loads in STalign's environment too.
from bench_register import _peak_mb  # noqa: E402
SEED = 18
NSHORT = 20  # the short run of the (wall(niter) - wall(NSHORT)) per-iteration estimate
NITER = {"ihc": 200, "points": 200}
NITER_QUICK = {"ihc": 40, "points": 40}
# LDDMM keyword arguments, identical for both tools (niter and dtype are added per run).
# Units are pixels; step sizes chosen so that STalign itself converges on these inputs.
PARAMS = {  # (RMS vs truth after 100 / 200 / 400 STalign iterations, float32, on this machine)
    "ihc": dict(a=20.0, p=2.0, expand=2.0, nt=3, diffeo_start=0, epL=2e-8, epT=2e-4, epV=0.2,   # 0.34/0.38/0.40 (1000: 0.39)
                sigmaM=0.2, sigmaB=0.2, sigmaA=0.3, sigmaR=1e3, sigmaP=20.0),
    "points": dict(a=40.0, p=2.0, expand=2.0, nt=3, diffeo_start=0, epL=2e-8, epT=1e-3, epV=20.0,  # 1.30/1.35/1.36 (300; 1000: 1.37)
                   sigmaM=0.2, sigmaB=0.2, sigmaA=0.3, sigmaR=1e3),
}


# ----------------------------------------------------------------------------- inputs
def _smooth_map(x, centre, zoom, deg, shift, amp, rng):
    """(n, 2) row/col points -> zoom*R(deg) about centre + shift + a few low-frequency sines."""
    th = np.deg2rad(deg)
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    y = (x - centre) @ (zoom * R).T + centre + shift
    n = 2 * centre
    for comp in range(2):
        for _ in range(3):
            k = rng.uniform(0.5, 1.5, 2) * 2 * np.pi / n
            ph = rng.uniform(0, 2 * np.pi, 2)
            y[:, comp] += amp / 3 * np.sin(k[0] * x[:, 0] + ph[0]) * np.cos(k[1] * x[:, 1] + ph[1])
    return y


def _api():
    """STalign's rasterize / L_T_from_points (ours when STalign is not importable here)."""
    try:
        from STalign import STalign as api
    except ImportError:
        from spectralign_fast import stalign as api
    return api


def make_inputs(case: str, path: str) -> None:
    """Write every array both tools need for ``case`` to ``path`` (.npz). Deterministic (SEED)."""
    from scipy import ndimage
    from skimage import color, data, feature
    api = _api()
    rng = np.random.default_rng(SEED)
    rgb = data.immunohistochemistry().astype(np.float64) / 255.0
    if case == "ihc":
        J = rgb.reshape(256, 2, 256, 2, 3).mean(axis=(1, 3)).transpose(2, 0, 1)
        grey = 1.0 - color.rgb2gray(J.transpose(1, 2, 0))
        n = J.shape[1]
        c = np.full(2, (n - 1) / 2.0)
        tmap = lambda x: _smooth_map(x, c, 1.1, 10.0, np.zeros(2), 5.0, np.random.default_rng(SEED))
        X = np.stack(np.meshgrid(np.arange(n) * 1.0, np.arange(n) * 1.0, indexing="ij"), -1).reshape(-1, 2)
        I = ndimage.map_coordinates(grey, tmap(X).T, order=3, mode="reflect").reshape(1, n, n)
        xI = xJ = [np.arange(n) * 1.0, np.arange(n) * 1.0]
        pointsI = np.array([[60.0, 70.0], [70.0, 190.0], [190.0, 60.0], [185.0, 180.0]])
        pointsJ = tmap(pointsI) + rng.normal(0, 1.0, pointsI.shape)
        g = np.arange(24.0, 233.0, 8.0)
        ev = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
        tr = tmap(ev)
        keep = np.all((tr >= 8) & (tr <= n - 9), axis=1)
        ev, tr = ev[keep], tr[keep]
        extra = dict(pointsI=pointsI, pointsJ=pointsJ)
    else:
        hem = color.rgb2hed(rgb)[..., 0]
        P = feature.peak_local_max(hem, min_distance=5, threshold_rel=0.1).astype(np.float64)
        c = np.full(2, (rgb.shape[0] - 1) / 2.0)
        Q = _smooth_map(P, c, 1.05, 8.0, np.array([6.0, -4.0]), 8.0, np.random.default_rng(SEED + 1))
        Qk = Q[rng.random(len(Q)) >= 0.10]
        lo, hi = Q.min(0), Q.max(0)
        Qk = np.concatenate([Qk, rng.uniform(lo, hi, (int(0.05 * len(Q)), 2))])
        XI, YI, WI = api.rasterize(P[:, 1], P[:, 0], dx=4.0, blur=1.0, draw=0)
        XJ, YJ, WJ = api.rasterize(Qk[:, 1], Qk[:, 0], dx=4.0, blur=1.0, draw=0)
        scale = float(np.max(WJ))
        I, J = np.asarray(WI) / scale, np.asarray(WJ) / scale
        xI, xJ = [np.asarray(YI), np.asarray(XI)], [np.asarray(YJ), np.asarray(XJ)]
        idx = rng.choice(len(P), 4, replace=False)
        pointsI, pointsJ = P[idx], Q[idx] + rng.normal(0, 1.0, (4, 2))
        ev, tr = P, Q
        extra = {}
    L, T = api.L_T_from_points(pointsI, pointsJ)
    np.savez(path, xI0=xI[0], xI1=xI[1], I=I, xJ0=xJ[0], xJ1=xJ[1], J=J, L=np.asarray(L),
             T=np.asarray(T), lmI=pointsI, lmJ=pointsJ, eval_points=ev, eval_truth=tr, **extra)


# ----------------------------------------------------------------------------- worker
class _Null:
    """Absorbs every figure/axes call (for --stalign-no-draw)."""
    def __getattr__(self, name): return self
    def __call__(self, *a, **k): return self
    def __getitem__(self, k): return self


def worker(args) -> dict:
    """Run one LDDMM in this interpreter; return the measurements."""
    d = np.load(args.inputs)
    xI, xJ = [d["xI0"], d["xI1"]], [d["xJ0"], d["xJ1"]]
    kw = dict(PARAMS[args.case], L=d["L"], T=d["T"], niter=args.niter)
    if "pointsI" in d:
        kw.update(pointsI=d["pointsI"], pointsJ=d["pointsJ"])
    stamps: list = []
    if args.tool == "defaults":
        return _worker_defaults(args, d, xI, xJ)
    if args.tool == "stalign":
        import torch
        from STalign import STalign as ST
        torch.set_num_threads(args.threads)
        dtype = getattr(torch, args.dtype)
        kw["dtype"] = dtype
        orig_to_A = ST.to_A
        def to_A(L, T):  # noqa: E306 -- timestamp only, same result
            stamps.append(time.perf_counter())
            return orig_to_A(L, T)
        ST.to_A = to_A
        if args.no_draw:
            ST.plt = type("plt", (), {"subplots": staticmethod(lambda *a, **k: (_Null(), _Null()))})
        to_points = lambda p: torch.tensor(p, dtype=dtype)  # STalign needs v's dtype here
        version = torch.__version__
    else:
        from spectralign_fast import stalign as ST
        kw.update(dtype=args.dtype, threads=args.threads)  # threads: keyword-only addition of ours
        to_points = lambda p: p
        import spectralign_fast
        version = spectralign_fast.__version__
    t0 = time.perf_counter()
    out = ST.LDDMM(xI, d["I"], xJ, d["J"], **kw)
    wall = time.perf_counter() - t0
    stamps.append(t0 + wall)
    mapped = ST.transform_points_source_to_target(out["xv"], out["v"], out["A"], to_points(d["eval_points"]))
    mapped = np.asarray(mapped.detach().cpu() if hasattr(mapped, "detach") else mapped, dtype=np.float64)
    err = np.sqrt(np.sum((mapped - d["eval_truth"]) ** 2, axis=1))
    if args.tool == "ours" and "it_times" in out:
        per_it = [float(t) for t in np.asarray(out["it_times"])]
    else:
        per_it = list(np.diff(stamps)) if len(stamps) > 2 else []
    A = np.asarray(out["A"].detach().cpu() if hasattr(out["A"], "detach") else out["A"], dtype=np.float64)
    return {"tool": args.tool, "case": args.case, "dtype": args.dtype, "threads": args.threads,
            "niter": args.niter, "wall_s": wall, "it_ms_median": 1e3 * statistics.median(per_it) if per_it else None,
            "peak_mb": _peak_mb(), "rms_px": float(np.sqrt(np.mean(err ** 2))), "tre_mean": float(err.mean()),
            "tre_std": float(err.std()), "A": A.tolist(), "version": version, "no_draw": bool(args.no_draw),
            "finite": bool(np.all(np.isfinite(mapped)))}


def _worker_defaults(args, d, xI, xJ) -> dict:
    """Our own front end (register.LDDMM) with its defaults, from the same landmark affine:
    iterations until its stopping rule, wall time, accuracy."""
    import spectralign_fast
    from spectralign_fast import stalign as ST
    from spectralign_fast.register import LDDMM
    pts = dict(points_I=d["pointsI"], points_J=d["pointsJ"]) if "pointsI" in d else {}
    t0 = time.perf_counter()
    res = LDDMM(threads=args.threads).fit(xI, d["I"], xJ, d["J"], A=ST.to_A(d["L"], d["T"]), **pts)
    wall = time.perf_counter() - t0
    mapped = res.transform_points(d["eval_points"])
    err = np.sqrt(np.sum((mapped - d["eval_truth"]) ** 2, axis=1))
    return {"tool": "defaults", "case": args.case, "dtype": "float64", "threads": args.threads,
            "niter": int(res.iterations), "converged": bool(res.converged), "wall_s": wall,
            "it_ms_median": 1e3 * wall / max(res.iterations, 1), "peak_mb": _peak_mb(),
            "rms_px": float(np.sqrt(np.mean(err ** 2))), "tre_mean": float(err.mean()),
            "tre_std": float(err.std()), "A": res.A.tolist(), "version": spectralign_fast.__version__,
            "no_draw": False, "finite": bool(np.all(np.isfinite(mapped)))}


def initial_error(path: str) -> float:
    """RMS px of the landmark affine alone (the starting point of both tools)."""
    d = np.load(path)
    m = d["eval_points"] @ np.asarray(d["L"]).T + d["T"]
    return float(np.sqrt(np.mean(np.sum((m - d["eval_truth"]) ** 2, axis=1))))


# ----------------------------------------------------------------------------- driver
def launch(py: str, tool: str, case: str, inputs: str, dtype: str, threads: int, niter: int,
           no_draw: bool, timeout: float) -> dict:
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS="1")
    cmd = [py, os.path.abspath(__file__), "--worker", tool, "--case", case, "--inputs", inputs,
           "--dtypes", dtype, "--threads", str(threads), "--niter", str(niter)] + (["--stalign-no-draw"] if no_draw else [])
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"failed": f"timeout after {timeout:.0f} s"}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            r["warnings"] = sorted({l.strip()[:160] for l in p.stderr.splitlines() if "Warning" in l})
            return r
    tail = [l for l in (p.stderr or p.stdout).strip().splitlines() if l.strip()][-3:]
    return {"failed": " / ".join(tail)[-300:]}


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    vers = {"numpy": np.__version__}
    if os.path.exists(STALIGN_PY):
        q = subprocess.run([STALIGN_PY, "-c", "import torch, numpy; print(torch.__version__, numpy.__version__)"],
                           capture_output=True, text=True)
        if q.returncode == 0 and q.stdout.split():
            vers["torch"], vers["numpy (STalign venv)"] = q.stdout.split()[:2]
    return f"CPU: {cpu}, {os.cpu_count()} cores; " + ", ".join(f"{k} {v}" for k, v in vers.items())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs (niter 40, 1 thread, float32)")
    ap.add_argument("--threads", type=int, nargs="+", default=None)
    ap.add_argument("--dtypes", nargs="+", default=None, choices=["float64", "float32"])
    ap.add_argument("--cases", nargs="+", default=["ihc", "points"], choices=list(PARAMS))
    ap.add_argument("--tools", nargs="+", default=["stalign", "ours", "defaults"],
                    choices=["stalign", "ours", "defaults"],
                    help="defaults: our register.LDDMM with its own defaults and stopping rule")
    ap.add_argument("--niter", type=int, default=None, help="iterations of the main run (default per case)")
    ap.add_argument("--stalign-no-draw", dest="no_draw", action="store_true",
                    help="replace STalign's plt by a no-op stand-in (figures only)")
    ap.add_argument("--output", default=None, help="write all results as JSON here")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--stalign-python", default=STALIGN_PY)
    ap.add_argument("--ours-python", default=OURS_PY if os.path.exists(OURS_PY) else sys.executable)
    ap.add_argument("--worker", choices=["stalign", "ours", "defaults"], help=argparse.SUPPRESS)
    ap.add_argument("--stalign-worker", dest="worker", action="store_const", const="stalign", help=argparse.SUPPRESS)
    ap.add_argument("--make-inputs", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--inputs", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.make_inputs:  # (in the STalign venv when there is one: STalign's rasterize)
        for case in args.cases:
            make_inputs(case, os.path.join(args.make_inputs, case + ".npz"))
        return 0
    if args.worker:
        args.tool, args.dtype, args.threads = args.worker, args.dtypes[0], args.threads[0]
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return 0

    threads = args.threads or ([1] if args.quick else [1, 2])
    dtypes = args.dtypes or (["float32"] if args.quick else ["float64", "float32"])
    print(hardware())
    print(f"MPLBACKEND=Agg; STalign draws every 10 iterations{' (no-op plt)' if args.no_draw else ''}; "
          f"ms/it = median over iterations (STalign: draw iterations are the outliers), "
          f"diff = (wall(niter) - wall({NSHORT})) / (niter - {NSHORT}), drawing included.\n")
    have_stalign = os.path.exists(args.stalign_python)
    probe = subprocess.run([args.ours_python, "-c", "from spectralign_fast import stalign"], capture_output=True)
    tools = [t for t in args.tools if (t == "stalign" and have_stalign) or (t != "stalign" and probe.returncode == 0)]
    if "ours" in args.tools and "ours" not in tools:
        print("ours: not available yet (spectralign_fast.stalign does not import)")
    if "stalign" in args.tools and not have_stalign:
        print(f"STalign: no venv at {args.stalign_python} (run bench/install_stalign.sh)")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        gen = [args.stalign_python if have_stalign else args.ours_python, os.path.abspath(__file__),
               "--make-inputs", tmp, "--cases", *args.cases]
        subprocess.run(gen, check=True, env=dict(os.environ, MPLBACKEND="Agg"))
        rows = []
        for case in args.cases:
            inputs = os.path.join(tmp, case + ".npz")
            niter = args.niter or (NITER_QUICK if args.quick else NITER)[case]
            e0 = initial_error(inputs)
            print(f"{case}: {json.dumps(PARAMS[case])}, niter {niter}; landmark affine alone: RMS {e0:.2f} px")
            for dtype in dtypes:
                for th in threads:
                    for tool in tools:
                        if tool == "defaults" and dtype != dtypes[0]:
                            continue  # float64 only; its iteration count is its own
                        py = args.stalign_python if tool == "stalign" else args.ours_python
                        r = launch(py, tool, case, inputs, dtype, th, niter, args.no_draw, args.timeout)
                        s = launch(py, tool, case, inputs, dtype, th, NSHORT, args.no_draw, args.timeout) \
                            if niter > NSHORT and "failed" not in r and tool != "defaults" else {}
                        r.update(tool=tool, case=case, threads=th, initial_rms_px=e0)
                        if tool != "defaults":
                            r.update(dtype=dtype, niter=niter)
                        if "wall_s" in s:
                            r["short_wall_s"] = s["wall_s"]
                            r["it_ms_diff"] = 1e3 * (r["wall_s"] - s["wall_s"]) / (niter - NSHORT)
                        results.append(r)
                        rows.append(r)
    print("\n| case | tool | dtype | thr | iters | ms/it (median) | ms/it (diff) | total s | peak MB | RMS px | TRE mean +- std |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    f = lambda v, fmt: "-" if v is None else format(v, fmt)
    for r in rows:
        if "failed" in r:
            print(f"| {r['case']} | {r['tool']} | {r['dtype']} | {r['threads']} | failed: {r['failed']} |||||||")
            continue
        med = r["it_ms_median"] if r["it_ms_median"] is not None else r.get("it_ms_diff")
        print(f"| {r['case']} | {r['tool']} | {r['dtype']} | {r['threads']} | {r['niter']} | {f(med, '.1f')} | "
              f"{f(r.get('it_ms_diff'), '.1f')} | {r['wall_s']:.2f} | {r['peak_mb']:.0f} | {r['rms_px']:.3f} | "
              f"{r['tre_mean']:.3f} +- {r['tre_std']:.3f} |")
    warns = sorted({w for r in rows for w in r.get("warnings", [])})
    if warns:
        print("\nwarnings seen:\n  " + "\n  ".join(warns))
    if args.output:
        with open(args.output, "w") as fh:
            json.dump({"hardware": hardware(), "params": PARAMS, "nshort": NSHORT, "results": results}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
