"""The montage report PNG: written atomically, right size, real content in both panels."""
from __future__ import annotations

import errno
import threading

import numpy as np
import pytest
from PIL import Image as PILImage

from spectralign_fast.io import downsample
from spectralign_fast.report import montage_report, residual_factor

TILE, STEP = 600, 500  # 2 x 2 tiles of the retina photograph, 100 px overlaps


@pytest.fixture(scope="module")
def case(retina):
    """A 2 x 2 montage of the retina photo shrunk 4 times, with matches in the overlaps."""
    rng = np.random.default_rng(3)
    outlines = {}
    for r in range(2):
        for c in range(2):
            x0, y0 = c * STEP - 0.5, r * STEP - 0.5
            outlines[f"r{r}c{c}"] = np.array([[x0, y0], [x0 + TILE, y0], [x0 + TILE, y0 + TILE],
                                              [x0, y0 + TILE]])
    montage = (retina[:STEP + TILE, :STEP + TILE] * 65535).astype(np.uint16)
    small = downsample(montage, 4)
    ys = np.arange(40, STEP + TILE - 40, 60.0)
    pts = np.concatenate([np.stack([np.full_like(ys, 550.0), ys], 1),
                          np.stack([ys, np.full_like(ys, 550.0)], 1)])
    res = rng.normal(0, 0.3, pts.shape)
    snr = rng.uniform(2, 30, len(pts))
    # image pixel (0, 0) averages model pixels 0..3: its centre is model (1.5, 1.5)
    return dict(image=small, scale=4.0, origin=(1.5, 1.5), tile_outlines=outlines, points=pts,
                residuals=res, snr=snr)


def read_png(path):
    with PILImage.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def red_pixels(rgb):
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (r > 200) & (g < 90) & (b < 90)


def test_report_written_with_content(tmp_path, case):
    before = {k: np.array(v, copy=True) for k, v in case.items() if k != "tile_outlines"}
    out = montage_report(tmp_path / "report.png", title="retina 2 x 2", **case)
    assert out == tmp_path / "report.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.png"]
    rgb = read_png(out)
    assert rgb.shape == (800, 1600, 3)  # figsize 16 x 8 in at 100 dpi
    left, right = rgb[:, :800], rgb[:, 800:]
    assert left.std() > 20 and right.std() > 10  # not blank
    assert red_pixels(left).sum() > 150  # residual arrows (the legend's sample is about 25)
    assert red_pixels(right).sum() == 0
    # viridis dots (green-blue-yellow, not grey) only in the SNR panel
    sat = rgb.max(axis=-1) - rgb.min(axis=-1)
    colourful_right = (sat[:, 800:] > 80) & ~red_pixels(right)
    assert colourful_right.sum() > 200
    for k, v in before.items():
        np.testing.assert_array_equal(case[k], v)


def test_report_size_and_empty_matches(tmp_path, case):
    empty = dict(case, points=np.zeros((0, 2)), residuals=[], snr=[])
    out = montage_report(tmp_path / "empty.png", figsize=(6, 4), dpi=50, **empty)
    rgb = read_png(out)
    assert rgb.shape == (200, 300, 3)
    assert rgb.std() > 10
    assert red_pixels(rgb).sum() == 0


def test_residual_factor_is_a_round_number_and_scales_vectors():
    res = np.array([[0.3, 0.4]] * 20)  # length 0.5
    f = residual_factor(res, 1000)  # wants about 50 / 0.5 = 100 -> 100
    assert f == 100
    assert residual_factor(res * 10, 1000) == 10
    assert residual_factor(res * 3, 100000) == 2000
    assert residual_factor(np.zeros((3, 2)), 1000) == 1
    assert residual_factor(np.zeros((0, 2)), 1000) == 1
    for r in np.geomspace(1e-3, 10, 17):
        f = residual_factor(np.array([[r, 0.0]]), 2000)  # target length 100
        mantissa = f / 10 ** np.floor(np.log10(f))
        assert np.isclose(mantissa, 1) or np.isclose(mantissa, 2) or np.isclose(mantissa, 5)
        assert 0.4 * 100 < r * f <= 100 + 1e-9  # drawn length within 2.5x below the target


def test_report_is_atomic(tmp_path, case, monkeypatch):
    path = tmp_path / "report.png"
    path.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        montage_report(path, overwrite=False, **case)
    from matplotlib.figure import Figure

    def disk_full(self, fname, **kw):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", disk_full)
    with pytest.raises(OSError, match="no space left"):
        montage_report(path, **case)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.png"]


def test_reports_from_threads(tmp_path, case):
    errors = []

    def run(k):
        try:
            montage_report(tmp_path / f"r{k}.png", figsize=(8, 4), **case)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    first = read_png(tmp_path / "r0.png")
    for k in (1, 2):
        np.testing.assert_array_equal(read_png(tmp_path / f"r{k}.png"), first)


@pytest.mark.parametrize("change, err, msg", [
    (dict(image=np.zeros((4, 4, 3))), ValueError, "2-D"),
    (dict(image=np.full((4, 4), np.nan)), ValueError, "NaN"),
    (dict(scale=0), ValueError, "positive"),
    (dict(origin=(1, 2, 3)), ValueError, r"\(x, y\) pair"),
    (dict(tile_outlines=[1, 2]), TypeError, "dict"),
    (dict(tile_outlines={"a": np.zeros((3, 2))}), ValueError, "4 \\(x, y\\) corners"),
    (dict(snr=[1.0]), ValueError, "one row per match"),
    (dict(residuals=np.zeros((3, 3))), ValueError, "shape \\(N, 2\\)"),
])
def test_report_bad_input(tmp_path, case, change, err, msg):
    with pytest.raises(err, match=msg):
        montage_report(tmp_path / "r.png", **dict(case, **change))
    with pytest.raises(ValueError, match="must end with .png"):
        montage_report(tmp_path / "r.jpg", **case)
    assert list(tmp_path.iterdir()) == []
