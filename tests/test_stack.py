"""align_stack(): serial sections with known truth, tiled levels, outputs, bad input."""
from __future__ import annotations

import numpy as np
import pytest

import spectralign_fast as sf
from spectralign_fast.io import read_ome_zarr
from spectralign_fast.synthetic import grid_tiles, photograph, registration_error, sample


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return photograph("retina")


@pytest.fixture(scope="module")
def sections(photo):
    """5 sections of 600x600 with a known rotation (up to 1 degree) and drift (up to 30 px) each."""
    rng = np.random.default_rng(11)
    truth, imgs = [], []
    for _ in range(5):
        tf = (sf.Affine.translator(np.array([350.0, 350.0]) + rng.uniform(-30, 30, 2))
              @ sf.Affine.rotator(np.radians(rng.uniform(-1, 1)), (300, 300)))
        img = sample(photo, tf, (600, 600)) + rng.normal(0, 0.005, (600, 600)).astype(np.float32)
        imgs.append(img.astype(np.float32))
        truth.append(tf)
    return imgs, truth


def _error(res, truth):
    found = {(z,): res.transforms[(z, 0, 0)] for z in range(len(truth))}
    return registration_error(found, {(z,): t for z, t in enumerate(truth)},
                              {(z,): res.tile_sizes[(z, 0, 0)] for z in range(len(truth))})


def test_sections_against_truth(sections):
    imgs, truth = sections
    copies = [a.copy() for a in imgs]
    res = sf.align_stack(imgs, progress=False)
    err = _error(res, truth)
    assert err["rms"] < 0.1, err
    assert res.levels == [[(z, 0, 0)] for z in range(5)]
    assert res.image.shape[0] == 5 and res.image.dtype == np.float32
    assert {pm.kind for pm in res.matches} == {"z"}
    for a, b in zip(imgs, copies):
        np.testing.assert_array_equal(a, b)
    # The rendered levels agree where both are covered (they show the same tissue).
    inner = (slice(200, -200), slice(200, -200))
    assert np.abs(res.image[0][inner] - res.image[3][inner]).mean() < 0.02


def test_rigid_model_and_3d_array(sections):
    imgs, truth = sections
    res = sf.align_stack(np.stack(imgs), model="rigid", progress=False, render=False)
    for tf in res.transforms.values():
        np.testing.assert_allclose(np.asarray(tf)[:, :2], np.eye(2))
    assert _error(res, truth)["rms"] < 6  # rotations of up to 1 degree over 600 px cannot be followed


def test_tiled_levels(photo):
    levels, truth = [], {}
    for z in range(3):
        tiles, tr = grid_tiles(photo, 2, 2, overlap=0.2, seed=20 + z, noise=0.003, vignetting=0.1)
        levels.append(tiles)
        truth.update({(z,) + k: v for k, v in tr.items()})
    res = sf.align_stack(levels, overlap=0.2, progress=False, render=False)
    assert registration_error(res.transforms, truth, res.tile_sizes)["rms"] < 0.3
    kinds = {pm.kind for pm in res.matches}
    assert {"horizontal", "vertical", "z"} <= kinds


def test_threads_do_not_change_the_result(sections):
    imgs, _ = sections
    a = sf.align_stack(imgs[:3], threads=1, progress=False, render=False)
    b = sf.align_stack(imgs[:3], threads=2, progress=False, render=False)
    for t in a.transforms:
        np.testing.assert_array_equal(np.asarray(a.transforms[t]), np.asarray(b.transforms[t]))


@pytest.mark.parametrize("name", ["stack.ome.zarr", "stack.tif"])
def test_stack_outputs(sections, tmp_path, name):
    import tifffile

    imgs, _ = sections
    mem = sf.align_stack(imgs[:3], progress=False)
    res = sf.align_stack(imgs[:3], progress=False, output=tmp_path / name, chunk=256)
    back = read_ome_zarr(tmp_path / name) if name.endswith("zarr") else tifffile.imread(tmp_path / name)
    np.testing.assert_array_equal(back, mem.image)
    assert res.output == tmp_path / name
    if name.endswith("zarr"):
        import zarr

        meta = zarr.open_group(tmp_path / name, mode="r").attrs["multiscales"][0]
        assert [a["name"] for a in meta["axes"]] == ["z", "y", "x"]
        # Every pyramid level (built chunk by chunk) equals whole planes downsampled.
        from spectralign_fast.io import downsample

        assert len(meta["datasets"]) >= 2
        below = back
        for lv in range(1, len(meta["datasets"])):
            got = read_ome_zarr(tmp_path / name, lv)
            np.testing.assert_array_equal(got, np.stack([downsample(plane, 2) for plane in below]))
            below = got
    with pytest.raises(FileExistsError):
        sf.align_stack(imgs[:3], progress=False, output=tmp_path / name)


def test_bad_input(sections):
    imgs, _ = sections
    with pytest.raises(ValueError, match="at least 2 levels"):
        sf.align_stack([imgs[0]])
    with pytest.raises(TypeError, match="one entry per z-level"):
        sf.align_stack(imgs[0])
    with pytest.raises(ValueError, match="level 1 is None"):
        sf.align_stack([imgs[0], None])
    rng = np.random.default_rng(0)
    noise = rng.normal(size=imgs[0].shape).astype(np.float32)
    with pytest.raises(ValueError, match="levels 0 and 1"):
        sf.align_stack([imgs[0], noise], progress=False, min_snr=15)
    with pytest.raises(ValueError, match="z_step"):
        sf.align_stack(imgs[:2], z_step=0)
