"""Files left by killed or failed runs: stale temporaries, an image without its JSON, writes after
an abort (Reliability issue: "smaller things users hit" and finding 11)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile

import spectralign_fast as sf
from spectralign_fast import cli
from spectralign_fast.io import OmeZarrWriter, read_ome_zarr, write_tiff
from spectralign_fast.io.atomic import remove_stale_temporaries, temp_owner
from spectralign_fast.synthetic import grid_tiles, photograph


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _owner(pid: int) -> str:
    return f"{pid}@{temp_owner().split('@', 1)[1]}"


def test_temporary_names_carry_pid_and_host(tmp_path):
    seen = []

    def region(y, x, h, w):
        seen.extend(p.name for p in tmp_path.iterdir())
        return np.zeros((h, w), np.uint8)

    write_tiff(tmp_path / "x.tif", (8, 8), "uint8", region)
    assert seen and all(n.startswith(f".x.tif.{temp_owner()}.") and n.endswith(".part.tif") for n in seen)
    w = OmeZarrWriter.create(tmp_path / "m.ome.zarr", (8, 8), "uint8")
    assert w.tmp_path.name.startswith(f"m.ome.zarr.partial-{temp_owner()}-")
    w.abort()


def test_stale_temporaries_of_dead_processes_are_removed_on_the_next_write(tmp_path):
    dead, live = _owner(_dead_pid()), temp_owner()
    other_host = f"{_dead_pid()}@someotherhost"
    stale_tif = tmp_path / f".x.tif.{dead}.abcd1234.part.tif"
    live_tif = tmp_path / f".x.tif.{live}.abcd1234.part.tif"
    foreign_tif = tmp_path / f".x.tif.{other_host}.abcd1234.part.tif"
    other_output = tmp_path / f".y.tif.{dead}.abcd1234.part.tif"
    lookalike = tmp_path / f".x.tif.{dead}.abcd1234.part.tif.bak"
    for f in (stale_tif, live_tif, foreign_tif, other_output, lookalike):
        f.write_bytes(b"half a tiff")
    stale_zarr = tmp_path / f"m.ome.zarr.partial-{dead}-abcd_123"
    live_zarr = tmp_path / f"m.ome.zarr.partial-{live}-abcd_123"
    old_style = tmp_path / "m.ome.zarr.partial-abcd_123"  # no owner: nothing proves it is stale
    for d in (stale_zarr, live_zarr, old_style):
        (d / "0").mkdir(parents=True)
        (d / "0" / "0.0").write_bytes(b"chunk")
    link = tmp_path / f"m.ome.zarr.partial-{dead}-link0000"
    link.symlink_to(live_zarr)

    write_tiff(tmp_path / "x.tif", (8, 8), "uint8", lambda y, x, h, w: np.ones((h, w), np.uint8))
    w = OmeZarrWriter.create(tmp_path / "m.ome.zarr", (8, 8), "uint8")
    w.write_chunk(0, 0, np.ones((8, 8), np.uint8))
    w.commit()

    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "x.tif", tmp_path / "m.ome.zarr", live_tif, foreign_tif,
                                             other_output, lookalike, live_zarr, old_style, link))
    assert (live_zarr / "0" / "0.0").read_bytes() == b"chunk"  # the link's target was not followed
    assert remove_stale_temporaries(tmp_path / "x.tif", "file") == []
    with pytest.raises(ValueError, match="kind"):
        remove_stale_temporaries(tmp_path / "x.tif", "folder")


def test_stack_store_cleans_its_stale_temporaries(tmp_path):
    from spectralign_fast.io.stackstore import create_stack_store

    stale = tmp_path / f"s.ome.zarr.partial-{_owner(_dead_pid())}-abcd1234"
    stale.mkdir()
    tmp, _ = create_stack_store(tmp_path / "s.ome.zarr", (8, 8), 2, np.dtype(np.uint8), 8)
    assert not stale.exists() and tmp.name.startswith(f"s.ome.zarr.partial-{temp_owner()}-")


def test_no_chunk_is_written_after_an_abort(tmp_path):
    """A writer that already wrote (its zarr array cached) must not write on, and zarr must not
    recreate the folders, once the store was closed for writing or aborted elsewhere."""
    w = OmeZarrWriter.create(tmp_path / "m.ome.zarr", (16, 16), "uint8", chunk=8)
    other = OmeZarrWriter.open(w.tmp_path)  # as a worker process has it
    other.write_chunk(0, 0, np.ones((8, 8), np.uint8))
    w.close_for_writing()
    with pytest.raises(FileNotFoundError, match="gone"):
        other.write_chunk(0, 1, np.ones((8, 8), np.uint8))
    w.abort()
    with pytest.raises(FileNotFoundError, match="gone"):
        other.write_chunk(1, 0, np.ones((8, 8), np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def tile_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiles")
    tiles, _ = grid_tiles(photograph("retina"), 2, 3, overlap=0.2, seed=3, noise=0.003, vignetting=0.1)
    for (r, c), img in tiles.items():
        tifffile.imwrite(folder / f"r{r}_c{c}.tif", img)
    return folder


@pytest.mark.parametrize("name", ["m.tif", "m.ome.zarr"])
def test_image_without_its_json_is_an_incomplete_run(tile_folder, tmp_path, monkeypatch, capsys, name):
    out = tmp_path / name
    argv = ["montage", str(tile_folder / "r{row}_c{col}.tif"), "-o", str(out), "--overlap", "0.2", "--quiet",
            "--chunk", "128"]

    def killed(self, *args, **kwargs):
        raise KeyboardInterrupt  # stands in for a kill between the image and its JSON

    with monkeypatch.context() as m:
        m.setattr(sf.MontageResult, "save", killed)
        assert cli.main(argv) == 130
    assert out.exists() and not (tmp_path / "m.json").exists()
    assert (tmp_path / f".{name}.pending").exists()  # the lone image is marked as half a pair

    assert cli.main(argv) == 0  # the rerun replaces it (no --overwrite needed) and completes the pair
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "m.json"])
    assert cli.main(argv) == 2  # a complete pair is refused as before
    assert "already exists" in capsys.readouterr().err
    # --overwrite killed between the new image and its JSON: the old JSON must not pass for its pair.
    with monkeypatch.context() as m:
        m.setattr(sf.MontageResult, "save", killed)
        assert cli.main(argv + ["--overwrite"]) == 130
    assert not (tmp_path / "m.json").exists() and (tmp_path / f".{name}.pending").exists()
    assert cli.main(argv) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "m.json"])


def test_an_image_of_the_users_is_never_taken_for_half_a_pair(tile_folder, tmp_path, capsys):
    out = tmp_path / "m.tif"
    tifffile.imwrite(out, np.zeros((4, 4), np.uint8))
    argv = ["montage", str(tile_folder / "r{row}_c{col}.tif"), "-o", str(out), "--overlap", "0.2", "--quiet"]
    assert cli.main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert tifffile.imread(out).shape == (4, 4)
    # A marker left with a complete pair (killed just before removing it) is dropped.
    (tmp_path / "m.json").write_text("{}")
    (tmp_path / ".m.tif.pending").touch()
    assert cli.main(argv) == 2
    assert not (tmp_path / ".m.tif.pending").exists()
    assert tifffile.imread(out).shape == (4, 4)
