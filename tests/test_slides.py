"""Microscope files: stage positions from OME metadata, any layout, channels, cycles, shading.

Slides are written with tifffile's OME writer from a scikit-image photograph
(synthetic_slides): an irregular 4 x 4 layout (a hole, serpentine order,
jitter), stage positions with a stage error, two channels, an off-centre
vignette, and a second cycle of the same field with a global shift and a
0.4 degree rotation. Truth maps each tile's pixel to the photograph.
"""
from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pytest
import tifffile
from scipy import ndimage

import spectralign_fast as sf
from spectralign_fast import synthetic as syn
from spectralign_fast import synthetic_slides as ss
from spectralign_fast.cli.main import main as cli_main
from spectralign_fast.io.illumination import Illumination, estimate_illumination
from spectralign_fast.io.slides import read_slide
from spectralign_fast.match.layout import position_pairs
from spectralign_fast.transforms.affine import Affine
from spectralign_fast.workflows.slide import write_registered_configuration

TILE = 256


@pytest.fixture(scope="module")
def photo():
    return syn.photograph("retina")


@pytest.fixture(scope="module")
def layout():
    return ss.slide_layout(4, 4, tile=TILE, holes=[(1, 2)], serpentine=True, jitter=6, seed=3)


def _motion(photo):
    c = photo.shape[1] / 2, photo.shape[0] / 2
    return (Affine.translator((c[0] + 14.3, c[1] - 9.6)) @ Affine.rotator(np.radians(0.4))
            @ Affine.translator((-c[0], -c[1])))


@pytest.fixture(scope="module")
def cycles(tmp_path_factory, photo, layout):
    d = tmp_path_factory.mktemp("slides")
    flat = ss.vignette(TILE)
    ch1 = {"DAPI": photo, "CD3": ndimage.gaussian_filter(photo, 3) ** 2}
    ch2 = {"DAPI": photo, "CD8": 1 - photo}
    s1 = ss.write_slide(d / "cycle1.ome.tiff", ch1, layout, flatfield=flat, seed=1)
    s2 = ss.write_slide(d / "cycle2.ome.tiff", ch2, layout, flatfield=flat, slide_motion=_motion(photo), seed=2)
    return s1, s2


@pytest.fixture(scope="module")
def registered(cycles):
    s1, s2 = cycles
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return sf.montage([s1.path, s2.path], align_channel="DAPI", flatfield="auto", progress=False)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_slide(cycles, layout):
    s1, _ = cycles
    slide = read_slide(s1.path)
    assert slide.channels == ["DAPI", "CD3"]
    assert slide.pixel_size == pytest.approx((0.65, 0.65))
    assert slide.tile_shape == (TILE, TILE) and slide.dtype == np.uint16
    assert len(slide) == 15
    rec = np.array([s1.stage_positions[k] for k in sorted(s1.stage_positions)])
    got = np.array([slide.positions[k] for k in sorted(slide.positions)])
    np.testing.assert_allclose(got, rec - rec.min(axis=0), atol=1e-6)
    np.testing.assert_allclose(slide.stage_origin, rec.min(axis=0), atol=1e-6)
    # Serpentine order: tile 4 is the second row's rightmost tile.
    assert layout.grid[4] == (1, 3)
    raw = slide.tiles("CD3")[4]()
    assert raw.shape == (TILE, TILE) and raw.dtype == np.uint16


def test_flip_axes(cycles):
    s1, _ = cycles
    plain, flipped = read_slide(s1.path), read_slide(s1.path, flip_x=True, flip_y=True)
    a = np.array([plain.positions[k] for k in sorted(plain.positions)])
    b = np.array([flipped.positions[k] for k in sorted(flipped.positions)])
    np.testing.assert_allclose(b, a.max(axis=0) - a, atol=1e-6)


def test_bioio_reader_agrees(cycles):
    pytest.importorskip("bioio")
    pytest.importorskip("bioio_ome_tiff")
    s1, _ = cycles
    a, b = read_slide(s1.path), read_slide(s1.path, reader="bioio")
    assert b.channels == a.channels and b.tile_shape == a.tile_shape
    assert b.pixel_size == pytest.approx(a.pixel_size)
    for k in a.positions:
        np.testing.assert_allclose(b.positions[k], a.positions[k], atol=1e-6)
    np.testing.assert_array_equal(b.tiles(1)[3](), a.tiles(1)[3]())


