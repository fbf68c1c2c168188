"""montage(): accuracy against known truth and an independent oracle, robustness, outputs, bad input."""
from __future__ import annotations

import numpy as np
import pytest

import spectralign_fast as sf
from conftest import SHARED_DATA, YFP_TILES
from spectralign_fast.cli.demo import DEMO_GRID
from spectralign_fast.io import read_ome_zarr
from spectralign_fast.synthetic import grid_tiles, photograph, registration_error


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return photograph("retina")


@pytest.fixture(scope="module")
def demo_set(photo):
    return grid_tiles(photo, seed=2026, **DEMO_GRID)


@pytest.fixture(scope="module")
def flat_grid(photo):
    """3x3 grid, 20% overlap, translations only (jitter), float32, light noise."""
    return grid_tiles(photo, 3, 3, overlap=0.2, jitter=15, max_rotation=0.0, noise=0.002, vignetting=0.0,
                      dtype=np.float32, seed=5)


def test_demo_set_affine_error_against_truth(demo_set):
    tiles, truth = demo_set
    res = sf.montage(tiles, overlap=0.15, progress=False, render=False)
    err = registration_error(res.transforms, truth, res.tile_sizes)
    assert err["rms"] <= 0.3, err
    assert res.residuals.rms < 0.3
    # Every neighbour pair contributed matches in two rows/columns at least.
    assert all(pm.kept.sum() >= 4 for pm in res.matches)


def test_demo_set_similarity_against_truth(demo_set):
    tiles, truth = demo_set
    res = sf.montage(tiles, overlap=0.15, model="similarity", progress=False, render=False)
    assert registration_error(res.transforms, truth, res.tile_sizes)["rms"] <= 0.15
    for tf in res.transforms.values():
        a = np.asarray(tf)[:, :2]
        assert a[0, 0] == pytest.approx(a[1, 1]) and a[0, 1] == pytest.approx(-a[1, 0])


def test_rigid_placement_of_translated_tiles(flat_grid):
    tiles, truth = flat_grid
    res = sf.montage(tiles, overlap=0.2, model="rigid", progress=False, render=False)
    err = registration_error(res.transforms, truth, res.tile_sizes)
    assert err["rms"] < 0.1, err
    for tf in res.transforms.values():
        np.testing.assert_allclose(np.asarray(tf)[:, :2], np.eye(2))


@pytest.mark.parametrize("guess", [0.1, 0.4])
def test_overlap_guess_off_by_2x(flat_grid, guess):
    tiles, truth = flat_grid
    res = sf.montage(tiles, overlap=guess, model="rigid", progress=False, render=False)
    assert registration_error(res.transforms, truth, res.tile_sizes)["rms"] < 0.1


def test_grid_with_a_hole_and_tiles_of_different_sizes(flat_grid):
    tiles, truth = flat_grid
    holey = {k: v for k, v in tiles.items() if k != (1, 1)}
    holey[(0, 2)] = tiles[(0, 2)][:, :-60]           # narrower (cut on the right: same origin)
    holey[(2, 0)] = tiles[(2, 0)][:-40, :]           # shorter
    res = sf.montage(holey, overlap=0.2, model="rigid", progress=False)
    assert (1, 1) not in res.transforms
    assert res.tile_sizes[(0, 2)] == (tiles[(0, 2)].shape[1] - 60, tiles[(0, 2)].shape[0])
    sub = {k: truth[k] for k in holey}
    assert registration_error(res.transforms, sub, res.tile_sizes)["rms"] < 0.15
    assert res.image.dtype == np.float32


def test_isolated_tile_is_named_in_the_error(flat_grid):
    tiles, _ = flat_grid
    lonely = {(0, 0): tiles[(0, 0)], (0, 1): tiles[(0, 1)], (2, 2): tiles[(2, 2)]}
    with pytest.raises(ValueError, match=r"tile \(2, 2\) could not be matched.*diagonals=True"):
        sf.montage(lonely, overlap=0.2, progress=False, render=False)


def test_unrelated_neighbour_gives_advice(flat_grid, photo):
    tiles, _ = flat_grid
    rng = np.random.default_rng(1)
    bad = {(0, 0): tiles[(0, 0)], (0, 1): rng.normal(size=tiles[(0, 1)].shape).astype(np.float32)}
    with pytest.raises(ValueError, match="overlap guess"):
        sf.montage(bad, overlap=0.2, progress=False, render=False, min_snr=15)


def test_threads_do_not_change_the_result(demo_set):
    tiles, _ = demo_set
    one = sf.montage(tiles, overlap=0.15, threads=1, progress=False, render=False)
    two = sf.montage(tiles, overlap=0.15, threads=2, progress=False, render=False)
    for t in one.transforms:
        np.testing.assert_array_equal(np.asarray(one.transforms[t]), np.asarray(two.transforms[t]))


