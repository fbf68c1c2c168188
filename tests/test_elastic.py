"""align_stack(model="elastic") against known truth: MNI152 sections and montaged photographs."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import spectralign_fast as sf
from spectralign_fast.synthetic import photograph
from spectralign_fast.synthetic_sections import mni_axial_slices, section_tiles, serial_sections

import sections_truth as truth

pytest.importorskip("nilearn")


@pytest.fixture(scope="module")
def mni():
    ss = serial_sections(mni_axial_slices(60, 20), seed=1, cycles=(0.5, 1.5), max_displacement=3.0)
    res = sf.align_stack(ss.images, model="elastic", mesh_spacing=16, z_size=96, z_step=32, progress=False)
    return ss, res


def _brain(ss, res, q):
    from scipy.ndimage import map_coordinates

    keep = np.ones(len(q), bool)
    for z in range(len(ss.images)):
        X = truth.reference_points(res, ss, z, q)
        keep &= map_coordinates(ss.reference[z], [X[:, 1], X[:, 0]], order=1) > 0.15
    return keep


def test_mni_sections_within_half_a_pixel_of_the_truth(mni):
    ss, res = mni
    q = truth.output_grid(res)
    keep = _brain(ss, res, q)
    assert keep.sum() > 3000
    elastic = truth.neighbour_error(res, ss, q, keep)
    affine = truth.neighbour_error(res, ss, q, keep, elastic=False)
    assert elastic < 0.5, (elastic, affine)
    assert affine > 2.5 * elastic  # the affine alignment alone, the baseline
    assert not res.elastic.inverted.any()
    assert res.model == "affine" and res.elastic.displacement.shape == (20, 16, 14, 2)
    assert np.all(res.elastic.residual_rms < res.elastic.affine_rms)
    assert set(res.elastic.timings) == {"flow", "solve"} and res.elastic.solve["unknowns"] == 20 * 16 * 14


def test_aligned_neighbours_correlate_like_the_undeformed_slices(mni):
    ss, res = mni
    img, ref = res.image, ss.reference
    h, w = ref.shape[1:]
    x0, y0 = (int(round(-c)) for c in res.canvas[:2])  # canvas pixel of section 0's pixel (0, 0)
    got, want = [], []
    for z in range(len(ref) - 1):
        a, b = img[z, y0:y0 + h, x0:x0 + w], img[z + 1, y0:y0 + h, x0:x0 + w]
        mask = (ref[z] > 0.15) & (ref[z + 1] > 0.15)
        got.append(truth.ncc(a, b, (a > 0.15) & (b > 0.15)))
        want.append(truth.ncc(ref[z], ref[z + 1], mask))
    assert np.mean(got) >= np.mean(want) - 0.02, (np.mean(got), np.mean(want))


def test_push_map_and_its_inverse(mni):
    _, res = mni
    q = np.random.default_rng(0).uniform(20, 180, (200, 2))
    for z in (0, 7, 19):
        p = res.elastic.from_output(z, q)
        np.testing.assert_allclose(res.elastic.to_output(z, p), q, atol=1e-9)
    with pytest.raises(ValueError, match="shape"):
        res.elastic.to_output(0, np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        res.elastic.from_output(0, [[np.nan, 1.0]])


def test_threads_and_outputs_agree(mni, tmp_path):
    ss, res = mni
    imgs = ss.images[:6]
    kw = dict(model="elastic", mesh_spacing=16, z_size=96, z_step=32, progress=False)
    one = sf.align_stack(imgs, threads=1, **kw)
    two = sf.align_stack(imgs, threads=2, **kw)
    np.testing.assert_array_equal(one.elastic.displacement, two.elastic.displacement)
    np.testing.assert_array_equal(one.image, two.image)
    out = sf.align_stack(imgs, threads=2, output=tmp_path / "s.ome.zarr", chunk=64, **kw)
    assert out.image is None
    np.testing.assert_array_equal(sf.io.read_ome_zarr(tmp_path / "s.ome.zarr"), one.image)
    sf.align_stack(imgs, output=tmp_path / "s.tif", **kw)
    import tifffile

    np.testing.assert_array_equal(tifffile.imread(tmp_path / "s.tif"), one.image)
    # Saved and loaded, the result renders the same stack through its meshes.
    one.save(tmp_path / "r.json")
    back = sf.MontageResult.load(tmp_path / "r.json")
    np.testing.assert_array_equal(back.elastic.displacement, one.elastic.displacement)
    back.write(tmp_path / "again.ome.zarr", tiles={(z, 0, 0): im for z, im in enumerate(imgs)}, chunk=64)
    np.testing.assert_array_equal(sf.io.read_ome_zarr(tmp_path / "again.ome.zarr"), one.image)


def test_montaged_sections(tmp_path):
    """A photograph cut into a 2 x 2 grid per section over 12 sections: montaged levels go through
    the same path (each rendered through its tiles' affines, then through its mesh)."""
    n = 12
    ss = serial_sections(np.repeat(photograph("camera")[None], n, 0), seed=2, cycles=(0.5, 1.5),
                         max_displacement=4.0)
    cut = [section_tiles(im, 2, 2, overlap=0.25) for im in ss.images]
    tiles = [c[0] for c in cut]
    origins = [c[1] for c in cut]
    res = sf.align_stack(tiles, model="elastic", mesh_spacing=32, z_size=128, z_step=64, progress=False)
    assert not res.elastic.inverted.any()
    q = truth.output_grid(res, 3)
    # Where the photograph has texture (the flat sky and the image border give no flow).
    X = np.array([truth.reference_points(res, ss, z, q, tiles=tiles, origins=origins) for z in range(n)])
    keep = np.all((X[..., 0] > 48) & (X[..., 0] < 464) & (X[..., 1] > 160) & (X[..., 1] < 464), 0)
    assert keep.sum() > 5000
    kw = dict(tiles=tiles, origins=origins)
    elastic = truth.neighbour_error(res, ss, q, keep, **kw)
    affine = truth.neighbour_error(res, ss, q, keep, elastic=False, **kw)
    assert elastic < 0.5 and affine > 1.5 * elastic, (elastic, affine)
    assert res.image.shape[0] == n


def test_sections_of_different_sizes():
    ss = serial_sections(mni_axial_slices(80, 4), seed=3, cycles=(0.5, 1.5))
    imgs = [im if z % 2 else im[5:-7, 3:-9] for z, im in enumerate(ss.images)]
    res = sf.align_stack(imgs, model="elastic", mesh_spacing=16, z_size=96, z_step=32, progress=False)
    assert res.image.shape[0] == 4 and not res.elastic.inverted.any()
    assert np.all(res.elastic.residual_rms < res.elastic.affine_rms)


def test_bad_elastic_input():
    ss = serial_sections(mni_axial_slices(80, 3), seed=4, cycles=(0.5, 1.5))
    kw = dict(model="elastic", z_size=96, z_step=32, progress=False, render=False)
    with pytest.raises(ValueError, match=r"mesh_spacing=200 px is larger than half of section 0"):
        sf.align_stack(ss.images, mesh_spacing=200, **kw)
    for bad, message in [(dict(mesh_spacing=2), "mesh_spacing"), (dict(stiffness=-1), "stiffness"),
                         (dict(pull=0), "pull"), (dict(flow_step=0), "flow_step"),
                         (dict(flow_size=4), "flow_size"), (dict(flow_passes=0), "flow_passes"),
                         (dict(stiffness=float("nan")), "stiffness")]:
        with pytest.raises(ValueError, match=message):
            sf.align_stack(ss.images, **bad, **kw)
    blank = [ss.images[0], np.zeros_like(ss.images[1]), ss.images[2]]
    with pytest.raises(ValueError, match=r"levels 0 and 1"):
        sf.align_stack(blank, mesh_spacing=16, **kw)
    # The caller's arrays are not modified.
    before = [im.copy() for im in ss.images]
    sf.align_stack(ss.images, mesh_spacing=16, **kw)
    for a, b in zip(before, ss.images):
        np.testing.assert_array_equal(a, b)


def test_a_folded_section_is_named_not_silently_crumpled():
    """Section 2 folded: a 14 px band of it appears twice (tissue folded over itself), so the mesh
    must squeeze it to nothing. With weak springs the meshes invert there and the warning names
    the sections, section 2 the worst; with the default stiffness nothing inverts."""
    ss = serial_sections(mni_axial_slices(80, 5), seed=5, cycles=(0.5, 1.5))
    im = ss.images[2]
    y0 = im.shape[0] // 2
    imgs = list(ss.images)
    imgs[2] = np.ascontiguousarray(np.concatenate([im[:y0 + 14], im[y0:]], 0)[:im.shape[0]])
    kw = dict(model="elastic", z_size=96, z_step=32, progress=False, render=False)
    with pytest.warns(RuntimeWarning, match=r"inverted triangles") as record:
        weak = sf.align_stack(imgs, mesh_spacing=8, stiffness=0.02, **kw)
    inverted = weak.elastic.inverted
    assert inverted[2] > 0 and inverted[2] == inverted.max()
    assert f"2 ({inverted[2]})" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stiff = sf.align_stack(imgs, mesh_spacing=16, **kw)
    assert not stiff.elastic.inverted.any()
