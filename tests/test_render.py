"""Renderer: accuracy on a real photograph, blending semantics, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from spectralign_fast import Affine, Renderer


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data
    from skimage.color import rgb2gray

    return (rgb2gray(data.astronaut()) * 255).round().astype(np.uint8)  # 512 x 512


def cut_rigid(img, tile, step, n):
    pos, tiles = {}, {}
    for r in range(n):
        for c in range(n):
            pos[(r, c)] = (c * step, r * step)
            tiles[(r, c)] = img[r * step:r * step + tile, c * step:c * step + tile]
    return pos, tiles


def psnr(a, b, peak=255.0):
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return 10 * np.log10(peak ** 2 / mse)


# --- accuracy ----------------------------------------------------------------------

@pytest.mark.parametrize("blend", [0, 10])
def test_rigid_integer_nearest_is_exact(photo, blend):
    pos, tiles = cut_rigid(photo, 200, 156, 3)  # 3 x 3 tiles covering 512 x 512
    r = Renderer(rigid=pos, tilesize=(200, 200), blend=blend, interpolation="nearest")
    assert r.shape == photo.shape and r.origin == (0.0, 0.0)
    out = r.render_all(tiles)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, photo)
    assert r.coverage.all()
    # Incremental rendering agrees, in any order.
    r2 = Renderer(rigid=pos, tilesize=(200, 200), blend=blend, interpolation="nearest")
    for t in reversed(list(tiles)):
        r2.render(t, tiles[t])
    np.testing.assert_array_equal(r2.image, photo)


def test_rigid_integer_linear_float_is_exact_with_hard_seams(photo):
    img = photo.astype(np.float32)
    pos, tiles = cut_rigid(img, 200, 156, 3)
    out = Renderer(rigid=pos, tilesize=(200, 200), blend=0).render_all(tiles)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, img)


def affine_tiles(img, n=3, tile=220, seed=0):
    """Tiles sampled from img through known transforms (tile -> model = img)."""
    from scipy.ndimage import map_coordinates

    rng = np.random.default_rng(seed)
    src = img.astype(np.float64)
    step = (img.shape[0] - tile) / (n - 1)
    afms, tiles = {}, {}
    yy, xx = np.mgrid[0:tile, 0:tile].astype(np.float64)
    for r in range(n):
        for c in range(n):
            ang = np.deg2rad(rng.uniform(-2, 2))
            s = rng.uniform(0.98, 1.02)
            A = s * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
            centre_model = np.array([c * step + tile / 2, r * step + tile / 2])
            b = centre_model - A @ np.array([tile / 2, tile / 2])
            T = Affine(np.hstack([A, b[:, None]]))
            X = A[0, 0] * xx + A[0, 1] * yy + b[0]
            Y = A[1, 0] * xx + A[1, 1] * yy + b[1]
            tiles[(r, c)] = map_coordinates(src, [Y, X], order=3, mode="reflect").astype(np.float32)
            afms[(r, c)] = T
    return afms, tiles


@pytest.mark.parametrize("interpolation, min_db", [("cubic", 40.0), ("linear", 40.0)])
def test_affine_true_transforms_reproduce_photo(photo, interpolation, min_db):
    from scipy.ndimage import gaussian_filter

    # The photograph, slightly low-passed (sigma 0.7 px) so that resampling it
    # twice (cutting the tiles, then rendering) is not dominated by aliasing.
    img = gaussian_filter(photo.astype(np.float64), 0.7).astype(np.float32)
    afms, tiles = affine_tiles(img)
    r = Renderer(affine=afms, tilesize=(220, 220), clip=(0, 0, 512, 512), blend=10,
                 interpolation=interpolation)
    out = r.render_all(tiles)
    inner = (slice(24, -24), slice(24, -24))  # covered interior
    assert r.coverage[inner].all()
    assert psnr(out[inner], img[inner]) >= min_db


def test_affine_unsmoothed_photo_cubic(photo):
    # The raw photograph: cutting the tiles (cubic spline) and rendering them
    # back resamples it twice; Catmull-Rom keeps that above 40 dB
    # (linear gives about 37 dB here, see bench/RESULTS_render.md).
    afms, tiles = affine_tiles(photo.astype(np.float32))
    out = Renderer(affine=afms, tilesize=(220, 220), clip=(0, 0, 512, 512),
                   interpolation="cubic").render_all(tiles)
    inner = (slice(24, -24), slice(24, -24))
    assert psnr(out[inner], photo[inner]) >= 40.0


def test_subpixel_rigid_position_is_kept():
    img = np.arange(40, dtype=np.float32).reshape(4, 10) * 2
    r = Renderer(rigid={"a": (0.0, 0.0), "b": (0.5, 0.0)}, tilesize=(10, 4), blend=0)
    assert r.shape == (4, 11)  # union of [-0.5, 9.5) and [0, 10)
    out = r.render_region((0.5, 1, 9, 1), {"b": img})
    # Model x = 0.5 + j is tile b's pixel j exactly.
    np.testing.assert_allclose(out[0], img[1, :9])
    out = r.render_region((1.0, 1, 8, 1), {"b": img})
    np.testing.assert_allclose(out[0], (img[1, :8] + img[1, 1:9]) / 2)


# --- blending -------------------------------------------------------------------

def two_flat_tiles(dtype=np.float32):
    pos = {"left": (0, 0), "right": (60, 0)}
    tiles = {"left": np.full((50, 100), 0, dtype), "right": np.full((50, 100), 100, dtype)}
    return pos, tiles


def test_feathering_is_a_monotone_ramp_and_order_free():
    pos, tiles = two_flat_tiles()
    r = Renderer(rigid=pos, tilesize=(100, 50), blend=10)
    out = r.render_all(tiles)
    row = out[25]
    assert np.all(row[:50] == 0)
    np.testing.assert_allclose(row[110:], 100, rtol=1e-6)
    assert np.all(np.diff(row) >= -1e-4)
    np.testing.assert_allclose(row[79] + row[80], 100, atol=1e-3)  # symmetric
    for order in (["left", "right"], ["right", "left"]):
        r.clear()
        for t in order:
            r.render(t, tiles[t])
        np.testing.assert_allclose(r.image, out, atol=1e-4)


def test_hard_seams_nearest_centre_wins():
    pos, tiles = two_flat_tiles()
    out = Renderer(rigid=pos, tilesize=(100, 50), blend=0).render_all(tiles)
    # Centres at x = 49.5 and 109.5: the seam is at x = 79.5.
    assert np.all(out[:, :80] == 0) and np.all(out[:, 80:] == 100)


def test_threads_give_identical_results(photo):
    afms, tiles = affine_tiles(photo.astype(np.float32))
    r = Renderer(affine=afms, tilesize=(220, 220))
    a = r.render_all(tiles, threads=1)
    b = r.render_all(tiles, threads=2)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_output_dtype_follows_input(dtype):
    pos = {0: (0, 0), 1: (30.25, 10.5)}
    tiles = {k: np.full((40, 50), 200, dtype) for k in pos}
    r = Renderer(rigid=pos, tilesize=(50, 40), interpolation="cubic")
    out = r.render_all(tiles)
    assert out.dtype == (np.float32 if dtype == np.float64 else dtype)
    np.testing.assert_allclose(out[r.coverage], 200, rtol=1e-6)
    assert np.all(out[~r.coverage] == 0)


def test_fill_coverage_and_masks():
    afms = {0: Affine(), 1: Affine([[np.cos(0.3), -np.sin(0.3), 30], [np.sin(0.3), np.cos(0.3), 5]])}
    r = Renderer(affine=afms, tilesize=(40, 30), fill=7)
    tiles = {k: np.ones((30, 40), np.float32) for k in afms}
    out = r.render_all(tiles)
    union, inter = r.unionmask(), r.intersectionmask()
    np.testing.assert_array_equal(r.coverage, union)
    assert inter.sum() < union.sum() and not (inter & ~union).any()
    assert np.all(out[~union] == 7) and np.allclose(out[union], 1)
    r.clear()
    r.render(0, tiles[0])
    assert np.all(r.image[~r.coverage] == 7)


def test_clip_true_is_the_intersection():
    pos = {0: (0, 0), 1: (30, 10), 2: (10, 25)}
    r = Renderer(rigid=pos, tilesize=(60, 50), clip=True)
    assert r.rect == (30.0, 25.0, 30, 25)
    assert r.intersectionmask().all()
    r = Renderer(rigid=pos, tilesize=(60, 50), clip=(5, 6, 20, 10))
    assert r.rect == (5.0, 6.0, 20, 10)


def test_render_region_chunks_match_whole_and_load_only_overlapping(photo):
    pos, tiles = cut_rigid(photo, 200, 156, 3)
    r = Renderer(rigid=pos, tilesize=(200, 200), blend=10)
    whole = r.render_all(tiles)
    loaded = []

    def loader(t):
        def load():
            loaded.append(t)
            return tiles[t]
        return load

    lazy = {t: loader(t) for t in tiles}
    chunk = r.render_region((0, 0, 150, 150), lazy)
    np.testing.assert_array_equal(chunk, whole[:150, :150])
    assert loaded == [(0, 0)]
    pieces = [[r.render_region((x, y, 128, 128), lazy) for x in range(0, 512, 128)]
              for y in range(0, 512, 128)]
    np.testing.assert_array_equal(np.block(pieces), whole)


def test_affine_region_matches_whole(photo):
    afms, tiles = affine_tiles(photo.astype(np.float32))
    r = Renderer(affine=afms, tilesize=(220, 220))
    whole = r.render_all(tiles)
    x0, y0 = r.origin
    part, mask = r.render_region((x0 + 100, y0 + 50, 300, 200), tiles, coverage=True)
    np.testing.assert_allclose(part, whole[50:250, 100:400], atol=0.02)
    np.testing.assert_array_equal(mask, r.coverage[50:250, 100:400])


# --- bad input ---------------------------------------------------------------------

def test_bad_construction():
    with pytest.raises(ValueError, match="exactly one"):
        Renderer(tilesize=(10, 10))
    with pytest.raises(ValueError, match="exactly one"):
        Renderer(rigid={0: (0, 0)}, affine={0: Affine()}, tilesize=(10, 10))
    with pytest.raises(ValueError, match="tilesize is required"):
        Renderer(rigid={0: (0, 0)})
    with pytest.raises(ValueError, match="no entry for tile 1"):
        Renderer(rigid={0: (0, 0), 1: (5, 0)}, tilesize={0: (10, 10)})
    with pytest.raises(ValueError, match="finite"):
        Renderer(rigid={0: (np.nan, 0)}, tilesize=(10, 10))
    with pytest.raises(ValueError, match="finite"):
        Renderer(affine={0: [[1, 0, 0], [0, np.nan, 0]]}, tilesize=(10, 10))
    with pytest.raises(ValueError, match="singular"):
        Renderer(affine={0: [[1, 2, 0], [2, 4, 0]]}, tilesize=(10, 10))
    with pytest.raises(ValueError, match="absurdly large"):
        Renderer(rigid={0: (0, 0), 1: (1e12, 0)}, tilesize=(10, 10))
    with pytest.raises(ValueError, match="empty"):
        Renderer(rigid={0: (0, 0)}, tilesize=(10, 10), clip=(0, 0, 0, 5))
    with pytest.raises(ValueError, match="no common intersection"):
        Renderer(rigid={0: (0, 0), 1: (50, 0)}, tilesize=(10, 10), clip=True)
    with pytest.raises(ValueError, match="interpolation"):
        Renderer(rigid={0: (0, 0)}, tilesize=(10, 10), interpolation="lanczos")
    with pytest.raises(ValueError, match="blend"):
        Renderer(rigid={0: (0, 0)}, tilesize=(10, 10), blend=-1)


def test_bad_render_input():
    r = Renderer(rigid={0: (0, 0), 1: (5, 0)}, tilesize=(10, 8))
    with pytest.raises(KeyError, match="no transform"):
        r.render(2, np.zeros((8, 10), np.float32))
    with pytest.raises(ValueError, match="tilesize"):
        r.render(0, np.zeros((10, 8), np.float32))
    for dt in (np.int32, bool, np.complex64, np.int16):
        with pytest.raises(TypeError, match="uint8, uint16 or"):
            r.render(0, np.zeros((8, 10), dt))
    r.render(0, np.zeros((8, 10), np.uint8))
    with pytest.raises(ValueError, match="one dtype"):
        r.render(1, np.zeros((8, 10), np.uint16))
    with pytest.raises(ValueError, match="one dtype"):
        r.render_all({0: np.zeros((8, 10), np.uint8), 1: np.zeros((8, 10), np.float32)})
    with pytest.raises(ValueError, match="whole number|>= 1"):
        r.render_region((0, 0, 0, 5), {0: np.zeros((8, 10), np.uint8)})


def test_absurd_canvas_refused_before_allocating():
    r = Renderer(rigid={0: (0, 0), 1: (3e6, 3e6)}, tilesize=(10, 10))
    with pytest.raises(ValueError, match="GB.*render_region"):
        r.render(0, np.zeros((10, 10), np.float32))
    with pytest.raises(ValueError, match="GB"):
        r.render_all({0: np.zeros((10, 10), np.float32)})
    with pytest.raises(ValueError, match="GB"):
        r.unionmask()
    # A chunk of the same canvas is fine.
    out = r.render_region((0, 0, 16, 16), {0: np.ones((10, 10), np.float32)})
    assert out.shape == (16, 16) and out[:10, :10].min() == 1


def test_inputs_never_modified(photo):
    pos, tiles = cut_rigid(photo, 200, 156, 3)
    copies = {t: a.copy() for t, a in tiles.items()}
    pos_copy = dict(pos)
    r = Renderer(rigid=pos, tilesize=(200, 200))
    r.render_all(tiles)
    for t in tiles:
        r.render(t, tiles[t]) if False else None
    r.clear()
    for t in tiles:
        r.render(t, tiles[t])
    _ = r.image
    for t in tiles:
        np.testing.assert_array_equal(tiles[t], copies[t])
    assert pos == pos_copy


def test_noncontiguous_views_are_accepted(photo):
    pos, tiles = cut_rigid(photo, 200, 156, 3)  # tiles are strided views
    flipped = {t: a[:, ::-1] for t, a in tiles.items()}
    r = Renderer(rigid=pos, tilesize=(200, 200), interpolation="nearest", blend=0)
    out = r.render_all({t: np.ascontiguousarray(a) for t, a in flipped.items()})
    np.testing.assert_array_equal(r.render_all(flipped), out)


def bilinear_oracle(tile: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear samples of `tile` at (u, v) with reads clamped to the tile
    (replicated edges), in float64: independent of the C++ kernels."""
    h, w = tile.shape
    x0 = np.floor(u).astype(int)
    y0 = np.floor(v).astype(int)
    fx, fy = u - x0, v - y0
    xa, xb = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    ya, yb = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    t = tile.astype(np.float64)
    top = t[ya, xa] + fx * (t[ya, xb] - t[ya, xa])
    bottom = t[yb, xa] + fx * (t[yb, xb] - t[yb, xa])
    return top + fy * (bottom - top)


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
@pytest.mark.parametrize("angle_deg, scale", [(1.3, 1.01), (-2.0, 0.98), (0.4, 1.0), (30.0, 1.2)])
def test_affine_linear_samples_equal_numpy_bilinear(photo, dtype, angle_deg, scale):
    """Every output pixel of one affinely placed tile (hard seams: the value
    itself) equals NumPy's bilinear sample at the inverse-mapped point,
    edges included: checks the span kernel that serves near-identity
    transforms and the general path that serves the rest."""
    tile = photo[40:240, 60:300].astype(dtype)
    A = Affine.rotator(np.radians(angle_deg), (120, 100)) @ Affine.scaler(scale, (120, 100))
    A = A.shifted((3.37, -2.61))
    r = Renderer(affine={"t": A}, tilesize=(tile.shape[1], tile.shape[0]), blend=0)
    out = np.asarray(r.render_all({"t": tile}), dtype=np.float64)
    cov = r.coverage
    x0, y0 = r.rect[0], r.rect[1]
    yy, xx = np.nonzero(cov)
    pts = A.inverse() * np.vstack([xx + x0, yy + y0]).astype(np.float64)
    ref = bilinear_oracle(tile, pts[0], pts[1])
    if dtype == np.uint16:
        ref = np.clip(np.floor(ref + 0.5), 0, 65535)
        assert np.abs(out[yy, xx] - ref).max() <= 1
    else:
        # float32 coordinates: worst seen 0.0018 on this 0..255 photo
        np.testing.assert_allclose(out[yy, xx], ref, atol=0.005, rtol=0)
    assert cov.sum() > 0.9 * tile.size * scale**2 * 0.9


