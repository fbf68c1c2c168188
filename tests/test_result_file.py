"""MontageResult's JSON: relative tile paths survive a move of the working folder, and a damaged
file gets one clear error naming the field (issue "Reliability", finding 13 and the malformed-JSON item)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tifffile

import spectralign_fast as sf
from spectralign_fast.synthetic import grid_tiles, photograph


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A 1x2 montage of tiles given as paths relative to the working folder, saved in a subfolder."""
    root = tmp_path_factory.mktemp("relative")
    tiles, _ = grid_tiles(photograph("retina"), 1, 2, tile=256, overlap=0.25, jitter=5, max_rotation=0.0,
                          noise=0.002, vignetting=0.0, dtype=np.uint16, seed=3)
    (root / "tiles").mkdir()
    (root / "out").mkdir()
    for (r, c), t in tiles.items():
        tifffile.imwrite(root / "tiles" / f"r{r}_c{c}.tif", t)
    here = os.getcwd()
    os.chdir(root)
    try:
        res = sf.montage({k: f"tiles/r{k[0]}_c{k[1]}.tif" for k in tiles}, overlap=0.25, progress=False,
                         model="rigid")
        res.save("out/m.json")
    finally:
        os.chdir(here)
    return root, res


def test_relative_sources_resolve_against_the_json_folder(saved, tmp_path, monkeypatch):
    root, res = saved
    d = json.loads((root / "out" / "m.json").read_text())
    assert {t["source"] for t in d["tiles"]} == {"../tiles/r0_c0.tif", "../tiles/r0_c1.tif"}
    monkeypatch.chdir(tmp_path)  # anywhere else
    back = sf.MontageResult.load(root / "out" / "m.json")
    assert back.sources[(0, 0)] == str(root / "out" / "../tiles/r0_c0.tif")
    back.write(tmp_path / "again.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "again.tif"), res.image)


def _damaged(saved, tmp_path, edit):
    root, _ = saved
    d = json.loads((root / "out" / "m.json").read_text())
    edit(d)
    p = tmp_path / "damaged.json"
    p.write_text(json.dumps(d))
    return p


@pytest.mark.parametrize("edit, field", [
    (lambda d: d.pop("tiles"), "tiles"),
    (lambda d: d["tiles"][1].pop("transform"), r"tiles\[1\].transform"),
    (lambda d: d["tiles"][0].__setitem__("transform", [[1, 0], [0, 1]]), r"tiles\[0\].transform"),
    (lambda d: d["tiles"][0].__setitem__("size", "big"), r"tiles\[0\].size"),
    (lambda d: d["tiles"][0].__setitem__("size", [0, 5]), r"tiles\[0\].size"),
    (lambda d: d["tiles"][0].__setitem__("source", 5), r"tiles\[0\].source"),
    (lambda d: d["matches"][0].pop("p1"), r"matches\[0\]"),
    (lambda d: d["matches"][0].__setitem__("tile2", [9, 9]), r"matches\[0\]"),
    (lambda d: d.__setitem__("model", "warp"), "model"),
    (lambda d: d.__setitem__("canvas", [1, 2]), "canvas"),
])
def test_damaged_file_names_the_field(saved, tmp_path, edit, field):
    p = _damaged(saved, tmp_path, edit)
    with pytest.raises(ValueError, match=field):
        sf.MontageResult.load(p)
