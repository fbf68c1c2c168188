"""Fiji TileConfiguration files (io.tileconfig): Fiji's own layout read and written back."""
from __future__ import annotations

from pathlib import Path

import pytest

from spectralign_fast.io import (TileConfiguration, TileEntry, read_tile_configuration,
                                 write_tile_configuration)
from spectralign_fast.io.tileconfig import format_tile_configuration, parse_tile_configuration

# As Fiji's Grid/Collection stitching writes them (plugin/Stitching_Grid.java): the layout
# (Float offsets) and, after stitching, the registered positions (double translations).
FIJI_LAYOUT = """\
# Define the number of dimensions we are working on
dim = 2

# Define the image coordinates
tile_x001_y001.tif; ; (0.0, 0.0)
tile_x002_y001.tif; ; (921.6, 0.0)
tile_x001_y002.tif; ; (0.0, 921.6)
tile_x002_y002.tif; ; (921.6, 921.6)
"""
FIJI_REGISTERED = """\
# Define the number of dimensions we are working on
dim = 2

# Define the image coordinates
tile_x001_y001.tif; ; (0.0, 0.0)
tile_x002_y001.tif; ; (918.2470092773438, -3.2190093994140625)
tile_x001_y002.tif; ; (2.8807373046875, 919.5113525390625)
tile_x002_y002.tif; ; (920.9642944335938, 916.0318603515625)
"""


def test_reads_fiji_layout_and_registered_files(tmp_path):
    (tmp_path / "TileConfiguration.txt").write_text(FIJI_LAYOUT)
    (tmp_path / "TileConfiguration.registered.txt").write_text(FIJI_REGISTERED)
    layout = read_tile_configuration(tmp_path / "TileConfiguration.txt")
    assert isinstance(layout, TileConfiguration) and layout.dim == 2 and not layout.multiseries
    assert [e.name for e in layout.entries] == ["tile_x001_y001.tif", "tile_x002_y001.tif",
                                                "tile_x001_y002.tif", "tile_x002_y002.tif"]
    assert all(e.series is None for e in layout.entries)
    assert [e.position for e in layout.entries] == [(0.0, 0.0), (921.6, 0.0), (0.0, 921.6), (921.6, 921.6)]
    reg = read_tile_configuration(tmp_path / "TileConfiguration.registered.txt")
    assert reg.entries[1] == TileEntry("tile_x002_y001.tif", None, (918.2470092773438, -3.2190093994140625))
    assert reg.folder == tmp_path and reg.paths()[3] == tmp_path / "tile_x002_y002.tif"


def test_writes_exactly_what_fiji_writes(tmp_path):
    for text in (FIJI_LAYOUT, FIJI_REGISTERED):
        conf = parse_tile_configuration(text)
        out = write_tile_configuration(tmp_path / "TileConfiguration.txt", conf.entries, overwrite=True)
        assert out.read_text() == text


def test_lenient_spacing_notation_spaces_in_paths_and_multiseries(tmp_path):
    text = ("\ufeff# written by hand\r\n"
            "dim=2\r\n"
            "multiseries = true\r\n"
            "\r\n"
            "   scan 1/slide A.czi ;0;( 1.5E3 ,-2e-1 )   \r\n"
            "scan 1/slide A.czi; 12 ;(0, 7)\r\n"
            "../other dir/tile.tif;;(-0.5,1843)\r\n"
            "dim = 3 tile.tif; ; (4, 5)\n")
    (tmp_path / "conf.txt").write_bytes(text.encode("utf-8"))
    conf = read_tile_configuration(tmp_path / "conf.txt")
    assert conf.multiseries
    assert conf.entries == [TileEntry("scan 1/slide A.czi", 0, (1500.0, -0.2)),
                            TileEntry("scan 1/slide A.czi", 12, (0.0, 7.0)),
                            TileEntry("../other dir/tile.tif", None, (-0.5, 1843.0)),
                            TileEntry("dim = 3 tile.tif", None, (4.0, 5.0))]
    assert conf.entries[0].path(tmp_path) == tmp_path / "scan 1" / "slide A.czi"
    assert conf.entries[2].path("/data") == Path("/data/../other dir/tile.tif")


