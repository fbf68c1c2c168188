"""Smoke test of bench/bench_register.py: its inputs, the truth's convention, the ITK
conversions, and our tool on its smallest case (no timing assertions)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("skimage")
_PATH = Path(__file__).resolve().parents[1] / "bench" / "bench_register.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_register", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _itk_like(bench, d):
    rng = np.random.default_rng(3)
    m = np.eye(d) + 0.05 * rng.standard_normal((d, d))
    return bench._itk_homogeneous(m.ravel(), rng.uniform(10, 40, d), rng.uniform(-5, 5, d))


@pytest.mark.parametrize("d", [2, 3])
def test_itk_conversions_are_consistent(bench, d):
    """Map an index through each tool's geometry by hand and compare with the converted map."""
    gs = np.diag([1.5, 2.0, 2.5, 1.0][-(d + 1):] if d == 3 else [1.5, 2.0, 1.0])
    gs[:d, d] = np.arange(1, d + 1) * -10.0
    gm = gs.copy()
    gm[:d, d] += 3.0
    h = _itk_like(bench, d)
    idx = np.array([3.0, 7.0, 11.0][:d])
    s, o = np.diag(gs)[:d], gs[:d, d]
    sm, om = np.diag(gm)[:d], gm[:d, d]
    # SimpleITK: ITK x is the array's last axis.
    p = (h @ np.append((s * idx + o)[::-1], 1))[:d][::-1]
    np.testing.assert_allclose(bench._index_map_sitk(h, gs, gm) @ np.append(idx, 1), np.append((p - om) / sm, 1))
    # ANTs: ITK x is the array's first axis.
    p = (h @ np.append(s * idx + o, 1))[:d]
    np.testing.assert_allclose(bench._index_map_ants(h, gs, gm) @ np.append(idx, 1), np.append((p - om) / sm, 1))


def test_sitk_conversion_against_its_resampler(bench):
    sitk = pytest.importorskip("SimpleITK")
    rng = np.random.default_rng(0)
    from scipy import ndimage
    moving = ndimage.gaussian_filter(rng.random((40, 50, 30)), 2).astype(np.float32)
    g = np.diag([2.0, 1.0, 1.5, 1.0])
    h = _itk_like(bench, 3)
    tx = sitk.AffineTransform(3)
    tx.SetMatrix(h[:3, :3].ravel().tolist())
    tx.SetTranslation(h[:3, 3].tolist())
    img = bench._sitk_image(moving, g)
    index = bench._index_map_sitk(h, g, g)
    err = bench._conversion_check(
        index, moving.shape, moving,
        lambda: sitk.GetArrayFromImage(sitk.Resample(img, img, tx, sitk.sitkLinear, 0.0)))
    assert err < 1e-4


def test_ours_on_the_smallest_case(bench, tmp_path):
    """camera 512², mono: inputs, truth and our registration (the benchmark's settings)."""
    static, moving, gs, gm, truth = bench.CASES["camera"][1]()
    assert static.shape == moving.shape == (512, 512) and static.dtype == np.float32
    assert bench.rms_error(np.eye(3), truth, static.shape) > 10  # a real misalignment
    index, extra, _ = bench.run_ours(static, moving, gs, gm, 1)
    assert bench.rms_error(index, truth, static.shape) < 0.05
    assert extra["evaluations"] == sum(lv["evaluations"] for lv in extra["levels"]) > 0
    # translation and rigid on the two coarse levels, the affine on all three
    assert [(lv["stage"], lv["level"]) for lv in extra["levels"]] == [
        ("translation", 2), ("translation", 1), ("rigid", 2), ("rigid", 1),
        ("affine", 2), ("affine", 1), ("affine", 0)]