def test_pairs_from_positions(layout):
    pos = {k: v for k, v in layout.origins.items()}
    sizes = {k: (TILE, TILE) for k in pos}
    pairs = position_pairs(pos, sizes)
    grid = layout.grid
    got = {(grid[a], grid[b]) for a, b, _, _ in pairs}
    cells = set(grid.values())
    want = set()
    for (r, c) in cells:
        for dr, dc in ((0, 1), (1, 0)):
            if (r + dr, c + dc) in cells:
                want.add(((r, c), (r + dr, c + dc)))
    norm = {tuple(sorted(p)) for p in got}
    assert norm == {tuple(sorted(p)) for p in want}
    for a, b, kind, off in pairs:
        np.testing.assert_allclose(off, pos[b] - pos[a])
        dr, dc = np.subtract(grid[b], grid[a])
        assert kind == ("horizontal" if dr == 0 else "vertical")
    # A tile that only touches a corner keeps that pair (it would be lost otherwise).
    lone = {0: np.array([0.0, 0.0]), 1: np.array([230.0, 0.0]), 2: np.array([460.0, 230.0])}
    kinds = {(a, b): k for a, b, k, _ in position_pairs(lone, {k: (TILE, TILE) for k in lone})}
    assert kinds == {(0, 1): "horizontal", (1, 2): "diagonal"}


def _pairs_error(found, truth):
    return syn.registration_error(found, truth, {t: (TILE, TILE) for t in truth})


def test_positions_as_accurate_as_grid(cycles, layout):
    """The same tiles stitched from stage positions and from their (row, col) grid keys."""
    s1, _ = cycles
    slide = read_slide(s1.path)
    illum = estimate_illumination(list(slide.tiles("DAPI").values()))
    tiles = {k: illum.correct(f()) for k, f in slide.tiles("DAPI").items()}
    by_pos = sf.montage(tiles, positions=slide.positions, render=False, progress=False)
    by_grid = sf.montage({layout.grid[k]: v for k, v in tiles.items()}, overlap=0.12, render=False,
                         progress=False)
    e_pos = _pairs_error(by_pos.transforms, s1.truth)
    e_grid = _pairs_error({k: by_grid.transforms[layout.grid[k]] for k in tiles}, s1.truth)
    assert e_pos["rms"] <= 1.1 * e_grid["rms"] + 0.02, (e_pos, e_grid)
    assert e_pos["rms"] < 0.35
    # Transforms stay in the positions' frame: every tile within the stage error of its nominal place.
    for k, tf in by_pos.transforms.items():
        assert np.hypot(*(np.asarray(tf)[:, 2] - slide.positions[k])) < 20


def test_cycles_registered(registered, cycles):
    s1, s2 = cycles
    res = registered.cycles[1].residuals
    assert res is not None and not res.unmatched
    d = ss.cycle_misregistration(registered.cycles[0].montage.transforms, registered.cycles[1].montage.transforms,
                                 s1.truth, s2.truth, TILE)
    assert len(d) > 20
    assert np.sqrt(np.mean(d ** 2)) <= 0.3, np.sqrt(np.mean(d ** 2))
    assert res.rms < 0.3
    # The global offset found first is the slide's motion (about -14, +10 px plus the rotation's share).
    assert abs(res.global_shift[0] + 15) < 4 and abs(res.global_shift[1] - 11) < 4


def test_channels_in_output(registered):
    assert registered.channels == ["DAPI", "CD3", "DAPI (cycle 2)", "CD8"]
    img = registered.image
    assert img is not None and img.dtype == np.uint16 and img.shape[0] == 4
    assert img.shape[1:] == (registered.canvas[3], registered.canvas[2])
    dapi1, dapi2 = img[0].astype(float), img[2].astype(float)
    both = (dapi1 > 0) & (dapi2 > 0)
    # The two cycles' DAPI agree where both are covered (registered, same shading removed).
    assert np.corrcoef(dapi1[both], dapi2[both])[0, 1] > 0.97


