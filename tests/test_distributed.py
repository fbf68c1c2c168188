"""montage / align_stack / CrossCorr on a real Dask cluster (LocalCluster, 2 worker processes on loopback).

FFTW_MEASURE chooses algorithms by timing, so plans and the last bits of FFT
results differ between processes; the cluster tasks plan with the client's
setting, and this module plans with "estimate" everywhere so results can be
compared bit for bit.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest

import spectralign_fast as sf
from spectralign_fast import _core
from spectralign_fast.io import read_ome_zarr
from spectralign_fast.synthetic import grid_tiles, photograph, sample

distributed = pytest.importorskip("distributed")
tifffile = pytest.importorskip("tifffile")


def _estimate() -> None:
    sf.set_fft_planning("estimate")


def _local_run(kind: str, *args):
    """The local reference, run in a fresh process: plans cached earlier in the test process were
    made with "measure" and would differ in the last bits."""
    if kind == "montage":
        paths, out = args
        return sf.montage(paths, overlap=0.15, progress=False, output=out, chunk=256)
    if kind == "montage in memory":
        return sf.montage(args[0], overlap=0.15, progress=False)
    if kind == "rigid":
        return sf.montage(args[0], overlap=0.15, model="rigid", progress=False, render=False)
    if kind == "stack":
        paths, out = args
        return sf.align_stack(paths, progress=False, output=out, chunk=128)
    if kind == "stack in memory":
        return sf.align_stack(args[0], progress=False)
    if kind == "elastic stack":
        paths, out = args
        return sf.align_stack(paths, model="elastic", mesh_spacing=64, progress=False, output=out, chunk=128)
    if kind == "crosscorr":
        frames, ref = args
        model = sf.CrossCorr().fit(frames, ref)
        return sf.CrossCorr().fit(frames, iterations=1).toarray(), model.toarray(), model.transform(frames)
    raise ValueError(kind)


@pytest.fixture(scope="module")
def local():
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_estimate) as pool:
        yield lambda *args: pool.submit(_local_run, *args).result()


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    before = _core.config.fft_planning()
    sf.set_fft_planning("estimate")
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=":0", silence_logs=logging.CRITICAL)  # any free port: 8787 may be taken
    c = Client(cluster)
    c.run(sf.set_fft_planning, "estimate")
    try:
        yield c
    finally:
        # Client before cluster: closing the cluster under a live client logs and warns.
        c.close()
        cluster.close()
        sf.set_fft_planning(before)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """3x3 grid cut from the retina (rotations up to 0.5 degrees), uint16, written as TIFF files."""
    tiles, truth = grid_tiles(photograph("retina"), 3, 3, overlap=0.15, seed=7)
    folder = tmp_path_factory.mktemp("tiles")
    paths = {}
    for k, v in tiles.items():
        paths[k] = folder / f"r{k[0]}_c{k[1]}.tif"
        tifffile.imwrite(paths[k], v)
    return tiles, paths


@pytest.fixture(scope="module")
def local_montage(grid, tmp_path_factory, local):
    _, paths = grid
    out = tmp_path_factory.mktemp("local") / "m.ome.zarr"
    return local("montage", paths, out), out


def _same_result(a, b):
    assert list(a.transforms) == list(b.transforms)
    for t in a.transforms:
        np.testing.assert_array_equal(np.asarray(a.transforms[t]), np.asarray(b.transforms[t]))
    assert len(a.matches) == len(b.matches)
    for pa, pb in zip(a.matches, b.matches):
        assert (pa.tile1, pa.tile2, pa.kind) == (pb.tile1, pb.tile2, pb.kind)
        np.testing.assert_array_equal(pa.p1, pb.p1)
        np.testing.assert_array_equal(pa.p2, pb.p2)
        np.testing.assert_array_equal(pa.kept, pb.kept)
    assert a.tile_sizes == b.tile_sizes
    assert a.canvas == b.canvas


def _same_store(a: Path, b: Path) -> int:
    import zarr

    levels = len(zarr.open_group(a, mode="r").attrs["multiscales"][0]["datasets"])
    for lv in range(levels):
        x, y = read_ome_zarr(a, lv), read_ome_zarr(b, lv)
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)
    assert not list(b.rglob("*.partial")), "a chunk write was left half-done"
    return levels


def test_montage_on_cluster_equals_local(client, grid, local_montage, tmp_path):
    _, paths = grid
    res_local, out_local = local_montage
    out = tmp_path / "m.ome.zarr"
    res = sf.montage(paths, overlap=0.15, progress=False, output=out, chunk=256, client=client)
    _same_result(res_local, res)
    assert _same_store(out_local, out) >= 2  # level 0 and at least one pyramid level
    assert res.output == out and res.image is None
    assert res.sources[(1, 2)] == str(paths[(1, 2)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ome.zarr"]


def test_arrays_are_scattered_and_memory_output_assembled(client, grid, local_montage, local):
    tiles, _ = grid
    copies = {k: v.copy() for k, v in tiles.items()}
    res_local, out_local = local_montage
    res = sf.montage(tiles, overlap=0.15, progress=False, client=client, threads=2, chunk=512)
    _same_result(res_local, res)
    mem_local = local("montage in memory", tiles)
    np.testing.assert_array_equal(res.image, mem_local.image)
    for k in tiles:
        np.testing.assert_array_equal(tiles[k], copies[k])


def test_rigid_and_callables(client, grid, local):
    tiles, paths = grid
    loaders = {k: (lambda p=p: tifffile.imread(p)) for k, p in paths.items()}  # pickled with the tasks
    remote = sf.montage(loaders, overlap=0.15, model="rigid", progress=False, render=False, client=client)
    _same_result(local("rigid", paths), remote)


@pytest.fixture(scope="module")
def sections(tmp_path_factory):
    """4 sections of 500x500 with a known rotation and drift each, as TIFF files."""
    photo = photograph("retina")
    rng = np.random.default_rng(3)
    folder = tmp_path_factory.mktemp("sections")
    paths = []
    for z in range(4):
        tf = (sf.Affine.translator(np.array([400.0, 400.0]) + rng.uniform(-30, 30, 2))
              @ sf.Affine.rotator(np.radians(rng.uniform(-1, 1)), (250, 250)))
        img = sample(photo, tf, (500, 500)) + rng.normal(0, 0.005, (500, 500)).astype(np.float32)
        paths.append(folder / f"s{z}.tif")
        tifffile.imwrite(paths[-1], img.astype(np.float32))
    return paths


def test_align_stack_on_cluster_equals_local(client, sections, tmp_path, local):
    ref = local("stack", sections, tmp_path / "local.ome.zarr")
    remote = sf.align_stack(sections, progress=False, output=tmp_path / "remote.ome.zarr", chunk=128, client=client)
    _same_result(ref, remote)
    assert remote.levels == ref.levels
    assert _same_store(tmp_path / "local.ome.zarr", tmp_path / "remote.ome.zarr") >= 2
    # In memory: rendered on the cluster chunk by chunk, assembled here.
    mem_local = local("stack in memory", sections)
    mem = sf.align_stack(sections, progress=False, client=client)
    assert mem.image.shape == mem_local.image.shape == (4,) + read_ome_zarr(tmp_path / "local.ome.zarr").shape[1:]
    np.testing.assert_array_equal(mem.image, mem_local.image)


def test_elastic_stack_on_cluster_equals_local(client, sections, tmp_path, local):
    ref = local("elastic stack", sections, tmp_path / "local.ome.zarr")
    remote = sf.align_stack(sections, model="elastic", mesh_spacing=64, progress=False,
                            output=tmp_path / "remote.ome.zarr", chunk=128, client=client)
    _same_result(ref, remote)
    assert len(remote.elastic.flows) == 3
    for a, b in zip(ref.elastic.flows, remote.elastic.flows):
        np.testing.assert_array_equal(a.kept, b.kept)
        np.testing.assert_array_equal(a.p1, b.p1)
        np.testing.assert_array_equal(a.p2, b.p2)
    np.testing.assert_array_equal(remote.elastic.displacement, ref.elastic.displacement)
    assert _same_store(tmp_path / "local.ome.zarr", tmp_path / "remote.ome.zarr") >= 2
    mem = sf.align_stack(sections, model="elastic", mesh_spacing=64, progress=False, client=client)
    np.testing.assert_array_equal(mem.image, read_ome_zarr(tmp_path / "local.ome.zarr"))


def test_crosscorr_with_active_client(client, tmp_path, local):
    import dask.array as da

    from test_registration import drift_stack

    frames, _, _ = drift_stack(photograph("camera"), 12, 128, seed=4)
    frames = frames.astype(np.float32)
    darr = da.from_array(frames, chunks=(4, 128, 128))
    ref = frames.mean(axis=0)
    fit_mean, fit_ref, registered = local("crosscorr", frames, ref)
    # With a Client alive, the default Dask scheduler is the cluster.
    assert distributed.get_client() is client
    remote = sf.CrossCorr().fit(darr, iterations=1)
    np.testing.assert_allclose(remote.toarray(), fit_mean, rtol=0, atol=1e-6)  # mean summed per block
    model = sf.CrossCorr().fit(darr, ref)
    np.testing.assert_array_equal(model.toarray(), fit_ref)
    out = model.transform(darr)
    assert isinstance(out, da.Array)
    da.to_zarr(out, str(tmp_path / "registered.zarr"))  # each worker writes its blocks
    import zarr

    np.testing.assert_array_equal(zarr.open_array(tmp_path / "registered.zarr", mode="r")[...], registered)


def _kill_once(path: Path, marker: Path):
    """A tile loader whose first call anywhere kills its own process (a worker dying mid-render)."""
    def load():
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return tifffile.imread(path)
        os.close(fd)
        os._exit(1)
    return load


def test_worker_killed_mid_render(client, grid, local_montage, tmp_path):
    _, paths = grid
    res_local, out_local = local_montage
    placed = sf.montage(paths, overlap=0.15, progress=False, render=False, client=client)
    marker = tmp_path / "killed"
    tiles = dict(paths)
    tiles[(1, 1)] = _kill_once(paths[(1, 1)], marker)  # the centre tile: several chunks need it
    out = tmp_path / "m.ome.zarr"
    placed.write(out, tiles, chunk=256, client=client)
    assert marker.exists()  # a worker did die
    _same_store(out_local, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed", "m.ome.zarr"]
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it


def test_unreadable_tile_is_named(client, grid, tmp_path):
    _, paths = grid
    bad = dict(paths)
    bad[(2, 1)] = tmp_path / "broken.tif"
    bad[(2, 1)].write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match=r"tile \(2, 1\).*broken\.tif"):
        sf.montage(bad, overlap=0.15, progress=False, output=tmp_path / "m.ome.zarr", client=client)
    gone = dict(paths)
    gone[(0, 2)] = tmp_path / "missing.tif"
    with pytest.raises(FileNotFoundError, match=r"tile \(0, 2\).*missing\.tif"):
        sf.montage(gone, overlap=0.15, progress=False, output=tmp_path / "m.ome.zarr", client=client)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.tif"]


def test_tile_unreadable_during_render_leaves_no_store(client, grid, local_montage, tmp_path):
    _, paths = grid
    placed = local_montage[0]
    tiles = dict(paths)
    tiles[(0, 1)] = tmp_path / "gone.tif"
    with pytest.raises(FileNotFoundError, match=r"tile \(0, 1\).*gone\.tif"):
        placed.write(tmp_path / "m.ome.zarr", tiles, chunk=256, client=client)
    assert list(tmp_path.iterdir()) == []


def _slow(path: Path, delay: float):
    def load():
        time.sleep(delay)
        return tifffile.imread(path)
    return load


def _fails():
    def load():
        raise RuntimeError("this tile fails on purpose")
    return load


def test_failed_render_stops_its_writers_and_waits_for_them(client, grid, local_montage, tmp_path):
    """Finding 11: after a failure the other tasks write nothing more (each checks the store before
    every chunk), montage waits for every running task, and only then removes the temporary store,
    so nothing appears in the output's folder afterwards."""
    _, paths = grid
    placed = local_montage[0]
    delay = 0.2
    tiles = {t: _slow(p, delay) for t, p in paths.items()}
    tiles[(0, 0)] = _fails()  # in the first chunk: the other batches are just starting
    out = tmp_path / "out" / "m.ome.zarr"
    out.parent.mkdir()
    h, w = placed.renderer().shape
    chunks = -(-h // 64) * -(-w // 64)
    t0 = time.perf_counter()
    with pytest.raises(Exception, match="on purpose"):
        placed.write(out, tiles, chunk=64, client=client)
    elapsed = time.perf_counter() - t0
    assert list(out.parent.iterdir()) == []
    # Rendering every chunk would take at least chunks * delay / 2 workers.
    assert elapsed < chunks * delay / 2 / 3, f"{elapsed:.1f} s: the other tasks were not stopped"
    time.sleep(1.5)
    assert list(out.parent.iterdir()) == [], "a task wrote after the run was aborted"


def test_bad_outputs_and_clients(client, grid, tmp_path):
    tiles, paths = grid
    with pytest.raises(ValueError, match=r"OME-Zarr.*client=None"):
        sf.montage(paths, overlap=0.15, progress=False, output=tmp_path / "m.tif", client=client)
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        sf.montage(paths, overlap=0.15, progress=False, output=tmp_path / "no" / "m.ome.zarr", client=client)
    with pytest.raises(TypeError, match="dask.distributed.Client"):
        sf.montage(paths, overlap=0.15, progress=False, client="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="OME-Zarr"):
        sf.align_stack([paths[(0, 0)], paths[(0, 1)]], progress=False, output=tmp_path / "s.tif", client=client)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(client, grid, tmp_path):
    _, paths = grid
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            sf.montage(paths, overlap=0.15, progress=False, output=ro / "m.ome.zarr", client=client)
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_cli_scheduler(client, grid, local_montage, tmp_path, capsys):
    from spectralign_fast.cli import main

    _, paths = grid
    folder = paths[(0, 0)].parent
    out = tmp_path / "cli.ome.zarr"
    address = client.scheduler.address
    assert main(["montage", str(folder / "r{row}_c{col}.tif"), "-o", str(out), "--overlap", "0.15",
                 "--chunk", "256", "--quiet", "--scheduler", address]) == 0
    _same_store(local_montage[1], out)
    assert (tmp_path / "cli.json").is_file()
    assert main(["montage", str(folder / "r{row}_c{col}.tif"), "-o", str(tmp_path / "x.tif"), "--quiet",
                 "--scheduler", address]) == 2
    assert "*.ome.zarr" in capsys.readouterr().err


def test_cli_unreachable_scheduler(grid, tmp_path, capsys):
    import time

    from spectralign_fast.cli import main

    _, paths = grid
    folder = paths[(0, 0)].parent
    t0 = time.perf_counter()
    code = main(["montage", str(folder / "r{row}_c{col}.tif"), "-o", str(tmp_path / "m.ome.zarr"), "--quiet",
                 "--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "2"])
    assert code == 2
    assert time.perf_counter() - t0 < 20
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_relative_output_path_with_workers_elsewhere(client, grid, local_montage, sections, tmp_path,
                                                     monkeypatch):
    """The workers' working folder is not the client's: a relative output must still land here."""
    _, paths = grid
    here = tmp_path / "client-cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    # the workers were started in the test session's folder
    assert all(cwd != str(here) for cwd in client.run(os.getcwd).values())
    sf.montage(paths, overlap=0.15, progress=False, output="m.ome.zarr", chunk=256, client=client)
    _same_store(local_montage[1], here / "m.ome.zarr")
    assert sorted(p.name for p in here.iterdir()) == ["m.ome.zarr"]
    sf.align_stack(sections, progress=False, output="s.ome.zarr", chunk=128, client=client)
    assert read_ome_zarr(here / "s.ome.zarr").shape[0] == len(sections)
    assert sorted(p.name for p in here.iterdir()) == ["m.ome.zarr", "s.ome.zarr"]
