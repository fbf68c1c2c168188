"""Multi-channel OME-Zarr and pyramidal OME-TIFF output (io.channels): round trips, the
pyramid, block-by-block streaming, atomic writes and the errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import zarr

import spectralign_fast.io.channels as channels_module
from spectralign_fast.io import ChannelImage, downsample, read_channels, write_channels

NAMES = ["DAPI", "CD3", "Ki-67 (rabbit)"]
SHAPE = (150, 100)


@pytest.fixture(scope="module")
def planes() -> np.ndarray:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    base = np.stack([np.sin(yy / 7.0 + c) * np.cos(xx / 5.0 - c) for c in range(3)])
    return np.clip(30000 + 25000 * base + rng.normal(0, 500, base.shape), 0, 65535).astype(np.uint16)


def source(planes: np.ndarray, calls: list | None = None):
    def region(c, y0, x0, h, w):
        if calls is not None:
            calls.append((c, y0, x0, h, w))
        return planes[c, y0:y0 + h, x0:x0 + w]
    return region


def pyramid(stack: np.ndarray, levels: int):
    out = [stack]
    for _ in range(levels - 1):
        out.append(np.stack([downsample(p, 2) for p in out[-1]]))
    return out


@pytest.mark.parametrize("name", ["m.ome.zarr", "m.ome.tif"])
def test_round_trip_with_names_pixel_size_and_pyramid(tmp_path, planes, name):
    out = write_channels(tmp_path / name, SHAPE, np.uint16, NAMES, source(planes), pixel_size=(0.5, 0.25),
                         chunk=64, tile=32)
    assert out == tmp_path / name
    back = read_channels(out)
    assert isinstance(back, ChannelImage)
    np.testing.assert_array_equal(back.data, planes)
    assert back.channels == NAMES and back.pixel_size == (0.5, 0.25) and back.unit == "micrometer"
    # Levels until the largest side fits in one chunk (Zarr, 64) or one tile (TIFF, 32).
    expected_levels = 3 if name.endswith("zarr") else 4
    assert back.levels == expected_levels
    for lv, want in enumerate(pyramid(planes, expected_levels)):
        got = read_channels(out, level=lv)
        assert got.data.shape == want.shape == (3, -(-SHAPE[0] // 2**lv), -(-SHAPE[1] // 2**lv))
        np.testing.assert_array_equal(got.data, want)
        assert got.pixel_size == (0.5 * 2**lv, 0.25 * 2**lv) and got.channels == NAMES
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporaries left


def test_ome_zarr_metadata(tmp_path, planes):
    out = write_channels(tmp_path / "m.zarr", SHAPE, np.uint16, NAMES, source(planes), pixel_size=0.5,
                         unit="nanometer", chunk=64)
    attrs = json.loads((out / ".zattrs").read_text())
    (ms,) = attrs["multiscales"]
    assert ms["version"] == "0.4"
    assert ms["axes"] == [{"name": "c", "type": "channel"}, {"name": "y", "type": "space", "unit": "nanometer"},
                          {"name": "x", "type": "space", "unit": "nanometer"}]
    for lv, d in enumerate(ms["datasets"]):
        scale, trans = d["coordinateTransformations"]
        assert scale == {"type": "scale", "scale": [1.0, 0.5 * 2**lv, 0.5 * 2**lv]}
        assert trans == {"type": "translation", "translation": [0.0] + [0.5 * (2**lv - 1) / 2] * 2}
    omero = attrs["omero"]
    assert [c["label"] for c in omero["channels"]] == NAMES
    assert all(c["window"]["start"] == 0 and c["window"]["end"] == 65535 for c in omero["channels"])
    arr = zarr.open_array(out / "0", mode="r")
    assert arr.chunks == (1, 64, 64) and arr.dtype == np.uint16


def test_ome_tiff_layout_is_a_subifd_pyramid(tmp_path, planes):
    out = write_channels(tmp_path / "m.ome.tiff", SHAPE, np.uint16, NAMES, source(planes), pixel_size=(0.5, 0.25),
                         tile=32, compression="zlib")
    with tifffile.TiffFile(out) as tif:
        assert tif.is_ome and not tif.is_bigtiff
        assert len(tif.pages) == 3  # one full-resolution page per channel, the levels in SubIFDs
        series = tif.series[0]
        assert series.axes == "CYX" and series.is_pyramidal
        assert [lv.shape for lv in series.levels] == [(3, 150, 100), (3, 75, 50), (3, 38, 25), (3, 19, 13)]
        page = tif.pages[0]
        assert page.is_tiled and (page.tilelength, page.tilewidth) == (32, 32) and len(page.subifds) == 3
        assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        ome = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
    assert [c["Name"] for c in ome["Channel"]] == NAMES
    assert (ome["PhysicalSizeX"], ome["PhysicalSizeY"], ome["PhysicalSizeXUnit"]) == (0.25, 0.5, "µm")


def test_bigtiff_when_needed(tmp_path, planes, monkeypatch):
    asked = []

    def needs(shape, dtype, *, tile):
        asked.append((shape, tile))
        return True

    monkeypatch.setattr(channels_module, "tiff_needs_bigtiff", needs)
    out = write_channels(tmp_path / "b.ome.tif", SHAPE, np.uint16, NAMES, source(planes), tile=64)
    with tifffile.TiffFile(out) as tif:
        assert tif.is_bigtiff
    # Every tile of every level and channel counted: 3 x (3*2 + 2*1 + 1*1) tiles.
    assert asked == [((27 * 64, 64), (64, 64))]


@pytest.mark.parametrize("name", ["s.ome.zarr", "s.ome.tif"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_one_channel_and_other_dtypes_without_pixel_size(tmp_path, name, dtype):
    img = (np.arange(40 * 70).reshape(1, 40, 70) % 251).astype(dtype)
    out = write_channels(tmp_path / name, (40, 70), dtype, ["only"], source(img), chunk=32, tile=16)
    back = read_channels(out)
    assert back.data.dtype == dtype and back.channels == ["only"]
    assert back.pixel_size is None and back.unit is None
    np.testing.assert_array_equal(back.data, img)
    np.testing.assert_array_equal(read_channels(out, level=1).data, pyramid(img, 2)[1])


def test_streaming_asks_for_bounded_blocks_once_each(tmp_path, planes):
    calls: list = []
    write_channels(tmp_path / "z.ome.zarr", SHAPE, np.uint16, NAMES, source(planes, calls), chunk=64)
    assert all(h <= 64 and w <= 64 for _, _, _, h, w in calls)
    cover = np.zeros((3,) + SHAPE, int)
    for c, y, x, h, w in calls:
        cover[c, y:y + h, x:x + w] += 1
    assert (cover == 1).all()
    calls.clear()
    write_channels(tmp_path / "t.ome.tif", SHAPE, np.uint16, NAMES, source(planes, calls), tile=32)
    # Tile-row bands, channel by channel, row-major.
    assert [(c, y) for c, y, _, _, _ in calls] == [(c, y) for c in range(3) for y in range(0, 150, 32)]
    assert all(x == 0 and w == 100 and h == min(32, 150 - y) for _, y, x, h, w in calls)


def test_ome_tiff_bands_narrower_than_the_image(tmp_path, planes, monkeypatch):
    # Bands one tile wide: level 1 is assembled from many band means, and must equal the whole.
    monkeypatch.setattr(channels_module, "band_bytes", 32 * 32 * 2)
    calls: list = []
    out = write_channels(tmp_path / "n.ome.tif", SHAPE, np.uint16, NAMES, source(planes, calls), tile=32)
    assert all(h <= 32 and w <= 32 and y % 32 == 0 and x % 32 == 0 for _, y, x, h, w in calls)
    assert len(calls) == 3 * 5 * 4
    for lv, want in enumerate(pyramid(planes, 4)):
        np.testing.assert_array_equal(read_channels(out, level=lv).data, want)


@pytest.mark.parametrize("name", ["f.ome.zarr", "f.ome.tif"])
def test_a_failed_write_leaves_nothing_and_keeps_the_old_output(tmp_path, planes, name):
    def failing(c, y0, x0, h, w):
        if c == 2 and y0 >= 64:
            raise RuntimeError("renderer failed")
        return planes[c, y0:y0 + h, x0:x0 + w]

    with pytest.raises(RuntimeError, match="renderer failed"):
        write_channels(tmp_path / name, SHAPE, np.uint16, NAMES, failing, chunk=64, tile=32)
    assert list(tmp_path.iterdir()) == []
    out = write_channels(tmp_path / name, SHAPE, np.uint16, NAMES, source(planes), chunk=64, tile=32)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_channels(out, SHAPE, np.uint16, NAMES, source(planes), chunk=64, tile=32)
    with pytest.raises(RuntimeError, match="renderer failed"):
        write_channels(out, SHAPE, np.uint16, NAMES, failing, chunk=64, tile=32, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    np.testing.assert_array_equal(read_channels(out).data, planes)
    write_channels(out, SHAPE, np.uint16, NAMES[::-1], source(planes[::-1]), chunk=64, tile=32, overwrite=True)
    back = read_channels(out)
    assert back.channels == NAMES[::-1] and sorted(p.name for p in tmp_path.iterdir()) == [name]
    np.testing.assert_array_equal(back.data, planes[::-1])


@pytest.mark.parametrize("channels, error, match", [
    (["a", "a"], ValueError, "given twice"),
    (["a", " "], ValueError, "empty name"),
    ([], ValueError, "at least one"),
    (["a", 3], TypeError, "must be a string"),
    ("DAPI", TypeError, "list of channel names"),
])
def test_bad_channel_names(tmp_path, planes, channels, error, match):
    with pytest.raises(error, match=match):
        write_channels(tmp_path / "x.ome.zarr", SHAPE, np.uint16, channels, source(planes))


@pytest.mark.parametrize("name", ["x.ome.zarr", "x.ome.tif"])
def test_bad_blocks_are_refused_and_name_the_channel(tmp_path, planes, name):
    def wrong_shape(c, y0, x0, h, w):
        return np.zeros((h, w + 1), np.uint16)

    def nan(c, y0, x0, h, w):
        return np.full((h, w), np.nan if c == 1 else 0.0, np.float32)

    def too_big(c, y0, x0, h, w):
        return np.full((h, w), 70000, np.int32)

    with pytest.raises(ValueError, match="'DAPI'.*expected"):
        write_channels(tmp_path / name, SHAPE, np.uint16, NAMES, wrong_shape)
    with pytest.raises(ValueError, match="'CD3'.*NaN"):
        write_channels(tmp_path / name, SHAPE, np.uint16, NAMES, nan)
    with pytest.raises(ValueError, match="outside the range"):
        write_channels(tmp_path / name, SHAPE, np.uint16, NAMES, too_big)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(tmp_path, planes):
    fn = source(planes)
    with pytest.raises(ValueError, match=r"\*.ome.tif"):
        write_channels(tmp_path / "plain.tif", SHAPE, np.uint16, NAMES, fn)
    with pytest.raises(ValueError, match="unsupported"):
        write_channels(tmp_path / "x.png", SHAPE, np.uint16, NAMES, fn)
    with pytest.raises(ValueError, match="positive"):
        write_channels(tmp_path / "x.ome.zarr", SHAPE, np.uint16, NAMES, fn, pixel_size=(0.5, -1))
    with pytest.raises(ValueError, match="pair"):
        write_channels(tmp_path / "x.ome.zarr", SHAPE, np.uint16, NAMES, fn, pixel_size=(1, 2, 3))
    with pytest.raises(ValueError, match="unit"):
        write_channels(tmp_path / "x.ome.zarr", SHAPE, np.uint16, NAMES, fn, pixel_size=1, unit="furlong")
    with pytest.raises(ValueError, match="compression"):
        write_channels(tmp_path / "x.ome.zarr", SHAPE, np.uint16, NAMES, fn, compression="zlib")
    with pytest.raises(ValueError, match="multiples of 16"):
        write_channels(tmp_path / "x.ome.tif", SHAPE, np.uint16, NAMES, fn, tile=20)
    with pytest.raises(TypeError, match="uint8, uint16 or float32"):
        write_channels(tmp_path / "x.ome.tif", SHAPE, np.int64, NAMES, fn)
    with pytest.raises(TypeError, match="region_fn"):
        write_channels(tmp_path / "x.ome.tif", SHAPE, np.uint16, NAMES, None)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
    out = write_channels(tmp_path / "x.ome.tif", SHAPE, np.uint16, NAMES, fn)
    with pytest.raises(ValueError, match="levels 0..0"):
        read_channels(out, level=1)
    tifffile.imwrite(tmp_path / "plain.tif", planes[0])
    with pytest.raises(ValueError, match="not an OME-TIFF"):
        read_channels(tmp_path / "plain.tif")
    with pytest.raises(FileNotFoundError):
        read_channels(tmp_path / "missing.ome.zarr")


@pytest.mark.filterwarnings("ignore:As of version 0.4.0, the parser argument is ignored:DeprecationWarning")
@pytest.mark.parametrize("name", ["b.ome.zarr", "b.ome.tif"])
def test_bioio_reads_names_and_pixel_sizes(tmp_path, planes, name):
    bioio = pytest.importorskip("bioio")
    plugin = pytest.importorskip("bioio_ome_zarr" if name.endswith("zarr") else "bioio_ome_tiff")
    out = write_channels(tmp_path / name, SHAPE, np.uint16, NAMES, source(planes), pixel_size=(0.5, 0.25),
                         chunk=64, tile=32)
    image = bioio.BioImage(out, reader=plugin.Reader)
    assert [str(n) for n in image.channel_names] == NAMES
    assert (image.physical_pixel_sizes.Y, image.physical_pixel_sizes.X) == (0.5, 0.25)
    np.testing.assert_array_equal(image.get_image_data("CYX"), planes)