def _seam_contrast(slide_tiles, truth):
    """Mean over overlapping tile pairs of |mean(a) - mean(b)| / mean over their shared content."""
    out = []
    keys = sorted(truth)
    ys, xs = np.mgrid[0:TILE:4, 0:TILE:4]
    pa = np.stack([xs.ravel(), ys.ravel()]).astype(float)
    for i, a in enumerate(keys):
        A = slide_tiles[a]().astype(float)
        for b in keys[i + 1:]:
            pb = Affine(truth[b]).inverse() * (Affine(truth[a]) * pa)
            ok = np.all((pb >= 0) & (pb <= TILE - 1), axis=0)
            if ok.sum() < 200:
                continue
            B = slide_tiles[b]().astype(float)
            va = A[pa[1, ok].astype(int), pa[0, ok].astype(int)]
            vb = ndimage.map_coordinates(B, [pb[1, ok], pb[0, ok]], order=1)
            out.append(abs(va.mean() - vb.mean()) / (0.5 * (va.mean() + vb.mean())))
    return float(np.mean(out))


def test_flatfield_removes_seams(cycles, registered):
    """montage's flatfield="auto" (median of normalised tiles, then refined from the overlaps of the
    placed tiles), measured on the true overlaps of every channel of both cycles."""
    true_flat = ss.vignette(TILE)
    true_flat = true_flat / true_flat.mean()
    for truth, cycle in zip(cycles, registered.cycles):
        for c, name in enumerate(cycle.slide.channels):
            plain = read_slide(cycle.slide.path)
            raw = _seam_contrast(plain.tiles(c), truth.truth)
            corrected = _seam_contrast(cycle.slide.tiles(c), truth.truth)
            assert raw / corrected >= 5, (name, raw, corrected)
            flat = cycle.slide.illumination[c].flatfield
            assert np.abs(flat / true_flat - 1).max() < 0.05, name
    # The first, content-statistics estimate alone is biased by this photograph's large-scale
    # brightness gradient (documented in io.illumination): it removes only part of the seams.
    slide = read_slide(cycles[0].path)
    raw = _seam_contrast(slide.tiles(0), cycles[0].truth)
    slide.illumination[0] = estimate_illumination(list(slide.tiles(0).values()))
    assert 1.5 < raw / _seam_contrast(slide.tiles(0), cycles[0].truth)


def test_darkfield_given(photo, layout, tmp_path):
    """A camera offset given as darkfield: the flat field comes out as without it, corrections subtract it."""
    s = ss.write_slide(tmp_path / "dark.ome.tiff", {"DAPI": photo}, layout, flatfield=ss.vignette(TILE), seed=5)
    slide = read_slide(s.path)
    offset = 3000.0
    plain = [f().astype(np.float32) for f in slide.tiles(0).values()]
    lifted = [t + offset for t in plain]
    a = estimate_illumination(plain)
    b = estimate_illumination(lifted, darkfield=offset)
    np.testing.assert_allclose(b.flatfield, a.flatfield, rtol=1e-3)
    np.testing.assert_allclose(b.correct(lifted[3]), a.correct(plain[3]), rtol=1e-4, atol=0.05)
    with pytest.raises(ValueError, match="darkfield"):
        estimate_illumination(plain, darkfield=np.zeros((3, 3)))


def test_caller_files_untouched(cycles, registered):
    s1, s2 = cycles
    before = [_digest(s1.path), _digest(s2.path)]
    sf.montage(s1.path, flatfield="auto", progress=False, render=False)
    assert [_digest(s1.path), _digest(s2.path)] == before


def test_no_positions_needs_grid(photo, layout, tmp_path):
    s = ss.write_slide(tmp_path / "nopos.ome.tiff", {"DAPI": photo}, layout, positions=False)
    with pytest.raises(ValueError, match="grid"):
        read_slide(s.path)
    with pytest.raises(ValueError, match="grid"):
        sf.montage(s.path, progress=False)
    slide = read_slide(s.path, grid=(4, 4), overlap=0.12)
    assert slide.from_grid and slide.positions[1] == pytest.approx((TILE * 0.88, 0.0))


