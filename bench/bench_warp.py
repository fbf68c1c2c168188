"""Warp core benchmark: spectralign_fast.warp next to OpenCV, SimpleITK and
scipy.ndimage on the same jobs, in one run.

Every row times one job for each contender, round robin (one call of each
per repeat, so load from other processes hits all of them alike), and
reports medians. Before timing, each contender's output is compared with
ours in the interior, so the table compares the same job. Ratios are the
peer's time over ours (> 1: we are faster).

    pip install -e '.[bench]'   # opencv-python-headless, SimpleITK, scipy
    python bench/bench_warp.py [--quick] [--out table.md] [--renderer-only]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import scipy.ndimage as ndi

import spectralign_fast as sf


def rotation2(deg, centre, shift):
    a = np.deg2rad(deg)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    c = np.asarray(centre, float)
    M = np.eye(3)
    M[:2, :2] = R
    M[:2, 2] = c - R @ c + shift
    return M


def rotation3(deg, centre, shift):
    """A small rotation about the axis (1, 1, 1)/sqrt(3), about `centre`."""
    a = np.deg2rad(deg)
    k = np.ones(3) / np.sqrt(3)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    R = np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K
    c = np.asarray(centre, float)
    M = np.eye(4)
    M[:3, :3] = R
    M[:3, 3] = c - R @ c + shift
    return M


def cv2_matrix(M):
    """Our (row, col) output->input matrix as OpenCV's (x, y) one, for WARP_INVERSE_MAP."""
    return np.array([[M[1, 1], M[1, 0], M[1, 2]], [M[0, 1], M[0, 0], M[0, 2]]])


def sitk_resample(vol, M, interp, threads):
    import SimpleITK as sitk

    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(threads)
    img = sitk.GetImageFromArray(vol)  # ITK index (x, y, z): our axes reversed
    t = sitk.AffineTransform(3)
    P = np.eye(3)[::-1]
    t.SetMatrix((P @ M[:3, :3] @ P).ravel().tolist())
    t.SetTranslation((P @ M[:3, 3]).tolist())
    return lambda: sitk.Resample(img, img, t, interp, 0.0)


def timeit(fns, repeats):
    """Round-robin medians (seconds) of the callables, after one warm-up each."""
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}, times


def check(name, ours, theirs, interior, rel):
    a, b = ours[interior], np.asarray(theirs)[interior].astype(np.float64)
    scale = max(np.ptp(a), 1e-9)
    err = np.max(np.abs(a - b)) / scale
    if err > rel:
        raise AssertionError(f"{name}: differs from ours by {err:.2e} of the range in the interior")
    return err


ROWS = []


def row(job, contenders, t, size):
    ours = t["ours"]
    cells = []
    for k in contenders:
        ratio = t[k] / ours
        cells.append(f"{k} {t[k] * 1e3:.1f} ms ({ratio:.2f}x)")
    line = f"| {job} | {ours * 1e3:.1f} ms ({size / ours / 1e6:.0f} Mpx/s) | " + "; ".join(cells) + " |"
    ROWS.append(line)
    print(line, flush=True)


