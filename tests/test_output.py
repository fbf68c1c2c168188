"""Output writers: OME-Zarr (chunked, pyramid, atomic), TIFF, JSON, on real image content."""
from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from output_oracle import (block_mean_oracle, pyramid_oracle, write_chunks_in_child,
                           write_with_pickled_writer)
from spectralign_fast.io import (OmeZarrWriter, chunk_grid, downsample, read_ome_zarr,
                                     tiff_needs_bigtiff, write_json, write_ome_zarr, write_tiff)

SHAPE = (1100, 1300)


@pytest.fixture(scope="module")
def photo16() -> np.ndarray:
    """1100 x 1300 uint16 from scikit-image's retina photograph (full 16-bit range)."""
    from skimage import data

    g = data.retina().astype(np.float64).mean(axis=-1)  # 1411 x 1411
    return np.rint(g[:SHAPE[0], :SHAPE[1]] * (65535 / 255)).astype(np.uint16)


@pytest.fixture(scope="module")
def photo32(photo16) -> np.ndarray:
    return (photo16.astype(np.float32) / 65535).astype(np.float32)


def region_of(img, calls=None):
    def fn(y0, x0, h, w):
        if calls is not None:
            calls.append((y0, x0, h, w))
        return img[y0:y0 + h, x0:x0 + w]
    return fn


def leftovers(folder: Path, keep=()):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# --- chunk_grid and downsample -----------------------------------------------------

def test_chunk_grid_covers_row_major():
    grid = chunk_grid(SHAPE, 256)
    assert len(grid) == 5 * 6
    assert grid[0] == (0, 0, 256, 256) and grid[5] == (0, 1280, 256, 20) and grid[-1] == (1024, 1280, 76, 20)
    assert grid[6] == (256, 0, 256, 256)  # row-major: second chunk row starts at item 6
    cover = np.zeros(SHAPE, int)
    for y0, x0, h, w in grid:
        cover[y0:y0 + h, x0:x0 + w] += 1
    assert (cover == 1).all()
    assert chunk_grid((10, 7), (4, 5)) == [(0, 0, 4, 5), (0, 5, 4, 2), (4, 0, 4, 5), (4, 5, 4, 2),
                                          (8, 0, 2, 5), (8, 5, 2, 2)]


@pytest.mark.parametrize("shape, chunk, err, msg", [
    ((0, 5), 4, ValueError, ">= 1"), ((5,), 4, ValueError, "pair"), ((5, 5), 0, ValueError, ">= 1"),
    ((5, 5), 2.5, ValueError, "whole number"), ((5, 5), (1, 2, 3), ValueError, "pair"),
    ((5, 5), "a", TypeError, "integer"),
])
def test_chunk_grid_bad(shape, chunk, err, msg):
    with pytest.raises(err, match=msg):
        chunk_grid(shape, chunk)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("factor", [2, 3, 4])
