"""The command line: montage / stack on real files, one-line errors for user mistakes."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from spectralign_fast import cli
from spectralign_fast.io import read_ome_zarr
from spectralign_fast.synthetic import grid_tiles, photograph


@pytest.fixture(scope="module")
def tile_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiles")
    tiles, truth = grid_tiles(photograph("retina"), 2, 3, overlap=0.2, seed=3, noise=0.003, vignetting=0.1)
    for (r, c), img in tiles.items():
        tifffile.imwrite(folder / f"r{r}_c{c}.tif", img)
    return folder, tiles


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_montage_to_ome_zarr_with_report(tile_folder, tmp_path, capsys):
    import spectralign_fast as sf

    folder, tiles = tile_folder
    out = tmp_path / "m.ome.zarr"
    code, stdout, err = run(["montage", folder / "r{row}_c{col}.tif", "-o", out, "--overlap", "0.2",
                             "--report", tmp_path / "report.png", "--quiet", "--chunk", "512"], capsys)
    assert code == 0, err
    assert stdout == ""  # --quiet: no progress bars, no summary
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["model"] == "affine" and len(saved["tiles"]) == 6
    assert saved["tiles"][0]["source"].endswith("r0_c0.tif")
    expected = sf.montage(tiles, overlap=0.2, progress=False)
    np.testing.assert_array_equal(read_ome_zarr(out), expected.image)
    assert (tmp_path / "report.png").stat().st_size > 20_000
    # An existing output is refused (exit 2, one line), and replaced with --overwrite.
    code, _, err = run(["montage", folder / "r{row}_c{col}.tif", "-o", out, "--quiet"], capsys)
    assert code == 2 and err.count("\n") == 1 and "exists" in err
    code, _, err = run(["montage", folder / "r{row}_c{col}.tif", "-o", out, "--quiet", "--overwrite",
                        "--overlap", "0.2", "--model", "rigid"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "m.json").read_text())["model"] == "rigid"


def test_stack_of_single_images(tmp_path, capsys):
    import spectralign_fast as sf
    from spectralign_fast.synthetic import sample

    photo = photograph("retina")
    sections = tmp_path / "sections"
    sections.mkdir()
    for z in range(3):
        tf = sf.Affine.translator((400 + 7 * z, 380 - 5 * z))
        img = np.rint(np.clip(sample(photo, tf, (400, 400)), 0, 1) * 65535).astype(np.uint16)
        tifffile.imwrite(sections / f"s{z:02d}.tif", img)
    out = tmp_path / "stack.tif"
    code, stdout, err = run(["stack", sections / "s{z}.tif", "-o", out], capsys)
    assert code == 0, err
    assert "3 levels" in stdout
    stack = tifffile.imread(out)
    assert stack.shape[0] == 3 and stack.dtype == np.uint16
    saved = json.loads((tmp_path / "stack.json").read_text())
    shifts = [np.asarray(t["transform"])[:, 2] for t in saved["tiles"]]
    np.testing.assert_allclose(shifts[2] - shifts[0], (14, -10), atol=0.05)


@pytest.mark.parametrize("argv, message", [
    (["montage", "{folder}/nothing_r{row}_c{col}.tif", "-o", "{tmp}/x.tif"], "no file matches"),
    (["montage", "{folder}/r{index}_c0.tif", "-o", "{tmp}/x.tif"], "need the layout: --grid"),
    (["montage", "{folder}/r{row}_c{col}_{bad}.tif", "-o", "{tmp}/x.tif"], "unknown placeholder"),
    (["montage", "{folder}/r{row}_c{col}.tif", "-o", "{tmp}/x.png"], "output format"),
    (["montage", "{folder}/r{row}_c{col}.tif", "-o", "{tmp}/missing/x.tif"], "does not exist"),
    (["stack", "{folder}/r{row}_c{col}.tif", "-o", "{tmp}/x.tif"], "has no {z}"),
])
def test_user_mistakes_are_one_line(tile_folder, tmp_path, capsys, argv, message):
    folder, _ = tile_folder
    argv = [a.format(folder=folder, tmp=tmp_path, row="{row}", col="{col}", z="{z}", bad="{bad}",
                     index="{index}") for a in argv]
    code, _, err = run(argv + ["--quiet"], capsys)
    assert code == 2
    assert err.startswith("spectralign-fast: error:") and err.count("\n") == 1
    assert message in err
    assert "Traceback" not in err


def test_unreadable_tile_is_named(tile_folder, tmp_path, capsys):
    folder, tiles = tile_folder
    bad = tmp_path / "bad"
    bad.mkdir()
    for (r, c), img in tiles.items():
        tifffile.imwrite(bad / f"r{r}_c{c}.tif", img)
    (bad / "r1_c2.tif").write_bytes(b"not a tiff at all")
    code, _, err = run(["montage", bad / "r{row}_c{col}.tif", "-o", tmp_path / "x.ome.zarr", "--quiet",
                        "--overlap", "0.2"], capsys)
    assert code == 1 and err.count("\n") == 1
    assert "tile (1, 2)" in err and "r1_c2.tif" in err
    assert not (tmp_path / "x.ome.zarr").exists()


def test_entry_point_installed(tmp_path):
    done = subprocess.run([sys.executable, "-m", "spectralign_fast.cli", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "montage" in done.stdout and "stack" in done.stdout
    import shutil

    exe = shutil.which("spectralign-fast") or str(__import__("pathlib").Path(sys.executable).parent / "spectralign-fast")
    done = subprocess.run([exe, "montage", str(tmp_path / "none_r{row}_c{col}.tif"), "-o", str(tmp_path / "o.tif")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "no file matches" in done.stderr and "Traceback" not in done.stderr


def test_fft_planning_option(tile_folder, tmp_path):
    """--fft-planning reaches FFTW (in its own process: planning is per process), and the
    montage it makes agrees with the default planning's to rounding."""
    import os

    import spectralign_fast as sf

    folder, tiles = tile_folder
    out = tmp_path / "m.tif"
    script = ("import sys, spectralign_fast as sf\n"
              "from spectralign_fast import cli\n"
              "code = cli.main(sys.argv[1:])\n"
              "print(sf.config()['fft_planning'])\n"
              "sys.exit(code)\n")
    env = dict(os.environ, SPECTRALIGN_FFTW_WISDOM="")
    done = subprocess.run([sys.executable, "-c", script, "montage", str(folder / "r{row}_c{col}.tif"), "-o",
                           str(out), "--overlap", "0.2", "--quiet", "--fft-planning", "estimate"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "estimate"
    saved = json.loads((tmp_path / "m.json").read_text())
    expected = sf.montage(tiles, overlap=0.2, progress=False)
    for tile, want in zip(saved["tiles"], expected.transforms.values()):
        np.testing.assert_allclose(np.asarray(tile["transform"]), np.asarray(want), atol=1e-3)
    done = subprocess.run([sys.executable, "-m", "spectralign_fast.cli", "montage", "x{row}{col}.tif", "-o",
                           str(tmp_path / "n.tif"), "--fft-planning", "hard"], capture_output=True, text=True)
    assert done.returncode == 2 and "invalid choice" in done.stderr