def bench_2d(n, repeats):
    import cv2

    rng = np.random.default_rng(0)
    from skimage import data
    cam = data.camera().astype(np.float32)
    img = np.tile(cam, (n // 512, n // 512)) + rng.random((n, n), dtype=np.float32)
    M = rotation2(3.0, ((n - 1) / 2, (n - 1) / 2), (0.37, -0.21))
    A = cv2_matrix(M)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    inner = np.s_[64:-64, 64:-64]
    ours = sf.warp(img, M, threads=1)
    check("cv2.warpAffine", ours, cv2.warpAffine(img, A, (n, n), flags=flags), inner, 1e-2)
    check("scipy", ours, ndi.affine_transform(img, M, order=1), inner, 1e-5)
    for th in (1, 2):
        cv2.setNumThreads(th)
        fns = {"ours": lambda: sf.warp(img, M, threads=th),
               "cv2": lambda: cv2.warpAffine(img, A, (n, n), flags=flags)}
        t, _ = timeit(fns, repeats)
        row(f"2-D {n}² f32 linear, 3° + subpixel shift, {th} thread(s)", ["cv2"], t, n * n)
    t, _ = timeit({"ours": lambda: sf.warp(img, M, threads=1),
                   "scipy": lambda: ndi.affine_transform(img, M, order=1)}, max(3, repeats // 3))
    row(f"2-D {n}² f32 linear, 1 thread", ["scipy"], t, n * n)
    for dt in (np.uint8, np.uint16):
        im = np.clip(img * (1 if dt == np.uint8 else 257), 0, np.iinfo(dt).max).astype(dt)
        cv2.setNumThreads(1)
        fns = {"ours": lambda: sf.warp(im, M, threads=1),
               "cv2": lambda: cv2.warpAffine(im, A, (n, n), flags=flags)}
        t, _ = timeit(fns, repeats)
        row(f"2-D {n}² {np.dtype(dt).name} linear, 1 thread", ["cv2"], t, n * n)
    # Displacement field (smooth, up to ~5 px) vs map_coordinates.
    field = ndi.gaussian_filter(rng.normal(0, 60, (n // 4, n // 4, 2)), (8, 8, 0))
    field = ndi.zoom(field, (4, 4, 1), order=1).astype(np.float32)
    coords = np.indices((n, n), dtype=np.float64) + np.moveaxis(field, -1, 0)
    ours = sf.warp(img, field, threads=1)
    check("map_coordinates", ours, ndi.map_coordinates(img, coords, order=1), inner, 1e-5)
    cv2.setNumThreads(1)
    mx = (np.arange(n, dtype=np.float32)[None, :] + field[..., 1]).astype(np.float32)
    my = (np.arange(n, dtype=np.float32)[:, None] + field[..., 0]).astype(np.float32)
    check("cv2.remap", ours, cv2.remap(img, mx, my, cv2.INTER_LINEAR), inner, 1e-2)
    t, _ = timeit({"ours": lambda: sf.warp(img, field, threads=1),
                   "cv2.remap": lambda: cv2.remap(img, mx, my, cv2.INTER_LINEAR),
                   "scipy": lambda: ndi.map_coordinates(img, coords, order=1)}, max(3, repeats // 3))
    row(f"2-D {n}² f32 field, linear, 1 thread", ["cv2.remap", "scipy"], t, n * n)


def bench_3d(n, repeats, field_n):
    import SimpleITK as sitk

    rng = np.random.default_rng(1)
    from skimage import data
    cam = data.camera().astype(np.float32)
    vol = np.stack([np.roll(cam[:n, :n], 2 * k, axis=1) for k in range(n)])
    vol += rng.random(vol.shape, dtype=np.float32)
    M = rotation3(3.0, ((n - 1) / 2,) * 3, (0.31, -0.17, 0.23))
    inner = np.s_[16:-16, 16:-16, 16:-16]
    slow = max(2, repeats // 4)
    kinds = {0: sitk.sitkNearestNeighbor, 1: sitk.sitkLinear, 3: sitk.sitkBSpline}
    for order in (1, 0, 3):
        ours = sf.warp(vol, M, order=order, threads=1)
        ref = ndi.affine_transform(vol, M, order=order)
        check("scipy", ours, ref, inner, 1e-5 if order else 0)
        fns = {"ours": lambda: sf.warp(vol, M, order=order, threads=1),
               "scipy": lambda: ndi.affine_transform(vol, M, order=order)}
        if order != 3:  # ITK's B-spline differs (its own boundary rule); not the same job
            check("SimpleITK", ours, sitk.GetArrayFromImage(sitk_resample(vol, M, kinds[order], 1)()), inner, 1e-4 if order else 1e-3)
        t, _ = timeit(fns, slow)
        row(f"3-D {n}³ f32 order {order}, 1 thread", ["scipy"], t, n ** 3)
    for th in (1, 2):
        fns = {"ours": lambda: sf.warp(vol, M, threads=th),
               "SimpleITK": sitk_resample(vol, M, sitk.sitkLinear, th)}
        t, _ = timeit(fns, repeats)
        row(f"3-D {n}³ f32 linear, {th} thread(s)", ["SimpleITK"], t, n ** 3)
    for dt in (np.uint8, np.uint16):
        v = np.clip(vol * (1 if dt == np.uint8 else 257), 0, np.iinfo(dt).max).astype(dt)
        fns = {"ours": lambda: sf.warp(v, M, threads=1),
               "SimpleITK": sitk_resample(v, M, sitk.sitkLinear, 1)}
        t, _ = timeit(fns, repeats)
        row(f"3-D {n}³ {np.dtype(dt).name} linear, 1 thread", ["SimpleITK"], t, n ** 3)
    m = field_n
    sub = vol[:m, :m, :m].copy()
    field = ndi.zoom(ndi.gaussian_filter(rng.normal(0, 30, (m // 4,) * 3 + (3,)), (3, 3, 3, 0)),
                     (4, 4, 4, 1), order=1).astype(np.float32)
    coords = np.indices(sub.shape, dtype=np.float64) + np.moveaxis(field, -1, 0)
    ours = sf.warp(sub, field, threads=1)
    check("map_coordinates", ours, ndi.map_coordinates(sub, coords, order=1), np.s_[8:-8, 8:-8, 8:-8], 1e-5)
    t, _ = timeit({"ours": lambda: sf.warp(sub, field, threads=1),
                   "scipy": lambda: ndi.map_coordinates(sub, coords, order=1)}, slow)
    row(f"3-D {m}³ f32 field, linear, 1 thread", ["scipy"], t, m ** 3)


def bench_renderer(repeats):
    """Renderer.render_all on bench_render.py's affine 5 x 5 grid (2048² float32 tiles),
    per output pixel, next to warp's 2-D rotation on one 2048² image (both 1 thread)."""
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_render import make_case

    tf, imgs = make_case("affine", 5, 2048, "float32")
    r = sf.Renderer(affine=tf, tilesize=(2048, 2048), blend=10, interpolation="linear", threads=1)
    outpx = int(r.size[0]) * int(r.size[1])
    n = 2048
    img = next(iter(imgs.values()))
    M = rotation2(3.0, ((n - 1) / 2, (n - 1) / 2), (0.37, -0.21))

    def render():
        r.render_all(imgs)
        r.clear()

    # Wall time (the target's measure) and, alongside, the process's CPU time, which
    # a shared, loaded host disturbs far less (both jobs run on one thread).
    fns = {"ours": lambda: sf.warp(img, M, threads=1), "render": render}
    for f in fns.values():
        f()
    wall, cpu = {k: [] for k in fns}, {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            f()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    t = {k: statistics.median(v) for k, v in wall.items()}
    c = {k: statistics.median(v) for k, v in cpu.items()}
    warp_rate, render_rate = n * n / t["ours"], outpx / t["render"]
    cpu_ratio = (outpx / c["render"]) / (n * n / c["ours"])
    line = (f"| Renderer.render_all, affine 5 x 5 x 2048² f32 (bench_render), 1 thread | "
            f"warp {warp_rate / 1e6:.0f} Mpx/s | render_all {render_rate / 1e6:.0f} Mpx/s of output "
            f"({t['render']:.2f} s for {outpx / 1e6:.0f} Mpx), {render_rate / warp_rate:.2f}x warp's rate "
            f"(CPU time: warp {c['ours'] * 1e3:.1f} ms, render_all {c['render'] * 1e3:.0f} ms, "
            f"{cpu_ratio:.2f}x) |")
    ROWS.append(line)
    print(line, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    ap.add_argument("--out", help="also write the markdown table here")
    ap.add_argument("--renderer-only", action="store_true", help="only the last row (render_all vs warp)")
    args = ap.parse_args()
    import cv2
    import scipy
    import SimpleITK as sitk

    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    head = (f"{cpu}, {os.cpu_count()} logical cores, Python {platform.python_version()}, "
            f"OpenCV {cv2.__version__}, SimpleITK {sitk.Version.VersionString()}, "
            f"scipy {scipy.__version__}; medians of round-robin repeats")
    print("#", head)
    ROWS.extend(["| job | ours | peers (time, peer/ours) |", "|---|---|---|"])
    n2, n3, nf, reps = (1024, 128, 64, 5) if args.quick else (2048, 256, 128, 9)
    if not args.renderer_only:
        bench_2d(n2, reps)
        bench_3d(n3, reps, nf)
    bench_renderer(3 if args.quick else 5)
    if args.out:
        with open(args.out, "w") as f:
            f.write(head + "\n\n" + "\n".join(ROWS) + "\n")


if __name__ == "__main__":
    main()
