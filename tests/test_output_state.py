"""OmeZarrWriter never trusts its state file for where to commit, never deletes what it did not
make, and refuses absurd sizes before writing (issue "Reliability", findings 10 and 12)."""
from __future__ import annotations

import json
import pickle
import resource

import numpy as np
import pytest

from spectralign_fast.io import OmeZarrWriter, write_ome_zarr
from spectralign_fast.io.omezarr import STATE_FILE


def _tamper(w: OmeZarrWriter, **changes) -> None:
    state_file = w.tmp_path / STATE_FILE
    state = json.loads(state_file.read_text())
    state.update(changes)
    state_file.write_text(json.dumps(state))


def _fill(w: OmeZarrWriter) -> None:
    img = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    for (y, x, h, ww), k in zip(w.grid(0), range(len(w.grid(0)))):
        gx = w.grid_shape(0)[1]
        w.write_chunk(k // gx, k % gx, img[y:y + h, x:x + ww])
    for lv in range(1, w.levels):
        gy, gx = w.grid_shape(lv)
        for cy in range(gy):
            for cx in range(gx):
                w.build_chunk(lv, cy, cx)


def test_edited_state_path_is_refused_and_nothing_else_is_touched(tmp_path):
    victim = tmp_path / "precious"
    victim.mkdir()
    (victim / "data.txt").write_text("irreplaceable")
    w = OmeZarrWriter.create(tmp_path / "out.ome.zarr", (64, 64), "uint16", chunk=32)
    _fill(w)
    _tamper(w, path=str(victim), overwrite=True)
    with pytest.raises(ValueError, match="state edited"):
        OmeZarrWriter.open(w.tmp_path)
    with pytest.raises(ValueError, match="state edited"):
        pickle.loads(pickle.dumps(w))
    # The writer in hand commits onto its own path only.
    assert w.commit() == (tmp_path / "out.ome.zarr").absolute()
    assert (victim / "data.txt").read_text() == "irreplaceable"


def test_renamed_temporary_cannot_commit_elsewhere(tmp_path):
    w = OmeZarrWriter.create(tmp_path / "a.ome.zarr", (64, 64), "uint16", chunk=32)
    moved = w.tmp_path.with_name(w.tmp_path.name.replace("a.ome.zarr", "b.ome.zarr"))
    w.tmp_path.rename(moved)
    with pytest.raises(ValueError, match="state edited"):
        OmeZarrWriter.open(moved)


@pytest.mark.parametrize("changes", [{"shape": "big"}, {"levels": 0}, {"overwrite": "yes"}, {"dtype": "complex64"}])
def test_damaged_state_is_refused(tmp_path, changes):
    w = OmeZarrWriter.create(tmp_path / "out.ome.zarr", (64, 64), "uint16", chunk=32)
    _tamper(w, **changes)
    with pytest.raises((ValueError, TypeError)):
        OmeZarrWriter.open(w.tmp_path)
    w.abort()
    assert list(tmp_path.iterdir()) == []


def test_overwrite_never_deletes_a_folder_that_is_not_a_store(tmp_path):
    final = tmp_path / "out.ome.zarr"
    final.mkdir()
    (final / "notes.txt").write_text("mine")
    w = OmeZarrWriter.create(final, (64, 64), "uint16", chunk=32, overwrite=True)
    _fill(w)
    with pytest.raises(FileExistsError, match="not an OME-Zarr store"):
        w.commit()
    assert (final / "notes.txt").read_text() == "mine"
    w.abort()
    # A real store is replaced as before.
    final2 = tmp_path / "two.ome.zarr"
    for k in range(2):
        w = OmeZarrWriter.create(final2, (64, 64), "uint16", chunk=32, overwrite=True)
        _fill(w)
        w.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ome.zarr", "two.ome.zarr"]


def test_absurd_output_is_refused_up_front_with_bounded_memory(tmp_path):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match="chunk files|GiB"):
        write_ome_zarr(tmp_path / "huge.ome.zarr", (10**9, 10**9), "uint8", lambda *a: None)
    with pytest.raises(ValueError, match="GiB"):
        OmeZarrWriter.create(tmp_path / "huge.ome.zarr", (10**7, 10**7), "float32", chunk=8192)
    grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grew_mb < 200
    assert list(tmp_path.iterdir()) == []  # no .partial-* left behind


def test_tasks_are_submitted_lazily(tmp_path):
    # 1024 chunks, 2 threads: the pool never holds more than a few tasks at once.
    seen = []

    def region(y0, x0, h, w):
        seen.append((y0, x0))
        return np.zeros((h, w), np.uint8)

    write_ome_zarr(tmp_path / "many.ome.zarr", (512, 512), "uint8", region, chunk=16, threads=2)
    assert len(seen) == 1024


def test_short_write_of_a_tiff_says_the_disk_is_full(tmp_path, monkeypatch):
    # Issue "Reliability": a full disk under tifffile surfaced as numpy's
    # "65536 requested and 64920 written".
    import tifffile

    from spectralign_fast.io import write_tiff

    def short_write(*args, **kwargs):
        raise OSError("65536 requested and 64920 written")

    monkeypatch.setattr(tifffile, "imwrite", short_write)
    with pytest.raises(OSError, match="no space left on the device"):
        write_tiff(tmp_path / "x.tif", np.zeros((64, 64), np.uint16))
    assert list(tmp_path.iterdir()) == []
