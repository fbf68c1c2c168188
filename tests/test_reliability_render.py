"""Rendering reliability (Reliability issue, finding 8 and "smaller things"): blending without
float32 overflow, OME-Zarr chunks bit for bit the canvas, Ctrl-C during long core calls."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import spectralign_fast as sf
from spectralign_fast.io import read_ome_zarr
from spectralign_fast.synthetic import grid_tiles, photograph

BIG = np.float32(2e38)
FMAX = np.finfo(np.float32).max


def _pair(a: np.float32, b: np.float32, blend: float = 10):
    """Two 64 x 64 float32 tiles of constant values a and b, overlapping by 32 columns."""
    tiles = {"a": np.full((64, 64), a, np.float32), "b": np.full((64, 64), b, np.float32)}
    r = sf.Renderer(rigid={"a": (0, 0), "b": (32, 0)}, tilesize=(64, 64), blend=blend)
    return r, tiles


def _all_ways(r, tiles):
    """render_all, render_region (whole canvas and a part), incremental render()."""
    out = {"render_all": r.render_all(tiles).copy()}
    x0, y0, w, h = r.rect
    out["render_region"] = r.render_region((x0, y0, w, h), tiles)
    out["render_region part"] = r.render_region((x0 + 20, y0 + 3, 40, 50), tiles)
    r.clear()
    for t, img in tiles.items():
        r.render(t, img)
    out["render"] = r.image
    return out


@pytest.mark.parametrize("a, b", [(BIG, BIG), (-BIG, -BIG), (FMAX, FMAX), (-FMAX, -FMAX), (FMAX, -FMAX),
                                  (BIG, -BIG)])
@pytest.mark.parametrize("blend", [10, 0])
def test_blending_huge_values_stays_finite(a, b, blend):
    r, tiles = _pair(a, b, blend)
    lo, hi = float(min(a, b)), float(max(a, b))
    for how, img in _all_ways(r, tiles).items():
        assert np.isfinite(img).all(), how
        # A weighted mean (to float32 rounding), or one of the values.
        assert float(img.min()) >= lo - abs(lo) * 1e-6 and float(img.max()) <= hi + abs(hi) * 1e-6, how
        if a == b:
            np.testing.assert_allclose(img, a, rtol=1e-6, err_msg=how)
        if blend == 0:
            assert set(np.unique(img)) <= {a, b}, how


def test_montage_of_huge_tiles_is_finite(placed, tmp_path):
    res, tiles = placed
    top = max(float(v.max()) for v in tiles.values())
    big = {t: (v.astype(np.float64) / top * float(BIG)).astype(np.float32) for t, v in tiles.items()}
    img = res.write(tmp_path / "m.tif", big)
    from tifffile import imread

    out = imread(img)
    assert out.dtype == np.float32 and np.isfinite(out).all() and out.max() > 1e38


def test_double_accumulation_changes_normal_results_by_rounding_only():
    """Against a float64 reference of the weighted mean: within float32 rounding."""
    rng = np.random.default_rng(5)
    tiles = {k: rng.random((48, 48), dtype=np.float32) for k in range(3)}
    r = sf.Renderer(rigid={0: (0, 0), 1: (20, 5), 2: (10, 25)}, tilesize=(48, 48), blend=8, interpolation="nearest")
    img = r.render_all(tiles)
    num = np.zeros(r.shape)
    den = np.zeros(r.shape)
    x0, y0 = r.origin
    h, w = r.shape
    yy, xx = np.mgrid[0:h, 0:w]
    for k, (px, py) in enumerate([(0, 0), (20, 5), (10, 25)]):
        u, v = xx + x0 - px, yy + y0 - py
        e = np.minimum(np.minimum(u + 0.5, 47.5 - u), np.minimum(v + 0.5, 47.5 - v))
        wgt = np.clip(e / 8, 0, 1).astype(np.float32)
        inside = e > 0
        ui, vi = np.clip(np.floor(u + 0.5).astype(int), 0, 47), np.clip(np.floor(v + 0.5).astype(int), 0, 47)
        val = np.where(inside, tiles[k][vi, ui], 0)
        num += np.where(inside, wgt * val, 0)
        den += np.where(inside, wgt, 0)
    ref = np.where(den > 0, num / np.where(den > 0, den, 1), 0)
    np.testing.assert_allclose(img, ref, rtol=2e-7, atol=1e-7)


@pytest.fixture(scope="module")
def placed():
    tiles, _ = grid_tiles(photograph("retina"), 2, 3, tile=256, overlap=0.2, seed=11)
    res = sf.montage(tiles, overlap=0.2, model="rigid", progress=False, render=False)
    return res, tiles


@pytest.mark.parametrize("interpolation", ["linear", "cubic"])
@pytest.mark.parametrize("blend", [10, 0])
def test_ome_zarr_tiff_and_render_all_are_bit_identical(placed, tmp_path, interpolation, blend):
    res, tiles = placed
    r = res.renderer(blend=blend, interpolation=interpolation)
    whole = r.render_all(tiles)
    h, w = whole.shape
    assert h % 100 and w % 100 and h % 256 and w % 256  # chunks that do not divide the canvas
    zarr_path = res.write(tmp_path / "m.ome.zarr", tiles, chunk=100, blend=blend, interpolation=interpolation)
    tif_path = res.write(tmp_path / "m.tif", tiles, blend=blend, interpolation=interpolation)
    from tifffile import imread

    z, t = read_ome_zarr(zarr_path), imread(tif_path)
    assert z.dtype == t.dtype == whole.dtype
    assert np.array_equal(z, whole) and np.array_equal(t, whole)
    # Any window at whole-pixel offsets, with the tiles in any dict order.
    x0, y0 = r.origin
    shuffled = dict(reversed(list(tiles.items())))
    for (x, y, cw, ch) in [(37, 11, 130, 90), (255, 63, 2, 2), (w - 7, h - 5, 7, 5), (1, 0, w - 1, h)]:
        part = r.render_region((x0 + x, y0 + y, cw, ch), shuffled)
        assert np.array_equal(part, whole[y:y + ch, x:x + cw]), (x, y)


def _interrupted_within(call, after: float, limit: float) -> float:
    """Send SIGINT to this process ``after`` seconds into call(); the KeyboardInterrupt must come
    out of call() within ``limit`` seconds of the signal. Returns that delay."""
    sent = []

    main = threading.main_thread().ident
    assert main is not None

    def fire() -> None:
        sent.append(time.perf_counter())
        # To the main thread (a process-directed os.kill may be delivered to any thread).
        signal.pthread_kill(main, signal.SIGINT)

    timer = threading.Timer(after, fire)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            call()
        delay = time.perf_counter() - sent[0]
    finally:
        timer.cancel()
        timer.join()
    assert delay < limit, f"KeyboardInterrupt came {delay:.2f} s after SIGINT"
    return delay


def _timed(call) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def _in_fresh_process(body: str) -> None:
    """Run ``body()`` of this module in a new interpreter whose SIGINT is as a shell gives it:
    unblocked, with Python's default handler.

    In the full suite (``make test``) the two Ctrl-C tests below failed in 4 of 5 runs on
    2026-12-06 with "DID NOT RAISE" (the call ran to its end although SIGINT was sent to the main
    thread), also when run in a child process, which inherits its parent's signal mask and ignored
    signals; they passed alone, after either half of the suite, and once after all of it. So some
    earlier test's library leaves SIGINT blocked or ignored in the test process (not pinned down).
    The child resets both first, prints what it inherited, and then tests what a user pressing
    Ctrl-C has."""
    here = os.path.dirname(os.path.abspath(__file__))
    code = ("import signal, sys\n"
            "print('inherited: blocked', sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])),"
            " 'handler', signal.getsignal(signal.SIGINT))\n"
            "signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            f"sys.path.insert(0, {here!r})\n"
            f"import test_reliability_render as t\nt.{body}()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{body} failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
def test_ctrl_c_interrupts_render_all():
    _in_fresh_process("_ctrl_c_render_all")


def _ctrl_c_render_all() -> None:
    tile = np.random.default_rng(0).random((512, 512), dtype=np.float32)
    n_small = 8

    def position(k: int) -> tuple[float, float]:
        return float(k % 7) * 0.37, float(k % 5) * 0.29
    r_small = sf.Renderer(rigid={k: position(k) for k in range(n_small)}, tilesize=(512, 512),
                          interpolation="cubic", threads=2)
    small = _timed(lambda: r_small.render_all({k: tile for k in range(n_small)}))
    # Sized on this machine: the uninterrupted call would take at least 10 s (every tile is the
    # same array and they overlap, so more tiles cost time, not memory).
    n_long = max(4000, int(np.ceil(10.0 * n_small / small)))
    r_long = sf.Renderer(rigid={k: position(k) for k in range(n_long)}, tilesize=(512, 512),
                         interpolation="cubic", threads=2)
    expected = small * n_long / n_small
    assert expected >= 10.0 - 1e-9
    _interrupted_within(lambda: r_long.render_all({k: tile for k in range(n_long)}), 0.5, 2.0)
    # The renderer is usable afterwards.
    assert r_small.render_all({k: tile for k in range(n_small)}).shape == r_small.shape


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
def test_ctrl_c_interrupts_stack_registration():
    """One pass over the frames is one core call (the frames loop runs in C++): the interrupt must
    come well before that call would have ended."""
    _in_fresh_process("_ctrl_c_stack_registration")


def _ctrl_c_stack_registration() -> None:
    rng = np.random.default_rng(1)
    n_small = 100
    frames = rng.random((n_small, 256, 256), dtype=np.float32)
    ref = frames[:50].mean(0)
    sf.CrossCorr(threads=1).fit(frames[:4], ref)  # FFT plans made once, outside the timing
    small = min(_timed(lambda: sf.CrossCorr(threads=1).fit(frames, ref)) for _ in range(2))
    # Sized on this machine to an uninterrupted call of about a second (at most 2000 frames,
    # 0.5 GB), so a fast machine does not end the call before the signal arrives.
    n_long = int(min(2000, max(1000, np.ceil(1.0 * n_small / small))))
    frames = np.concatenate([frames, rng.random((n_long - n_small, 256, 256), dtype=np.float32)])
    expected = small * n_long / n_small
    assert expected > 0.3, f"the long call would take only {expected:.2f} s"
    after = 0.1
    limit = min(0.3, (expected - after) / 2)
    _interrupted_within(lambda: sf.CrossCorr(threads=1).fit(frames, ref), after, limit)
