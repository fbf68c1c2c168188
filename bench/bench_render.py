"""Renderer benchmark: output Mpx/s and peak memory, one subprocess per case.

Cases: rigid and affine placement, 5 x 5 tiles of 2048 x 2048 (10 % overlap),
float32 and uint16, threads = 1 and 2, linear interpolation, blend = 10,
through Renderer.render_all. Each case runs in a fresh subprocess whose peak
RSS comes from os.wait4 (tracemalloc cannot see C++ allocations). Times are
medians of 3 runs after one warm-up. Also: time against output area
(rigid float32, 1 thread) and, at a small size, a spectralign-style
full-canvas NumPy renderer (float64 canvases, per-tile mask filtering) next
to ours on the same input.

    python bench/bench_render.py            # about 2-3 minutes on 2 cores
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

TILE = 2048
OVERLAP = 0.10


def make_case(kind, n, tile, dtype, seed=0):
    from spectralign_fast import Affine

    rng = np.random.default_rng(seed)
    step = int(round(tile * (1 - OVERLAP)))
    tf, imgs = {}, {}
    for r in range(n):
        for c in range(n):
            x, y = c * step + rng.uniform(-3, 3), r * step + rng.uniform(-3, 3)
            if kind == "rigid":
                tf[(r, c)] = (x, y)
            else:
                a = np.deg2rad(rng.uniform(-1, 1))
                s = rng.uniform(0.99, 1.01)
                tf[(r, c)] = Affine([[s * np.cos(a), -s * np.sin(a), x], [s * np.sin(a), s * np.cos(a), y]])
            if dtype == "float32":
                imgs[(r, c)] = rng.random((tile, tile), dtype=np.float32) * 1000
            else:
                imgs[(r, c)] = rng.integers(0, 65535, (tile, tile), dtype=np.uint16)
    return tf, imgs


def rss_now():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(spec):
    from spectralign_fast import Renderer

    kind, n, tile, dtype, threads = spec["kind"], spec["n"], spec["tile"], spec["dtype"], spec["threads"]
    tf, imgs = make_case(kind, n, tile, dtype)
    r = Renderer(**{kind: tf}, tilesize=(tile, tile), blend=10, interpolation="linear", threads=threads)
    base = rss_now()
    times = []
    incremental = spec.get("mode") == "incremental"
    for k in range(spec.get("reps", 3) + 1):
        t0 = time.perf_counter()
        if incremental:
            # spectralign's loop: one render() per tile, then the blended image.
            for t, img in imgs.items():
                r.render(t, img)
            out = r.image
        else:
            out = r.render_all(imgs)
        times.append(time.perf_counter() - t0)
        out_bytes = out.nbytes + r.coverage.nbytes
        del out
        r.clear()
    inputs = sum(a.nbytes for a in imgs.values())
    print(json.dumps(dict(times=times[1:], outpx=int(r.size[0]) * int(r.size[1]), base=base,
                          inputs=inputs, out_bytes=out_bytes)))


def spectralign_style(pos, imgs, tile, blend=10):
    """The full-canvas approach of spectralign's Renderer (rigid), re-implemented."""
    from scipy.signal import butter, filtfilt

    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    x0, y0 = min(xs), min(ys)
    W, H = int(np.ceil(max(xs) + tile - x0)), int(np.ceil(max(ys) + tile - y0))
    image = np.zeros((H, W))
    support = np.zeros((H, W))
    ramp = np.minimum(np.arange(tile) + 0.5, tile - 0.5 - np.arange(tile)) / (tile / 2)
    alpha = np.minimum(ramp[None, :], ramp[:, None])
    b, a = butter(1, 1 / blend)
    for t, img in imgs.items():
        cx, cy = int(round(pos[t][0] - x0)), int(round(pos[t][1] - y0))
        img1 = np.zeros((H, W))
        sup1 = np.zeros((H, W))
        img1[cy:cy + tile, cx:cx + tile] = img
        sup1[cy:cy + tile, cx:cx + tile] = alpha
        mask = (sup1 > support).astype(np.float64)
        mask = filtfilt(b, a, mask, axis=0)
        mask = filtfilt(b, a, mask, axis=1)
        mask[sup1 == 0] = 0
        mask[support == 0] = 1
        image = (1 - mask) * image + mask * img1
        support = np.maximum(support, sup1)
    return image