def test_affine_linear_default_on_unfiltered_retina_photo():
    """Default (linear) interpolation on a raw real photograph: scikit-image's
    retina, 512 x 512 crop. How close a twice-resampled image comes to the
    original depends on its sharpness (see bench/RESULTS.md): about 59 dB
    here, 35-37 dB on the sharpest bundled photos (camera, coffee, astronaut)."""
    from skimage import data
    from skimage.color import rgb2gray

    img = (rgb2gray(data.retina()[300:812, 300:812]) * 255).astype(np.float32)
    afms, tiles = affine_tiles(img)
    out = Renderer(affine=afms, tilesize=(220, 220), clip=(0, 0, 512, 512)).render_all(tiles)
    inner = (slice(24, -24), slice(24, -24))
    assert psnr(out[inner], img[inner]) >= 40.0


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nonfinite_tiles_are_refused(value):
    tile = np.ones((20, 30), np.float32)
    bad = tile.copy()
    bad[3, 4] = value
    r = Renderer(rigid={"a": (0, 0), "b": (25, 0)}, tilesize=(30, 20))
    with pytest.raises(ValueError, match="NaN or inf"):
        r.render_all({"a": tile, "b": bad})
    with pytest.raises(ValueError, match="NaN or inf"):
        r.render("b", bad[:, :])
    strided = np.ones((20, 60), np.float32)[:, ::2]  # a view with strided columns is copied first
    strided_bad = strided.copy()
    strided_bad[0, 0] = value
    with pytest.raises(ValueError, match="NaN or inf"):
        Renderer(rigid={"a": (0, 0)}, tilesize=(30, 20)).render_all({"a": strided_bad})
    assert np.isfinite(Renderer(rigid={"a": (0, 0)}, tilesize=(30, 20)).render_all({"a": strided})).all()


