"""The LDDMM core (STalign's energy) against independent NumPy oracles: finite differences of
the energy for the analytic gradients (2-D and 3-D), the regulariser against numpy.fft, the
flows and sampler against scipy.ndimage, the rasterizer against STalign's own loop, and
threads=1 vs threads=N bit-identity."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from spectralign_fast._core import register as core

ndimage = pytest.importorskip("scipy.ndimage")


def _smooth(rng: np.random.Generator, shape: tuple, channels: int) -> np.ndarray:
    return np.stack([ndimage.gaussian_filter(rng.random(shape), 2.0) for _ in range(channels)])


def _problem(d: int, *, sigmaR: float = 1e8, threads: int = 1, seed: int = 0, trim: int = 10):
    rng = np.random.default_rng(seed)
    shape = (30, 34) if d == 2 else (12, 14, 13)
    I, J = _smooth(rng, shape, 2), _smooth(rng, shape, 3)
    vshape = [s // 3 + 4 for s in shape]
    pI = rng.random((4, d)) * 8 + 8
    pJ = pI + rng.normal(size=(4, d))
    # The target sits inside the source, so that no sample point reaches the border clamp
    # (where the energy has a kink and finite differences mean nothing).
    tshape = tuple(s - trim for s in shape)
    Jc = np.ascontiguousarray(J[(slice(None),) + tuple(slice(5, 5 + t) for t in tshape)])
    P = core.LddmmProblem(I, np.zeros(d), np.ones(d), Jc, np.full(d, 5.0), np.ones(d), vshape,
                          np.full(d, -6.0), np.full(d, 3.0), nt=3, a=4.0, p=2.0, sigmaM=0.5,
                          sigmaB=1.0, sigmaA=1.0, sigmaR=sigmaR, sigmaP=3.0, points_I=pI,
                          points_J=pJ, threads=threads)
    v = rng.normal(size=P.velocity.shape) * 0.3
    A = np.eye(d + 1)
    A[:d, :d] += rng.normal(size=(d, d)) * 0.02
    A[:d, d] = rng.normal(size=d) * 0.5
    P.velocity, P.affine = v, A
    return P, v, A


@pytest.mark.parametrize("d, trim", [(2, 10), (2, 11), (3, 10)])
def test_gradients_match_finite_differences(d, trim):
    # trim 11: a 2-D target of 19 x 23 points, so the kernels' last group of eight is partial.
    P, v, A = _problem(d, trim=trim)
    P.evaluate()
    P.fix_contrast(P.contrast_coefficients)  # STalign differentiates with the fit held fixed
    e, gv, gA = P.gradient()
    assert np.isfinite(e.total) and e.points > 0
    # The largest velocity components (where the image gradient acts) and every affine entry.
    order = np.argsort(np.abs(gv).ravel())[::-1][:6]
    for flat in order:
        idx = np.unravel_index(flat, v.shape)
        h = 1e-5
        vp, vm = v.copy(), v.copy()
        vp[idx] += h
        vm[idx] -= h
        P.velocity = vp
        ep = P.evaluate().total
        P.velocity = vm
        em = P.evaluate().total
        assert (ep - em) / (2 * h) == pytest.approx(gv[idx], rel=1e-4, abs=1e-9)
    P.velocity = v
    for i in range(d):
        for j in range(d + 1):
            h = 1e-6
            Ap, Am = A.copy(), A.copy()
            Ap[i, j] += h
            Am[i, j] -= h
            P.affine = Ap
            ep = P.evaluate().total
            P.affine = Am
            em = P.evaluate().total
            assert (ep - em) / (2 * h) == pytest.approx(gA[i, j], rel=1e-4, abs=1e-7)
    assert np.all(gA[d] == 0)


@pytest.mark.parametrize("d", [2, 3])
def test_regulariser_matches_numpy_fft(d):
    P, v, _ = _problem(d, sigmaR=7.0)
    P.velocity = v * 0.0
    base = P.evaluate()
    assert base.regularization == 0.0
    P.velocity = v
    e, gv, _ = P.gradient()
    P.velocity = np.zeros_like(v)
    _, g0, _ = P.gradient()
    spacing, a, p, sigmaR = 3.0, 4.0, 2.0, 7.0
    shape = v.shape[1:-1]
    freqs = np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij")
    LL = (1.0 + 2.0 * a**2 * sum((1.0 - np.cos(2 * np.pi * f)) / spacing**2 for f in freqs)) ** (2 * p)
    axes = tuple(range(d))
    DV, N = spacing**d, np.prod(shape)
    er = 0.0
    grad = np.zeros_like(v)
    for t in range(v.shape[0]):
        for k in range(d):
            F = np.fft.fftn(v[t][..., k], axes=axes)
            er += np.sum(np.abs(F) ** 2 * LL)
            grad[t][..., k] = np.fft.ifftn(F * LL, axes=axes).real * DV / sigmaR**2
    er *= DV / (2 * sigmaR**2 * N)
    assert e.regularization == pytest.approx(er, rel=1e-5)
    # The gradient's regulariser part (the core transforms in float32).
    assert np.allclose(gv - g0, grad, rtol=1e-4, atol=1e-5 * np.abs(grad).max())


@pytest.mark.parametrize("d", [2, 3])
def test_threads_bit_identical(d):
    runs = []
    for threads in (1, 2, 3):
        P, _, _ = _problem(d, sigmaR=20.0, threads=threads)
        energies = [P.step(1e-6, 1e-3, 1.0).total for _ in range(4)]
        P.update_weights(True, True, True)
        runs.append((energies, P.velocity, P.affine, P.WM, P.contrast_source))
    for other in runs[1:]:
        for x, y in zip(runs[0], other):
            assert np.array_equal(np.asarray(x), np.asarray(y))


def test_steps_lower_the_energy_and_weights_are_a_partition():
    P, v, _ = _problem(2, sigmaR=20.0)
    first = P.step(0.0, 0.0, 0.0).total
    P.velocity = v
    e = [P.step(1e-7, 1e-4, 0.5).total for _ in range(10)]
    assert e[0] == first and e[-1] < e[0] and all(b <= a * (1 + 1e-12) for a, b in zip(e, e[1:]))
    P.update_weights(True, True, True)
    W = P.WM + P.WA + P.WB
    assert np.allclose(W, 1.0, atol=1e-5) and (P.WM >= 0).all()


def test_sample_matches_scipy_in_both_paddings():
    rng = np.random.default_rng(3)
    img = rng.random((2, 9, 11))
    origin, spacing = np.array([1.0, -2.0]), np.array([0.5, 2.0])
    pts = np.c_[rng.uniform(-1, 7, 400), rng.uniform(-8, 24, 400)]
    idx = ((pts - origin) / spacing).T
    border = core.lddmm_sample(img, origin, spacing, pts, padding="border")
    clamped = np.stack([np.clip(idx[0], 0, 8), np.clip(idx[1], 0, 10)])
    for c in range(2):
        assert np.allclose(border[c], ndimage.map_coordinates(img[c], clamped, order=1), atol=1e-12)
        padded = np.pad(img[c], 1)
        inside = (idx[0] > -1) & (idx[0] < 9) & (idx[1] > -1) & (idx[1] < 11)
        ref = ndimage.map_coordinates(padded, idx + 1, order=1, mode="constant") * inside
        assert np.allclose(core.lddmm_sample(img, origin, spacing, pts, padding="zeros")[c], ref, atol=1e-12)


def test_flow_matches_numpy_euler():
    rng = np.random.default_rng(4)
    nt, shape = 3, (8, 9)
    v = rng.normal(size=(nt,) + shape + (2,))
    origin, spacing = np.array([-3.0, -4.0]), np.array([2.0, 2.0])
    A = np.array([[1.1, 0.1, 2.0], [-0.05, 0.95, -1.0], [0, 0, 1]])
    pts = rng.uniform(-2, 12, (50, 2))

    def vel(t, p):
        idx = ((p - origin) / spacing).T + 1
        return np.stack([ndimage.map_coordinates(np.pad(v[t][..., k], 1), idx, order=1, mode="constant")
                         for k in range(2)], -1)

    q = pts.copy()
    for t in range(nt):
        q = q + vel(t, q) / nt
    q = q @ A[:2, :2].T + A[:2, 2]
    before = pts.copy()
    out = core.lddmm_flow_points(v, origin, spacing, pts, matrix=A, forward=True)
    assert np.array_equal(pts, before)
    assert np.allclose(out, q, atol=1e-10)
    b = np.linalg.inv(A)
    r = pts @ b[:2, :2].T + b[:2, 2]
    for t in reversed(range(nt)):
        r = r - vel(t, r) / nt
    assert np.allclose(core.lddmm_flow_points(v, origin, spacing, pts, matrix=b, forward=False), r, atol=1e-10)


@pytest.mark.parametrize("tshape", [(19, 23), (16, 16)])
def test_deformed_source_matches_numpy_oracle(tshape):
    """The problem's own pass (the vectorised 2-D kernels, eight points at a time, a partial
    last group when the target's size is not a multiple of 8, and the general path for points
    whose velocity cell leaves the grid) against Euler steps and sampling done with scipy."""
    rng = np.random.default_rng(6)
    I, J = _smooth(rng, (30, 34), 2), _smooth(rng, tshape, 3)
    nt, vorigin, vspacing, vshape = 3, np.array([0.0, 2.0]), np.array([2.5, 2.5]), (8, 8)
    P = core.LddmmProblem(I, np.zeros(2), np.ones(2), J, np.full(2, 5.0), np.ones(2), list(vshape), vorigin,
                          vspacing, nt=nt, a=4.0, p=2.0, sigmaM=0.5, sigmaB=1.0, sigmaA=1.0, sigmaR=1e8,
                          sigmaP=3.0, threads=2)
    v = rng.normal(size=(nt,) + vshape + (2,)) * 0.8
    A = np.array([[1.05, 0.04, -0.7], [-0.03, 0.97, 0.4], [0.0, 0.0, 1.0]])
    P.velocity, P.affine = v, A
    P.evaluate()

    def vel(t, q):
        idx = ((q - vorigin) / vspacing).T + 1
        return np.stack([ndimage.map_coordinates(np.pad(v[t][..., k], 1), idx, order=1, mode="constant")
                         for k in range(2)], -1)

    y = np.stack(np.meshgrid(*[5.0 + np.arange(n) for n in tshape], indexing="ij"), -1).reshape(-1, 2)
    b = np.linalg.inv(A)
    x = y @ b[:2, :2].T + b[:2, 2]
    edge = ((x - vorigin) / vspacing >= np.array(vshape) - 1).any(axis=1)
    assert 0 < edge.sum() < len(x)  # both paths are taken
    for t in reversed(range(nt)):
        x = x - vel(t, x) / nt
    idx = np.stack([np.clip(x[:, 0], 0, 29), np.clip(x[:, 1], 0, 33)])
    expected = np.stack([ndimage.map_coordinates(I[c], idx, order=1) for c in range(2)]).reshape((2,) + tshape)
    assert np.allclose(np.asarray(P.deformed_source), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("d, trim", [(2, 11), (3, 9)])
def test_kernels_with_and_without_avx512_agree(d, trim):
    """The Euler-step kernels have an AVX-512 variant (the packed velocity; in 3-D the other
    CPUs take the general path) and one for every other CPU, picked at load time; a fresh process with SPECTRALIGN_NO_AVX512=1 runs the
    other, whose energy, gradients and sampled source agree with this process's to rounding
    (on a CPU without AVX-512 both processes run the same one)."""
    script = (
        "import json, sys, numpy as np\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import test_lddmm_core as t\n"
        f"P, _, _ = t._problem({d}, trim={trim}, sigmaR=20.0)\n"
        "e, gv, gA = P.gradient()\n"
        "print(json.dumps([e.total, gv.tolist(), gA.tolist(), np.asarray(P.deformed_source).tolist()]))\n")
    env = dict(os.environ, SPECTRALIGN_NO_AVX512="1")
    out = subprocess.run([sys.executable, "-c", script, os.path.dirname(__file__)], env=env,
                         capture_output=True, text=True, check=True).stdout
    total, gv, gA, src = json.loads(out)
    P, _, _ = _problem(d, trim=trim, sigmaR=20.0)
    e, gv0, gA0 = P.gradient()
    assert total == pytest.approx(e.total, rel=1e-12)
    assert np.allclose(gv, gv0, rtol=1e-9, atol=1e-12 * np.abs(gv0).max())
    assert np.allclose(gA, gA0, rtol=1e-9, atol=1e-12 * np.abs(gA0).max())
    assert np.allclose(src, np.asarray(P.deformed_source), rtol=0, atol=1e-12)


def test_rasterize_matches_stalign_loop():
    rng = np.random.default_rng(5)
    x, y = rng.uniform(0, 300, 60), rng.uniform(0, 200, 60)
    g = rng.uniform(0.5, 2.0, 60)
    dx, blur = 10.0, np.array([2.0, 1.0])
    X, Y = np.arange(-20, 320, dx), np.arange(-10, 215, dx)
    got = core.rasterize_points(x, y, g, X, Y, dx, blur, wavelet_magnitude=True)
    # STalign's windowed loop, verbatim in NumPy.
    XX = np.stack(np.meshgrid(X, Y))
    W = np.zeros((Y.size, X.size, 2))
    r = int(np.ceil(blur.max() * 4))
    for x_, y_, g_ in zip(x, y, g):
        col, row = int(np.round((x_ - X[0]) / dx)), int(np.round((y_ - Y[0]) / dx))
        r0, r1 = np.clip([row - r, row + r], 0, Y.size - 1)
        c0, c1 = np.clip([col - r, col + r], 0, X.size - 1)
        k = np.exp(-((XX[0][r0:r1 + 1, c0:c1 + 1, None] - x_) ** 2 + (XX[1][r0:r1 + 1, c0:c1 + 1, None] - y_) ** 2)
                   / (2.0 * (dx * blur * 2) ** 2))
        k /= np.sum(k, axis=(0, 1), keepdims=True)
        k *= g_
        k[..., 1] = k[..., 1] - k[..., 0]
        W[r0:r1 + 1, c0:c1 + 1, :] += k
    assert np.allclose(got, np.abs(W).transpose(2, 0, 1), rtol=1e-12, atol=1e-15)


def test_core_refuses_bad_input():
    I = np.ones((1, 5, 5))
    with pytest.raises(ValueError, match="NaN"):
        core.LddmmProblem(np.full((1, 5, 5), np.nan), np.zeros(2), np.ones(2), I, np.zeros(2), np.ones(2),
                          [4, 4], np.zeros(2), np.ones(2), nt=3, a=1, p=2, sigmaM=1, sigmaB=1, sigmaA=1,
                          sigmaR=1, sigmaP=1)
    with pytest.raises(ValueError, match="positive"):
        core.LddmmProblem(I, np.zeros(2), np.ones(2), I, np.zeros(2), np.ones(2), [4, 4], np.zeros(2),
                          np.ones(2), nt=3, a=-1, p=2, sigmaM=1, sigmaB=1, sigmaA=1, sigmaR=1, sigmaP=1)
    with pytest.raises(ValueError, match="padding"):
        core.lddmm_sample(I, np.zeros(2), np.ones(2), np.zeros((1, 2)), padding="wrap")
    P = core.LddmmProblem(I, np.zeros(2), np.ones(2), I, np.zeros(2), np.ones(2), [4, 4], np.zeros(2),
                          np.ones(2), nt=3, a=1, p=2, sigmaM=1, sigmaB=1, sigmaA=1, sigmaR=1, sigmaP=1)
    with pytest.raises(ValueError, match="singular"):
        P.affine = np.zeros((3, 3))
        P.evaluate()
    with pytest.raises(ValueError, match="finite"):
        P.velocity = np.full(P.velocity.shape, np.inf)
