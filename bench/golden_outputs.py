"""Bit-exactness check for speed work on the Renderer and the warp core.

    python bench/golden_outputs.py save DIR     # with the build before a change
    python bench/golden_outputs.py compare DIR  # with the build after it

Renders montages (rigid and affine placements, every pixel type,
interpolation and blend mode, render_all / render / render_region, 1 and 2
threads) and warps (2-D and 3-D, every order and mode, affine and field),
saves them as .npy, and reports the largest difference per case against the
saved set. Not a test: speed work is checked with it by hand.
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spectralign_fast as sf  # noqa: E402
from bench_render import make_case  # noqa: E402
from bench_warp import rotation2, rotation3  # noqa: E402


def cases():
    for kind in ("rigid", "affine"):
        for dtype in ("float32", "uint16"):
            tf, imgs = make_case(kind, 3, 300, dtype, seed=3)
            if dtype == "uint16":
                imgs8 = {k: (v >> 8).astype(np.uint8) for k, v in imgs.items()}
            for interp in ("nearest", "linear", "cubic"):
                for blend in (0, 10, 37.5):
                    for th in (1, 2):
                        r = sf.Renderer(**{kind: tf}, tilesize=(300, 300), blend=blend,
                                        interpolation=interp, threads=th)
                        tag = f"render_{kind}_{dtype}_{interp}_b{blend}_t{th}"
                        yield tag, r.render_all(imgs)
                        yield tag + "_cov", np.asarray(r.coverage)
                        if dtype == "uint16" and th == 1:
                            r.clear()
                            yield tag + "_u8", r.render_all(imgs8)
                        if th == 1:
                            r.clear()
                            for k, v in imgs.items():
                                r.render(k, v)
                            yield tag + "_incr", r.image
                            x0, y0 = r.origin
                            yield tag + "_region", r.render_region((x0 + 101.5, y0 + 77.25, 333, 211), imgs)
    # The bench's full-size affine case (5 x 5 x 2048^2, float32), 1 and 2 threads.
    tf, imgs = make_case("affine", 5, 2048, "float32")
    for th in (1, 2):
        r = sf.Renderer(affine=tf, tilesize=(2048, 2048), blend=10, interpolation="linear", threads=th)
        yield f"bench_affine_5x5_t{th}", r.render_all(imgs)
    rng = np.random.default_rng(5)
    img = rng.random((517, 433), dtype=np.float32) * 100
    M2 = rotation2(3.0, (258, 216), (0.37, -0.21))
    vol = rng.random((61, 70, 83), dtype=np.float32) * 100
    M3 = rotation3(3.0, (30, 35, 41), (0.31, -0.17, 0.23))
    for order in (0, 1, 3):
        for mode in ("constant", "nearest"):
            for th in (1, 2):
                yield f"warp2_o{order}_{mode}_t{th}", sf.warp(img, M2, order=order, mode=mode, threads=th)
                yield f"warp3_o{order}_{mode}_t{th}", sf.warp(vol, M3, order=order, mode=mode, threads=th)
                for dt in (np.uint8, np.uint16):
                    v = vol.astype(dt)
                    yield f"warp3_o{order}_{mode}_{np.dtype(dt).name}_t{th}", sf.warp(v, M3, order=order, mode=mode, threads=th)
    S = np.diag([1.3, 0.8, 1.1, 1.0])
    S[:3, 3] = (-3.2, 4.1, 0.7)
    yield "warp3_scale_shift", sf.warp(vol, S, order=1, output_shape=(70, 64, 90))
    T = np.eye(4)
    T[:3, 3] = (0.25, -0.5, 1.75)
    yield "warp3_shift", sf.warp(vol, T, order=1)
    big = rng.random((256, 256, 256), dtype=np.float32)
    M = rotation3(3.0, (127.5,) * 3, (0.31, -0.17, 0.23))
    yield "warp3_256_t1", sf.warp(big, M, order=1, threads=1)
    yield "warp3_256_t2", sf.warp(big, M, order=1, threads=2)
    field = rng.normal(0, 2, (61, 70, 83, 3)).astype(np.float32)
    yield "warp3_field", sf.warp(vol, field, order=1)


def main():
    what, folder = sys.argv[1], sys.argv[2]
    os.makedirs(folder, exist_ok=True)
    worst = 0.0
    n = 0
    for tag, arr in cases():
        arr = np.asarray(arr)
        path = os.path.join(folder, tag + ".npy")
        if what == "save":
            np.save(path, arr)
        else:
            ref = np.load(path)
            if ref.shape != arr.shape or ref.dtype != arr.dtype:
                print(f"{tag}: shape/dtype {arr.shape} {arr.dtype} vs {ref.shape} {ref.dtype}")
                worst = np.inf
                continue
            same = np.array_equal(ref, arr, equal_nan=arr.dtype.kind == "f")
            if not same:
                d = np.abs(ref.astype(np.float64) - arr.astype(np.float64))
                print(f"{tag}: {np.count_nonzero(d)} pixels differ, max {np.nanmax(d):.6g}")
                worst = max(worst, float(np.nanmax(d)))
        n += 1
    print(f"{n} arrays {'saved' if what == 'save' else 'compared'}; "
          + ("" if what == "save" else f"largest difference {worst}"))


if __name__ == "__main__":
    main()