def test_downsample_matches_oracle(photo16, dtype, factor):
    src = photo16[:301, :257]  # odd edges
    if dtype == np.uint8:
        src = (src >> 8).astype(np.uint8)
    elif dtype == np.float32:
        src = src.astype(np.float32) / 65535
    before = src.copy()
    out = downsample(src, factor)
    assert out.dtype == dtype and out.shape == (-(-301 // factor), -(-257 // factor))
    want = block_mean_oracle(src, factor)
    if dtype == np.float32:
        np.testing.assert_allclose(out, want, rtol=1e-6)
    else:
        np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(src, before)


def test_downsample_integer_rounding_and_no_overflow():
    a = np.array([[65535, 65535], [65535, 65534]], np.uint16)
    assert downsample(a, 2)[0, 0] == 65535  # 65534.75: no wrap-around, rounded not truncated
    b = np.array([[1, 2], [2, 2]], np.uint8)  # 1.75 -> 2
    assert downsample(b, 2)[0, 0] == 2
    c = np.array([[1, 2, 5]], np.uint8)  # odd edge: [1, 2] -> 1.5 -> 2 (half to even), [5] -> 5
    np.testing.assert_array_equal(downsample(c, 2), [[2, 5]])
    np.testing.assert_array_equal(downsample(np.array([[7]], np.uint8), 2), [[7]])  # smaller than a block
    np.testing.assert_array_equal(downsample(c.T, 3), [[3]])
    with pytest.raises(TypeError, match="uint8, uint16 or float32"):
        downsample(np.zeros((4, 4)), 2)
    with pytest.raises(ValueError, match="2-D"):
        downsample(np.zeros((4, 4, 3), np.uint8), 2)


# --- OME-Zarr --------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["photo16", "photo32"])
def test_ome_zarr_round_trip_and_pyramid(tmp_path, request, which):
    img = request.getfixturevalue(which)
    before = img.copy()
    calls = []
    out = write_ome_zarr(tmp_path / "m.ome.zarr", img.shape, img.dtype, region_of(img, calls),
                         chunk=256, threads=2)
    assert out == tmp_path / "m.ome.zarr"
    assert leftovers(tmp_path) == ["m.ome.zarr"]  # no temporary store left behind
    assert sorted(calls) == sorted(chunk_grid(img.shape, 256))  # one call per chunk
    # 1300 -> 650 -> 325 -> 163 <= 256: levels 0..3
    want = pyramid_oracle(img, 4)
    for level in range(4):
        got = read_ome_zarr(out, level)
        assert got.dtype == img.dtype and got.shape == want[level].shape
        if img.dtype == np.float32:
            np.testing.assert_allclose(got, want[level], rtol=1e-6)
        else:
            np.testing.assert_array_equal(got, want[level])
    np.testing.assert_array_equal(read_ome_zarr(out), img)
    np.testing.assert_array_equal(img, before)
    with pytest.raises(ValueError, match="levels 0..3"):
        read_ome_zarr(out, 4)


def test_ome_zarr_metadata_follows_ngff_04(tmp_path, photo16):
    out = write_ome_zarr(tmp_path / "m.zarr", SHAPE, np.uint16, region_of(photo16), chunk=256,
                         levels=3, pixel_size=(0.5, 0.25), unit="micrometer", name="montage")
    with open(out / ".zgroup") as f:
        assert json.load(f)["zarr_format"] == 2
    with open(out / ".zattrs") as f:
        attrs = json.load(f)
    (ms,) = attrs["multiscales"]
    assert ms["version"] == "0.4" and ms["name"] == "montage"
    assert ms["axes"] == [{"name": "y", "type": "space", "unit": "micrometer"},
                          {"name": "x", "type": "space", "unit": "micrometer"}]
    assert [d["path"] for d in ms["datasets"]] == ["0", "1", "2"]
    for level, d in enumerate(ms["datasets"]):
        scale, trans = d["coordinateTransformations"]  # NGFF: scale first, then translation
        assert scale == {"type": "scale", "scale": [0.5 * 2**level, 0.25 * 2**level]}
        assert trans["type"] == "translation"
        np.testing.assert_allclose(trans["translation"], [0.5 * (2**level - 1) / 2, 0.25 * (2**level - 1) / 2])
        with open(out / d["path"] / ".zarray") as f:
            za = json.load(f)
        assert za["shape"] == list(pyramid_oracle(np.zeros(SHAPE, np.uint8), 3)[level].shape)
        assert za["dtype"] == "<u2" and za["chunks"] == [256, 256]
    assert not (out / ".spectralign-writer.json").exists()


def test_auto_levels_and_small_levels(tmp_path, photo16):
    w = OmeZarrWriter.create(tmp_path / "a.zarr", SHAPE, "uint16", chunk=256)
    assert w.levels == 4 and w.level_shapes == [(1100, 1300), (550, 650), (275, 325), (138, 163)]
    assert w.level_chunk(3) == (138, 163)  # a chunk never exceeds its level
    w.abort()
    w = OmeZarrWriter.create(tmp_path / "b.zarr", (100, 80), "uint8", chunk=1024)
    assert w.levels == 1
    w.abort()
    with pytest.raises(ValueError, match="too many"):
        OmeZarrWriter.create(tmp_path / "c.zarr", (100, 80), "uint8", levels=9)
    assert leftovers(tmp_path) == []


def test_threads_1_and_2_identical(tmp_path, photo32):
    a = write_ome_zarr(tmp_path / "a.zarr", SHAPE, np.float32, region_of(photo32), chunk=256, threads=1)
    b = write_ome_zarr(tmp_path / "b.zarr", SHAPE, np.float32, region_of(photo32), chunk=256, threads=2)
    for level in range(4):
        np.testing.assert_array_equal(read_ome_zarr(a, level), read_ome_zarr(b, level))


def test_float_regions_into_integer_store_are_rounded(tmp_path, photo16):
    # The renderer returns float32 fill for regions no tile covers.
    def fn(y0, x0, h, w):
        return photo16[y0:y0 + h, x0:x0 + w].astype(np.float32) + 0.3
    out = write_ome_zarr(tmp_path / "m.zarr", SHAPE, np.uint16, fn, chunk=512, levels=1)
    np.testing.assert_array_equal(read_ome_zarr(out), np.minimum(photo16.astype(np.int64), 65535))


class Boom(RuntimeError):
    pass


def failing_on(n, exc, img):
    count = [0]

    def fn(y0, x0, h, w):
        count[0] += 1
        if count[0] == n:
            raise exc
        return img[y0:y0 + h, x0:x0 + w]
    return fn


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("exc", [Boom("render failed"), KeyboardInterrupt(),
                                 OSError(errno.ENOSPC, "No space left on device")])
def test_interrupted_write_leaves_nothing(tmp_path, photo16, threads, exc):
    with pytest.raises(type(exc)) as info:
        write_ome_zarr(tmp_path / "m.ome.zarr", SHAPE, np.uint16, failing_on(5, exc, photo16),
                       chunk=256, threads=threads)
    if isinstance(exc, OSError):
        assert "no space left" in str(info.value) and "m.ome.zarr" in str(info.value)
    assert leftovers(tmp_path) == []


def test_disk_full_inside_zarr_leaves_nothing(tmp_path, photo16, monkeypatch):
    import zarr.storage

    real_set = zarr.storage.LocalStore.set
    count = [0]

    async def set_then_fail(self, key, value):
        count[0] += 1
        if count[0] > 12 + 8:  # 12 metadata writes, then 8 chunks
            raise OSError(errno.ENOSPC, "No space left on device")
        await real_set(self, key, value)

    monkeypatch.setattr(zarr.storage.LocalStore, "set", set_then_fail)
    with pytest.raises(OSError, match="no space left") as info:
        write_ome_zarr(tmp_path / "m.ome.zarr", SHAPE, np.uint16, region_of(photo16), chunk=256)
    assert info.value.errno == errno.ENOSPC
    assert leftovers(tmp_path) == []


def test_existing_output_refused_and_overwritten(tmp_path, photo16):
    path = tmp_path / "m.ome.zarr"
    write_ome_zarr(path, SHAPE, np.uint16, region_of(photo16), chunk=512)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_ome_zarr(path, SHAPE, np.uint16, region_of(photo16), chunk=512)
    flipped = np.ascontiguousarray(photo16[::-1])
    write_ome_zarr(path, SHAPE, np.uint16, region_of(flipped), chunk=512, overwrite=True)
    np.testing.assert_array_equal(read_ome_zarr(path), flipped)
    assert leftovers(tmp_path) == ["m.ome.zarr"]


def test_failed_overwrite_keeps_old_output(tmp_path, photo16):
    path = tmp_path / "m.ome.zarr"
    write_ome_zarr(path, SHAPE, np.uint16, region_of(photo16), chunk=256)
    zeros = np.zeros(SHAPE, np.uint16)
    with pytest.raises(Boom):
        write_ome_zarr(path, SHAPE, np.uint16, failing_on(20, Boom("late failure"), zeros),
                       chunk=256, overwrite=True, threads=2)
    np.testing.assert_array_equal(read_ome_zarr(path), photo16)
    np.testing.assert_array_equal(read_ome_zarr(path, 2), pyramid_oracle(photo16, 3)[2])
    assert leftovers(tmp_path) == ["m.ome.zarr"]


def test_writer_chunk_by_chunk_and_commit_rules(tmp_path, photo16):
    path = tmp_path / "m.ome.zarr"
    w = OmeZarrWriter.create(path, SHAPE, np.uint16, chunk=256, levels=2)
    assert w.tmp_path.parent == tmp_path and w.tmp_path.name.startswith("m.ome.zarr.partial-")
    assert not path.exists()
    gy, gx = w.grid_shape(0)
    with pytest.raises(ValueError, match="shape"):
        w.write_chunk(0, 0, photo16[:255, :256])
    with pytest.raises(ValueError, match="outside"):
        w.write_chunk(gy, 0, photo16[:256, :256])
    with pytest.raises(ValueError, match="NaN or inf"):
        w.write_chunk(0, 0, np.full((256, 256), np.nan, np.float32))
    with pytest.raises(ValueError, match="outside the range"):
        w.write_chunk(0, 0, np.full((256, 256), -1, np.int32))
    with pytest.raises(RuntimeError, match="not been written"):
        w.build_chunk(1, 0, 0)
    for k, (y0, x0, h, wd) in enumerate(w.grid(0)):
        w.write_chunk(k // gx, k % gx, photo16[y0:y0 + h, x0:x0 + wd])
    w.write_chunk(1, 1, photo16[256:512, 256:512])  # a re-run task overwrites its chunk whole
    with pytest.raises(RuntimeError, match="not written yet"):
        w.commit()  # level 1 still missing
    assert not path.exists()
    gy1, gx1 = w.grid_shape(1)
    for cy in range(gy1):
        for cx in range(gx1):
            w.build_chunk(1, cy, cx)
    assert w.commit() == path
    np.testing.assert_array_equal(read_ome_zarr(path, 1), block_mean_oracle(photo16, 2))
    assert leftovers(tmp_path) == ["m.ome.zarr"]
    with pytest.raises(FileNotFoundError, match="committed or aborted"):
        OmeZarrWriter.open(w.tmp_path)


def test_commit_refuses_path_that_appeared(tmp_path):
    path = tmp_path / "m.zarr"
    w = OmeZarrWriter.create(path, (20, 20), np.uint8, chunk=16)
    w.write_chunk(0, 0, np.ones((16, 16), np.uint8))
    w.write_chunk(0, 1, np.ones((16, 4), np.uint8))
    w.write_chunk(1, 0, np.ones((4, 16), np.uint8))
    w.write_chunk(1, 1, np.ones((4, 4), np.uint8))
    w.build_chunk(1, 0, 0)
    path.mkdir()
    (path / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        w.commit()
    assert (path / "precious.txt").read_text() == "keep me"
    w.abort()
    assert leftovers(tmp_path) == ["m.zarr"]


@pytest.mark.parametrize("pickled", [False, True])
def test_separate_process_writes_into_the_same_store(tmp_path, photo16, pickled):
    w = OmeZarrWriter.create(tmp_path / "m.ome.zarr", SHAPE, np.uint16, chunk=256)
    gy, gx = w.grid_shape(0)
    cells = [(cy, cx) for cy in range(gy) for cx in range(gx)]
    half = len(cells) // 2
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        if pickled:
            assert pickle.loads(pickle.dumps(w)).tmp_path == w.tmp_path
            n = pool.apply(write_with_pickled_writer, (w, cells[:half], photo16))
        else:
            n = pool.apply(write_chunks_in_child, (str(w.tmp_path), cells[:half], photo16))
    assert n == half
    ch, cw = w.chunk
    for cy, cx in cells[half:]:
        w.write_chunk(cy, cx, photo16[cy * ch:(cy + 1) * ch, cx * cw:(cx + 1) * cw])
    for level in range(1, w.levels):
        ly, lx = w.grid_shape(level)
        for cy in range(ly):
            for cx in range(lx):
                w.build_chunk(level, cy, cx)
    out = w.commit()
    for level, want in enumerate(pyramid_oracle(photo16, 4)):
        np.testing.assert_array_equal(read_ome_zarr(out, level), want)


@pytest.mark.parametrize("kwargs, err, msg", [
    (dict(path="m.png"), ValueError, r"\.ome\.zarr, \.zarr"),
    (dict(dtype=np.float64), TypeError, "uint8, uint16 or float32"),
    (dict(dtype=np.int16), TypeError, "uint8, uint16 or float32"),
    (dict(shape=(0, 10)), ValueError, ">= 1"),
    (dict(shape=(10, 10, 3)), ValueError, "pair"),
    (dict(chunk=0), ValueError, ">= 1"),
    (dict(levels=0), ValueError, ">= 1"),
    (dict(pixel_size=-1), ValueError, "positive"),
    (dict(unit=3), TypeError, "unit"),
    (dict(path="missing/m.zarr"), FileNotFoundError, "does not exist"),
])
def test_create_bad_arguments(tmp_path, kwargs, err, msg):
    args = dict(path="m.ome.zarr", shape=(100, 100), dtype=np.uint16)
    args.update(kwargs)
    path = tmp_path / args.pop("path")
    with pytest.raises(err, match=msg):
        OmeZarrWriter.create(path, args.pop("shape"), args.pop("dtype"), **args)
    assert leftovers(tmp_path) == []


def test_region_fn_errors_are_clear(tmp_path, photo16):
    with pytest.raises(TypeError, match="region_fn"):
        write_ome_zarr(tmp_path / "m.zarr", SHAPE, np.uint16, "not callable")
    with pytest.raises(ValueError, match="shape"):
        write_ome_zarr(tmp_path / "m.zarr", SHAPE, np.uint16, lambda y0, x0, h, w: photo16[:h, :w + 1])
    with pytest.raises(ValueError, match="NaN"):
        write_ome_zarr(tmp_path / "m.zarr", (64, 64), np.float32,
                       lambda y0, x0, h, w: np.full((h, w), np.nan, np.float32))
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            write_ome_zarr(ro / "m.zarr", (64, 64), np.uint8, lambda *r: np.zeros(r[2:], np.uint8))
        with pytest.raises(PermissionError, match="not writable"):
            write_tiff(ro / "m.tif", np.zeros((64, 64), np.uint8))
        with pytest.raises(PermissionError, match="not writable"):
            write_json(ro / "m.json", {})
    finally:
        ro.chmod(0o755)


def test_progress_bar(tmp_path, photo16, capsys):
    write_ome_zarr(tmp_path / "m.zarr", SHAPE, np.uint16, region_of(photo16), chunk=512, progress=True)
    err = capsys.readouterr().err
    assert "m.zarr" in err and "chunk" in err


# --- TIFF ------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["photo16", "photo32"])
@pytest.mark.parametrize("name", ["m.tif", "m.ome.tiff"])
def test_tiff_round_trip_from_array_and_regions(tmp_path, request, which, name):
    import tifffile

    img = request.getfixturevalue(which)
    before = img.copy()
    a = write_tiff(tmp_path / ("a_" + name), img)
    calls = []
    b = write_tiff(tmp_path / ("b_" + name), img.shape, img.dtype, region_of(img, calls), tile=256,
                   compression="zlib", band_bytes=600 * 256 * img.dtype.itemsize)
    for p in (a, b):
        with tifffile.TiffFile(p) as tif:
            page = tif.pages[0]
            assert page.is_tiled and (page.tilelength, page.tilewidth) == (256, 256)
            assert not tif.is_bigtiff and tif.is_ome == name.endswith(".ome.tiff")
            np.testing.assert_array_equal(page.asarray(), img)
    # bands one tile row high and at most 512 columns (600 cut down to whole tiles)
    assert calls[:3] == [(0, 0, 256, 512), (0, 512, 256, 512), (0, 1024, 256, 276)]
    assert calls[-1] == (1024, 1024, 76, 276)
    np.testing.assert_array_equal(img, before)
    assert leftovers(tmp_path) == sorted(["a_" + name, "b_" + name])


def test_bigtiff_decision():
    limit = 2**32 - 2**25
    # 40000 x 40000 uint16 is 3.2 GB: classic; 50000 x 50000 is 5 GB: BigTIFF.
    assert not tiff_needs_bigtiff((40000, 40000), np.uint16)
    assert tiff_needs_bigtiff((50000, 50000), np.uint16)
    assert tiff_needs_bigtiff((40000, 40000), np.float32)
    # Right at the limit: n tiles of 256 x 256 uint8 plus 8 bytes of offsets each.
    n = limit // (256 * 256 + 8)
    assert not tiff_needs_bigtiff((256, 256 * n), np.uint8)
    assert tiff_needs_bigtiff((256, 256 * (n + 1)), np.uint8)
    # Edge tiles are stored padded: one pixel past a tile boundary costs a whole tile column.
    assert tiff_needs_bigtiff((256, 256 * n + 1), np.uint8)


def test_bigtiff_override(tmp_path, photo16):
    import tifffile

    p = write_tiff(tmp_path / "big.tif", photo16, bigtiff=True)
    with tifffile.TiffFile(p) as tif:
        assert tif.is_bigtiff
        np.testing.assert_array_equal(tif.asarray(), photo16)
    with pytest.raises(ValueError, match="does not fit"):
        write_tiff(tmp_path / "x.tif", (50000, 50000), np.uint16, lambda *r: None, bigtiff=False)


def test_tiff_interrupted_and_existing(tmp_path, photo16):
    path = tmp_path / "m.tif"
    with pytest.raises(Boom):
        write_tiff(path, SHAPE, np.uint16, failing_on(3, Boom("render failed"), photo16), tile=256,
                   band_bytes=1)
    assert leftovers(tmp_path) == []
    write_tiff(path, photo16)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_tiff(path, photo16)
    with pytest.raises(OSError, match="no space left"):
        write_tiff(path, SHAPE, np.uint16,
                   failing_on(2, OSError(errno.ENOSPC, "No space left"), photo16), overwrite=True)
    import tifffile

    np.testing.assert_array_equal(tifffile.imread(path), photo16)  # the old file survived
    write_tiff(path, photo16[::-1], overwrite=True)
    np.testing.assert_array_equal(tifffile.imread(path), photo16[::-1])
    assert leftovers(tmp_path) == ["m.tif"]


@pytest.mark.parametrize("args, kwargs, err, msg", [
    ((np.zeros((64, 64)),), {}, TypeError, "uint8, uint16 or float32"),
    ((np.zeros((4, 64, 64), np.uint8),), {}, ValueError, "2-D"),
    ((np.full((64, 64), np.inf, np.float32),), {}, ValueError, "NaN or inf"),
    (((64, 64), np.uint8, "x"), {}, TypeError, "region_fn"),
    (((64, 64), None, lambda *r: None), {}, TypeError, "dtype"),
    ((np.zeros((64, 64), np.uint8),), {"tile": 100}, ValueError, "multiples of 16"),
    ((np.zeros((64, 64), np.uint8),), {"bigtiff": "yes"}, TypeError, "bigtiff"),
])
def test_tiff_bad_arguments(tmp_path, args, kwargs, err, msg):
    with pytest.raises(err, match=msg):
        write_tiff(tmp_path / "m.tif", *args, **kwargs)
    with pytest.raises(ValueError, match="must end with"):
        write_tiff(tmp_path / "m.png", np.zeros((64, 64), np.uint8))
    assert leftovers(tmp_path) == []


# --- JSON ------------------------------------------------------------------------------------

def test_json_round_trip_and_rules(tmp_path):
    from spectralign_fast import Affine

    path = tmp_path / "transforms.json"
    obj = {"tiles": {"a": Affine([[1, 0, 5.5], [0, 1, -2]])}, "points": np.arange(6.0).reshape(3, 2),
           "snr": np.float32(7.5), "n": np.int64(3)}
    write_json(path, obj)
    with open(path) as f:
        back = json.load(f)
    assert back == {"tiles": {"a": [[1.0, 0.0, 5.5], [0.0, 1.0, -2.0]]},
                    "points": [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]], "snr": 7.5, "n": 3}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_json(path, {})
    with pytest.raises(ValueError, match="NaN or infinity"):
        write_json(path, {"x": float("nan")}, overwrite=True)
    with pytest.raises(TypeError, match="cannot write a object"):
        write_json(path, {"x": object()}, overwrite=True)
    with open(path) as f:
        assert json.load(f) == back  # failed writes left the file alone
    write_json(path, [1, 2], overwrite=True)
    with open(path) as f:
        assert json.load(f) == [1, 2]
    assert leftovers(tmp_path) == ["transforms.json"]
    with pytest.raises(ValueError, match="must end with"):
        write_json(tmp_path / "t.txt", {})


def test_unwritable_folder_message(tmp_path, monkeypatch):
    # Also runs as root, where chmod does not stop writes.
    import spectralign_fast.io.atomic as _io

    monkeypatch.setattr(_io.os, "access", lambda path, mode: False)
    with pytest.raises(PermissionError, match="not writable: .*choose another"):
        OmeZarrWriter.create(tmp_path / "m.zarr", (64, 64), np.uint8)
    with pytest.raises(PermissionError, match="not writable"):
        write_json(tmp_path / "m.json", {})
    assert leftovers(tmp_path) == []


def test_renderer_regions_into_ome_zarr_and_tiff_equal_render_all(tmp_path, camera):
    """The (row, col) region_fn wrapping Renderer.render_region's (x, y, w, h) rectangle,
    as in the README, reproduces the whole canvas chunk by chunk (a swapped x/y or an
    off-by-one chunk would differ by whole grey levels)."""
    import tifffile

    from spectralign_fast import Renderer

    pos = {(r, c): (c * 200 + 0.3 * r, r * 200 - 0.7 * c) for r in range(2) for c in range(2)}
    tiles = {k: np.ascontiguousarray(camera[int(round(y)) % 200:][:300, int(round(x)) % 200:][:300, :300])
             for k, (x, y) in pos.items()}
    r = Renderer(rigid=pos, tilesize=(300, 300), blend=10)
    whole = r.render_all(tiles)
    (x0, y0), (h, w) = r.origin, r.shape
    region = lambda ry, rx, rh, rw: r.render_region((x0 + rx, y0 + ry, rw, rh), tiles)  # noqa: E731
    out = write_ome_zarr(tmp_path / "m.ome.zarr", (h, w), "float32", region, chunk=128, threads=2)
    # render_region re-derives subpixel offsets from each rectangle's origin: float32
    # rounding (~3e-6 here) differs from render_all, nothing more.
    np.testing.assert_allclose(read_ome_zarr(out), whole, rtol=0, atol=1e-5)
    t = write_tiff(tmp_path / "m.tif", (h, w), "float32", region, tile=128)
    np.testing.assert_allclose(tifffile.imread(t), whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_chunks_equal_to_the_fill_value_still_count_as_written(tmp_path, threads):
    """A montage's empty corners render as all-zero chunks; zarr skips such chunks unless told
    otherwise, and then the pyramid and commit() would find them missing."""
    data = np.zeros((700, 900), np.uint16)
    data[300:, 200:] = 1234  # the top rows and the left columns stay empty
    path = write_ome_zarr(tmp_path / "sparse.ome.zarr", data.shape, np.uint16,
                          lambda y, x, h, w: data[y:y + h, x:x + w], chunk=128, threads=threads)
    np.testing.assert_array_equal(read_ome_zarr(path), data)
    np.testing.assert_array_equal(read_ome_zarr(path, 1), downsample(data, 2))