def test_unpickled_arrays_render():
    # An unpickled array has its own dtype object (as on a Dask worker); it must still be recognised.
    import pickle

    rng = np.random.default_rng(0)
    for dtype in (np.uint8, np.uint16, np.float32):
        a = (rng.random((40, 50)) * 200).astype(dtype)
        b = pickle.loads(pickle.dumps(a))
        r = Renderer(rigid={0: (0.25, 0.5)}, tilesize=(50, 40), threads=1)
        np.testing.assert_array_equal(r.render_all({0: b}), r.render_all({0: a}))


# --- Reliability: render() from several threads (issue "Reliability", finding 14) ----------


def test_render_from_several_threads_equals_sequential(photo):
    import threading

    rng = np.random.default_rng(4)
    tiles = {k: photo[20 * k:20 * k + 300, 15 * k:15 * k + 320].astype(np.float32) for k in range(8)}
    affine = {k: Affine([[1.0, 0.01 * k, 35.0 * k], [-0.01 * k, 1.0, 20.0 * k]]) for k in tiles}
    order = rng.permutation(list(tiles))
    seq = Renderer(affine=affine, tilesize=(320, 300), blend=0)
    for k in sorted(tiles):
        seq.render(k, tiles[k])
    for attempt in range(3):
        par = Renderer(affine=affine, tilesize=(320, 300), blend=0, threads=1)
        barrier = threading.Barrier(len(tiles))
        errors = []

        def work(k):
            try:
                barrier.wait()
                par.render(k, tiles[k])
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(int(k),)) for k in order]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        # Hard seams are independent of the order of the tiles, so any interleaving equals the sequence.
        np.testing.assert_array_equal(par.image, seq.image)
        np.testing.assert_array_equal(par.coverage, seq.coverage)