def small_compare():
    from spectralign_fast import Renderer

    n, tile = 5, 256
    pos, imgs = make_case("rigid", n, tile, "float32")
    t0 = time.perf_counter()
    ref = spectralign_style(pos, imgs, tile)
    t_ref = time.perf_counter() - t0
    r = Renderer(rigid=pos, tilesize=(tile, tile), threads=1)
    r.render_all(imgs)
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        r.render_all(imgs)
        ts.append(time.perf_counter() - t0)
    return dict(outpx=ref.size, t_ref=t_ref, t_ours=float(np.median(ts)))


def run_case(spec):
    p = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)],
                         stdout=subprocess.PIPE, text=True)
    _, status, ru = os.wait4(p.pid, 0)
    out = p.stdout.read()
    p.stdout.close()
    if status != 0:
        raise RuntimeError(f"case {spec} failed")
    res = json.loads(out.strip().splitlines()[-1])
    res["peak"] = ru.ru_maxrss * 1024  # kilobytes on Linux
    return res


def main():
    print(f"# Renderer benchmark: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} logical cores, Python {platform.python_version()}")
    print("# medians of 3 runs after a warm-up; other processes may share the cores")
    print()
    print("| call | placement | dtype | threads | canvas | output Mpx | time (s) | Mpx/s | Mpx/s/thread "
          "| inputs (MB) | output+mask (MB) | peak RSS (MB) | peak - (base + output) (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    cases = [("render_all", kind, dtype, threads) for kind in ("rigid", "affine")
             for dtype in ("float32", "uint16") for threads in (1, 2)]
    cases += [("incremental", kind, "float32", threads) for kind in ("rigid", "affine") for threads in (1, 2)]
    for mode, kind, dtype, threads in cases:
                res = run_case(dict(kind=kind, n=5, tile=TILE, dtype=dtype, threads=threads, mode=mode))
                t = float(np.median(res["times"]))
                mpx = res["outpx"] / 1e6
                side = int(round(res["outpx"] ** 0.5))
                extra = (res["peak"] - res["base"] - res["out_bytes"]) / 1e6
                print(f"| {mode} | {kind} | {dtype} | {threads} | ~{side}^2 | {mpx:.1f} | {t:.3f} | "
                      f"{mpx / t:.0f} | {mpx / t / threads:.0f} | {res['inputs'] / 1e6:.0f} | "
                      f"{res['out_bytes'] / 1e6:.0f} | {res['peak'] / 1e6:.0f} | {extra:.0f} |",
                      flush=True)
    print()
    print("Time against output area (rigid, float32, linear, 1 thread, tiles of 2048):")
    print()
    print("| grid | output Mpx | time (s) | Mpx/s |")
    print("|---|---|---|---|")
    for n in (2, 3, 5):
        res = run_case(dict(kind="rigid", n=n, tile=TILE, dtype="float32", threads=1))
        t = float(np.median(res["times"]))
        print(f"| {n}x{n} | {res['outpx'] / 1e6:.1f} | {t:.3f} | {res['outpx'] / 1e6 / t:.0f} |",
              flush=True)
    print()
    c = small_compare()
    print("Full-canvas NumPy approach (spectralign-style, float64 canvases, filtfilt masks) vs "
          "this Renderer, rigid 5x5 tiles of 256, float32, 1 thread:")
    print()
    print("| renderer | output Mpx | time (s) | Mpx/s |")
    print("|---|---|---|---|")
    print(f"| spectralign-style NumPy | {c['outpx'] / 1e6:.2f} | {c['t_ref']:.3f} | {c['outpx'] / 1e6 / c['t_ref']:.1f} |")
    print(f"| spectralign_fast | {c['outpx'] / 1e6:.2f} | {c['t_ours']:.4f} | {c['outpx'] / 1e6 / c['t_ours']:.0f} |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
    else:
        main()