def test_inputs_untouched_and_paths_accepted(flat_grid, tmp_path):
    import tifffile

    tiles, truth = flat_grid
    sub = {k: tiles[k] for k in [(0, 0), (0, 1), (1, 0), (1, 1)]}
    copies = {k: v.copy() for k, v in sub.items()}
    paths = {}
    for k, v in sub.items():
        paths[k] = tmp_path / f"t{k[0]}{k[1]}.tif"
        tifffile.imwrite(paths[k], v)
    from_arrays = sf.montage(sub, overlap=0.2, progress=False)
    from_paths = sf.montage(paths, overlap=0.2, progress=False)
    for k in sub:
        np.testing.assert_array_equal(sub[k], copies[k])
        np.testing.assert_allclose(np.asarray(from_arrays.transforms[k]), np.asarray(from_paths.transforms[k]),
                                   atol=1e-9)
    np.testing.assert_array_equal(from_arrays.image, from_paths.image)
    assert from_paths.sources[(0, 1)] == str(paths[(0, 1)])


def test_save_load_and_render_later(demo_set, tmp_path):
    tiles, _ = demo_set
    res = sf.montage(tiles, overlap=0.15, progress=False)
    res.save(tmp_path / "m.json")
    back = sf.MontageResult.load(tmp_path / "m.json")
    assert back.model == res.model and back.tile_sizes == res.tile_sizes
    for t in res.transforms:
        np.testing.assert_allclose(np.asarray(back.transforms[t]), np.asarray(res.transforms[t]), rtol=0, atol=1e-12)
    assert len(back.matches) == len(res.matches)
    np.testing.assert_array_equal(back.matches[3].p1, res.matches[3].p1)
    assert back.residuals.rms == pytest.approx(res.residuals.rms, rel=1e-9)
    again = back.renderer().render_all(tiles)
    np.testing.assert_array_equal(again, res.image)
    with pytest.raises(FileExistsError):
        res.save(tmp_path / "m.json", overwrite=False)
    (tmp_path / "bad.json").write_text("{\"format\": \"something else\"}")
    with pytest.raises(ValueError, match="not a spectralign-fast alignment file"):
        sf.MontageResult.load(tmp_path / "bad.json")