@pytest.mark.parametrize("blend", [0, 10])
def test_render_all_coverage_bit_mask_matches_bool_mask(blend):
    # render_all keeps its coverage packed (1 bit per pixel) until .coverage is read;
    # the unpacked mask must equal the bool mask render_region gives for the whole
    # canvas, on a width that is not a multiple of 8.
    import pickle

    rng = np.random.default_rng(7)
    tf = {(0, 0): Affine([[1.0, 0.0, 0.3], [0.0, 1.0, 0.0]]),
          (0, 1): Affine([[0.999, -0.02, 61.7], [0.02, 0.999, 3.2]]),
          (1, 0): Affine([[1.004, 0.01, 2.5], [-0.01, 1.004, 48.9]])}
    imgs = {k: rng.random((57, 70), dtype=np.float32) for k in tf}
    r = Renderer(affine=tf, tilesize=(70, 57), blend=blend)
    assert r.shape[1] % 8 != 0
    img = r.render_all(imgs)
    assert r.image is img and r._coverage is None  # reading the image does not unpack
    clone = pickle.loads(pickle.dumps(r))
    ref_img, ref_cov = r.render_region(r.rect, imgs, coverage=True)
    np.testing.assert_array_equal(img, ref_img)
    for rr in (r, clone):
        cov = rr.coverage
        assert cov.dtype == bool and cov.shape == r.shape
        np.testing.assert_array_equal(cov, ref_cov)
    assert 0 < ref_cov.sum() < ref_cov.size