def test_bad_input(cycles, photo, layout, tmp_path):
    s1, s2 = cycles
    with pytest.raises(ValueError, match="no channel named 'GFP'.*DAPI"):
        sf.montage(s1.path, align_channel="GFP", progress=False)
    with pytest.raises(ValueError, match="does not exist"):
        sf.montage(tmp_path / "missing.ome.tiff", progress=False)
    other = ss.write_slide(tmp_path / "x40.ome.tiff", {"DAPI": photo}, layout, pixel_size=0.325)
    with pytest.raises(ValueError, match="pixel size"):
        sf.montage([s1.path, other.path], progress=False)
    with pytest.raises(ValueError, match="positions"):
        sf.montage(s1.path, positions={0: (0, 0)}, progress=False)
    with pytest.raises(ValueError, match="flatfield"):
        sf.montage(s1.path, flatfield="median", progress=False)
    with pytest.raises(ValueError, match="shape"):
        sf.montage(s1.path, flatfield=np.ones((10, 10)), progress=False)
    with pytest.raises(ValueError, match="grid"):
        read_slide(s1.path, grid=(4, 4))
    with pytest.raises(ValueError, match="OME-Zarr"):
        sf.montage(s1.path, output=tmp_path / "out.png", progress=False)
    with pytest.raises(ValueError, match="no entry"):
        sf.montage({0: np.zeros((8, 8)), 1: np.zeros((8, 8))}, positions={0: (0, 0)}, progress=False)
    with pytest.raises(ValueError, match="at least 4"):
        estimate_illumination([np.ones((8, 8))])
    with pytest.raises(ValueError, match="positive"):
        Illumination.given(np.zeros((8, 8)))


def test_island_placed_at_stage_position(photo, tmp_path):
    """A tile that overlaps nothing lands at its stage position, with a warning (not an error)."""
    lay = ss.slide_layout(2, 3, tile=TILE, jitter=3, seed=4)
    lay.origins[5] = lay.origins[5] + np.array([400.0, 300.0])
    s = ss.write_slide(tmp_path / "island.ome.tiff", {"DAPI": photo}, lay, stage_error=0.0)
    with pytest.warns(RuntimeWarning, match="placed at their nominal"):
        res = sf.montage(s.path, progress=False, render=False)
    tf = res.cycles[0].montage.transforms
    slide = read_slide(s.path)
    np.testing.assert_allclose(np.asarray(tf[5])[:, 2], slide.positions[5], atol=1.0)


@pytest.mark.parametrize("suffix", [".ome.zarr", ".ome.tif"])
def test_written_output_reads_back(cycles, tmp_path, suffix):
    """All channels of both cycles in one file, with names and pixel sizes, equal to the in-memory montage."""
    s1, s2 = cycles
    out = tmp_path / f"slide{suffix}"
    res = sf.montage([s1.path, s2.path], align_channel="DAPI", flatfield="auto", output=out, chunk=256,
                     progress=False)
    assert res.output == out and res.image is None
    back = sf.io.read_channels(out)
    assert back.channels == ["DAPI", "CD3", "DAPI (cycle 2)", "CD8"]
    assert back.pixel_size == pytest.approx((0.65, 0.65))
    mem = sf.montage([s1.path, s2.path], align_channel="DAPI", flatfield="auto", progress=False)
    np.testing.assert_array_equal(back.data, mem.image)
    if suffix == ".ome.tif":
        with tifffile.TiffFile(out) as tif:
            assert tif.is_ome and len(tif.series[0].levels) >= 2
    bioio = pytest.importorskip("bioio")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            img = bioio.BioImage(out)
        except Exception as exc:  # no plugin for this format installed
            pytest.skip(f"bioio cannot open {suffix}: {exc}")
        assert [str(c) for c in img.channel_names] == back.channels
        assert img.physical_pixel_sizes.X == pytest.approx(0.65)