@pytest.mark.parametrize("name", ["out.ome.zarr", "out.tif"])
def test_written_output_equals_in_memory_render(demo_set, tmp_path, name):
    import tifffile

    tiles, _ = demo_set
    mem = sf.montage(tiles, overlap=0.15, progress=False)
    out = tmp_path / name
    res = sf.montage(tiles, overlap=0.15, progress=False, output=out, chunk=256)
    assert res.image is None and res.output == out
    back = read_ome_zarr(out) if name.endswith("zarr") else tifffile.imread(out)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, mem.image)
    with pytest.raises(FileExistsError, match="overwrite"):
        sf.montage(tiles, overlap=0.15, progress=False, output=out)
    sf.montage(tiles, overlap=0.15, progress=False, output=out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_failed_render_leaves_nothing_under_the_name(demo_set, tmp_path):
    tiles, _ = demo_set
    calls = {"n": 0}

    def flaky(img):
        def load():
            calls["n"] += 1
            if calls["n"] > 12:  # matching reads each tile once; rendering then fails part-way
                raise OSError("simulated read error")
            return img
        return load

    with pytest.raises(ValueError, match="simulated read error"):
        sf.montage({k: flaky(v) for k, v in tiles.items()}, overlap=0.15, progress=False,
                   output=tmp_path / "x.ome.zarr", chunk=256, threads=1)
    assert list(tmp_path.iterdir()) == []


def test_bad_input(flat_grid, tmp_path):
    tiles, _ = flat_grid
    a = tiles[(0, 0)]
    with pytest.raises(TypeError, match="dict"):
        sf.montage([a, a])
    with pytest.raises(ValueError, match="empty"):
        sf.montage({})
    with pytest.raises(ValueError, match=r"\(row, col\)"):
        sf.montage({"a": a, "b": a})
    with pytest.raises(ValueError, match="between 0 and 1"):
        sf.montage({(0, 0): a, (0, 1): a}, overlap=15)
    with pytest.raises(ValueError, match="model"):
        sf.montage({(0, 0): a, (0, 1): a}, model="projective")
    with pytest.raises(ValueError, match="mixed dtypes"):
        sf.montage({(0, 0): a, (0, 1): (tiles[(0, 1)] * 1000).astype(np.uint16)}, overlap=0.2, progress=False)
    with pytest.raises(FileNotFoundError, match=r"tile \(0, 1\)"):
        sf.montage({(0, 0): a, (0, 1): tmp_path / "missing.tif"}, progress=False)
    nan = a.copy()
    nan[5, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sf.montage({(0, 0): a, (0, 1): nan}, progress=False)
    with pytest.raises(ValueError, match="output format"):
        sf.montage({(0, 0): a, (0, 1): tiles[(0, 1)]}, overlap=0.2, progress=False, output=tmp_path / "x.png")


def test_single_tile_is_the_identity(flat_grid):
    tiles, _ = flat_grid
    res = sf.montage({(0, 0): tiles[(0, 0)]}, progress=False)
    np.testing.assert_array_equal(np.asarray(res.transforms[(0, 0)]), np.asarray(sf.Affine()))
    np.testing.assert_allclose(res.image, tiles[(0, 0)], rtol=0, atol=1e-6)


def _phase_correlation_offset(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Independent estimate of where b's (0, 0) lies in a's frame, (x, y), for b right of a: a full-image
    phase correlation for the integer offset, then skimage's upsampled DFT on the overlap."""
    from skimage.registration import phase_cross_correlation

    fa, fb = np.fft.fft2(a - a.mean()), np.fft.fft2(b - b.mean())
    cross = fa * np.conj(fb)
    corr = np.fft.ifft2(cross / np.maximum(np.abs(cross), 1e-12)).real
    iy, ix = np.unravel_index(np.argmax(corr), corr.shape)
    dy = iy if iy < a.shape[0] // 2 else iy - a.shape[0]
    dx = int(ix)  # b lies to the right of a: the cyclic lag is taken in [0, width)
    # b's pixel (x, y) shows a's (x + dx, y + dy). Refine on the overlap only.
    ya0, yb0 = max(0, dy), max(0, -dy)
    h = min(a.shape[0] - ya0, b.shape[0] - yb0)
    w = a.shape[1] - dx
    sub_a = a[ya0:ya0 + h, dx:dx + w]
    sub_b = b[yb0:yb0 + h, :w]
    # skimage's shift s registers sub_b onto sub_a: sub_a(x) = sub_b(x - s), and
    # sub_b(x) = sub_a(x + e) for the residual e of the integer offset, so e = s.
    shift, _, _ = phase_cross_correlation(sub_a, sub_b, upsample_factor=100)
    return np.array([dx + shift[1], dy + shift[0]])


def test_phase_correlation_oracle_itself(photo):
    from conftest import fourier_shift

    moved = fourier_shift(photo, -0.3, 0.4)       # moved(x, y) = photo(x + 0.3, y - 0.4)
    a = photo[400:1000, 300:900]
    b = moved[406:1006, 600:1200]                  # b's (u, v) shows a's (u + 300.3, v + 5.6)
    np.testing.assert_allclose(_phase_correlation_offset(a, b), (300.3, 5.6), atol=0.02)


def test_yfp_tiles_offset_and_seam(yfp_tiles):
    left, right = yfp_tiles
    truth = _phase_correlation_offset(left, right)
    res = sf.montage({(0, 0): SHARED_DATA / YFP_TILES[0], (0, 1): SHARED_DATA / YFP_TILES[1]},
                     overlap=0.25, model="rigid", progress=False)
    found = np.asarray(res.transforms[(0, 1)])[:, 2]
    assert np.all(np.abs(found - truth) < 0.5), (found, truth)
    # No seam: inside the overlap each tile, rendered alone, predicts the other
    # up to the tiles' own gain difference (fitted out), to a few % of the
    # contrast, and better than with the tiles misplaced by 2 px.
    def misfit(shift_x: float) -> float:
        tf = dict(res.transforms)
        tf[(0, 1)] = sf.Affine(tf[(0, 1)]).shifted((shift_x, 0))
        r = sf.Renderer(affine=tf, tilesize=res.tile_sizes, blend=0)
        img_l, cov_l = r.render_region(r.rect, {(0, 0): left}, coverage=True)
        img_r, cov_r = r.render_region(r.rect, {(0, 1): right}, coverage=True)
        both = cov_l & cov_r
        both[:, :5] = both[:, -5:] = False
        lv, rv = img_l[both].astype(float), img_r[both].astype(float)
        gain = np.polyfit(rv, lv, 1)
        contrast = np.percentile(lv, 99) - np.percentile(lv, 1)
        return float(np.sqrt(np.mean((lv - np.polyval(gain, rv)) ** 2)) / contrast)

    aligned = misfit(0.0)
    assert aligned < 0.06
    assert aligned < misfit(2.0)
    # The blended montage itself is continuous across the overlap's edges.
    img = res.image
    cols = np.flatnonzero(res.renderer().render_region(res.canvas, {(0, 1): right}, coverage=True)[1].any(0))
    edge = cols.min()
    step = np.abs(img[:, edge + 1].astype(float) - img[:, edge - 1]).mean()
    typical = np.abs(img[:, edge - 20].astype(float) - img[:, edge - 22]).mean()
    assert step < 2 * typical