def test_round_trip_3d_multiseries_and_java_number_format(tmp_path):
    entries = [TileEntry("stack.lif", 0, (0.0, -0.0, 1.0e7)),
               TileEntry("stack.lif", 1, (1.5e-4, 512.25, -1e16)),
               TileEntry("stack.lif", 2, (123456.789, 0.001, 2.5e-7))]
    out = write_tile_configuration(tmp_path / "TileConfiguration.txt", entries, dim=3)
    assert out.read_text().splitlines() == [
        "# Define the number of dimensions we are working on", "dim = 3", "multiseries = true", "",
        "# Define the image coordinates",
        "stack.lif; 0; (0.0, -0.0, 1.0E7)",
        "stack.lif; 1; (1.5E-4, 512.25, -1.0E16)",
        "stack.lif; 2; (123456.789, 0.001, 2.5E-7)"]
    back = read_tile_configuration(out)
    assert back.dim == 3 and back.entries == entries


@pytest.mark.parametrize("body, lineno, match", [
    ("dim = 2\na.tif; (0, 0)\n", 2, "3 fields"),
    ("dim = 2\na.tif; ; (0, 0); extra\n", 2, "3 fields"),
    ("dim = 2\n\n# c\na.tif; ; (0, 0, 0)\n", 4, "3 coordinates but the file says dim = 2"),
    ("dim = 3\na.tif; ; (0, 0)\n", 2, "dim = 3"),
    ("dim = 2\na.tif; ; (0, zero)\n", 2, "'zero'"),
    ("dim = 2\na.tif; ; (0, nan)\n", 2, "not finite"),
    ("dim = 2\na.tif; ; 0, 0\n", 2, "parentheses"),
    ("dim = 2\n ; ; (0, 0)\n", 2, "file name is empty"),
    ("dim = 2\na.czi; -1; (0, 0)\n", 2, "series"),
    ("dim = 2\na.czi; one; (0, 0)\n", 2, "series"),
    ("# no header\na.tif; ; (0, 0)\n", 2, "before the 'dim = 2'"),
    ("dim = 4\na.tif; ; (0, 0)\n", 1, "dim must be 2 or 3"),
    ("dim = 2\na.tif; ; (0, 0)\ndim = 2\n", 3, "before the tiles"),
    ("dim = 2\ndim = 3\n", 2, "contradicts line 1"),
    ("dim = 2\nmultiseries = yes\n", 2, "multiseries = true"),
    ("dim = 2\na.tif; ; (0, 0)\nb.tif; ; (1, 0)\na.tif; ; (2, 0)\n", 4, "listed twice .also on line 2"),
])
def test_malformed_lines_are_named(tmp_path, body, lineno, match):
    (tmp_path / "bad.txt").write_text(body)
    with pytest.raises(ValueError, match=rf"bad\.txt, line {lineno}: .*{match}"):
        read_tile_configuration(tmp_path / "bad.txt")


def test_same_file_in_different_series_is_not_a_duplicate():
    conf = parse_tile_configuration("dim = 2\nmultiseries = true\na.czi; 0; (0, 0)\na.czi; 1; (5, 0)\n")
    assert [e.series for e in conf.entries] == [0, 1]


def test_empty_files_are_refused():
    with pytest.raises(ValueError, match="no 'dim = 2'"):
        parse_tile_configuration("# nothing\n")
    with pytest.raises(ValueError, match="no tiles"):
        parse_tile_configuration("dim = 2\n")


def test_write_refuses_what_fiji_could_not_read_back(tmp_path):
    path = tmp_path / "TileConfiguration.txt"
    ok = TileEntry("a.tif", None, (0.0, 0.0))
    cases = [
        ([ok, TileEntry("b.tif", None, (1.0, 2.0, 3.0))], ValueError, "3 coordinates, but dim = 2"),
        ([ok, TileEntry("a.tif", None, (5.0, 0.0))], ValueError, "same tile"),
        ([TileEntry("a;b.tif", None, (0.0, 0.0))], ValueError, "without ';'"),
        ([TileEntry(" a.tif", None, (0.0, 0.0))], ValueError, "spaces"),
        ([TileEntry("a.tif", -1, (0.0, 0.0))], ValueError, "series"),
        ([TileEntry("a.tif", None, (float("inf"), 0.0))], ValueError, "not finite"),
        ([("a.tif", None, (0.0, 0.0))], TypeError, "TileEntry"),
        ([], ValueError, "no tiles"),
    ]
    for entries, error, match in cases:
        with pytest.raises(error, match=match):
            write_tile_configuration(path, entries)
    with pytest.raises(ValueError, match="dim must be 2 or 3"):
        format_tile_configuration([ok], dim=4)
    assert list(tmp_path.iterdir()) == []
    write_tile_configuration(path, [ok])
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_tile_configuration(path, [ok])
    write_tile_configuration(path, [ok, TileEntry("b.tif", None, (900.5, 0.0))], overwrite=True)
    assert [e.name for e in read_tile_configuration(path).entries] == ["a.tif", "b.tif"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["TileConfiguration.txt"]