def test_tile_configuration_round_trip(cycles, tmp_path):
    """Tiles written out as files with a Fiji TileConfiguration (nominal positions) stitch as the slide
    does, and the registered configuration written back holds the placed positions."""
    s1, _ = cycles
    slide = read_slide(s1.path)
    entries = []
    for k, f in slide.tiles("DAPI").items():
        tifffile.imwrite(tmp_path / f"tile_{k:03d}.tif", f())
        entries.append(sf.io.TileEntry(f"tile_{k:03d}.tif", None, tuple(slide.positions[k])))
    cfg = sf.io.write_tile_configuration(tmp_path / "TileConfiguration.txt", entries)
    tiles, positions = sf.io.configuration_tiles(cfg)
    by_cfg = sf.montage(tiles, positions=positions, render=False, progress=False)
    by_slide = sf.montage(s1.path, render=False, progress=False).cycles[0].montage
    for k in slide.positions:
        np.testing.assert_allclose(np.asarray(by_cfg.transforms[f"tile_{k:03d}.tif"]),
                                   np.asarray(by_slide.transforms[k]), atol=1e-6)
    reg = write_registered_configuration(by_cfg, tmp_path / "TileConfiguration.registered.txt")
    back = sf.io.read_tile_configuration(reg)
    assert [e.name for e in back.entries] == [e.name for e in entries]
    for e in back.entries:
        np.testing.assert_allclose(e.position, np.asarray(by_cfg.transforms[e.name])[:, 2], atol=1e-9)


def test_cli_cycles(cycles, tmp_path, capsys):
    s1, s2 = cycles
    out = tmp_path / "slide.ome.zarr"
    code = cli_main(["montage", str(s1.path), str(s2.path), "-o", str(out), "--align-channel", "DAPI", "--flatfield", "auto",
                     "--report", str(tmp_path / "slide.png"), "--tile-configuration",
                     str(tmp_path / "TileConfiguration.registered.txt"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    back = sf.io.read_channels(out)
    assert back.channels == ["DAPI", "CD3", "DAPI (cycle 2)", "CD8"]
    saved = json.loads((tmp_path / "slide.json").read_text())
    assert [c["file"] for c in saved["cycles"]] == [str(s1.path), str(s2.path)]
    assert saved["cycles"][1]["residuals"]["rms"] < 0.3
    assert (tmp_path / "slide.png").is_file() and (tmp_path / "slide-illumination.png").is_file()
    assert len(sf.io.read_tile_configuration(tmp_path / "TileConfiguration.registered.txt").entries) == 15
    code = cli_main(["montage", str(s1.path), "-o", str(tmp_path / "bad.ome.zarr"), "--align-channel", "GFP",
                     "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "no channel named 'GFP'" in err and err.count("\n") == 1


def test_cli_patterns(cycles, tmp_path, capsys):
    """{index} with --grid, {x}/{y} positions in the names, and a single row without {row}."""
    s1, _ = cycles
    slide = read_slide(s1.path)
    tiles = {k: f() for k, f in slide.tiles("DAPI").items()}
    lay = {k: v for k, v in ss.slide_layout(4, 4, tile=TILE, holes=[(1, 2)], jitter=6, seed=3).grid.items()}
    (tmp_path / "xy").mkdir()
    (tmp_path / "row").mkdir()
    for k, img in tiles.items():
        x, y = slide.positions[k]
        tifffile.imwrite(tmp_path / "xy" / f"t_x{x:.1f}_y{y:.1f}.tif", img)
        r, c = lay[k]
        if r == 0:
            tifffile.imwrite(tmp_path / "row" / f"t_c{c}.tif", img)
    code = cli_main(["montage", str(tmp_path / "xy" / "t_x{x}_y{y}.tif"), "-o", str(tmp_path / "xy.ome.zarr"),
                     "--quiet"])
    assert code == 0, capsys.readouterr().err
    placed = sf.MontageResult.load(tmp_path / "xy.json")
    assert len(placed.transforms) == 15
    code = cli_main(["montage", str(tmp_path / "row" / "t_c{col}.tif"), "-o", str(tmp_path / "row.tif"),
                     "--overlap", "0.12", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert len(sf.MontageResult.load(tmp_path / "row.json").transforms) == 4
    code = cli_main(["montage", str(tmp_path / "row" / "t_c{index}.tif"), "-o", str(tmp_path / "ix.tif"),
                     "--grid", "1x4", "--overlap", "0.12", "--quiet"])
    assert code == 0, capsys.readouterr().err
    code = cli_main(["montage", str(tmp_path / "row" / "t_c{index}.tif"), "-o", str(tmp_path / "ix2.tif"),
                     "--grid", "4", "--quiet"])
    assert code == 2 and "ROWSxCOLS" in capsys.readouterr().err
