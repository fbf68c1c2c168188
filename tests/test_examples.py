"""Every worked example in examples/ runs end to end, and its printed claims hold.

Each runs in a subprocess (as a user would run it) with warnings as errors; the numbers it
prints on its RESULT line are checked against the bounds the docs state, and its figures must
exist and show something.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, YFP_TILES

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, out: Path, *args: str) -> dict:
    env = dict(os.environ, SPECTRALIGN_SHARED_DATA=str(SHARED_DATA), MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-W", "error", str(EXAMPLES / name), "--output", str(out), *args],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(lines) == 1, proc.stdout
    assert not list(out.glob(".*.part*")), "temporary files left behind"
    return json.loads(lines[0][len("RESULT "):])


def assert_figure(path: Path, min_size=(400, 300), *, chart: bool = False) -> None:
    """The PNG exists, has a sensible size, and is not blank (real contrast and colour).

    A chart (plotted lines and bars) is mostly white background by design: it must hold some
    coloured marks instead of mostly image content.
    """
    from PIL import Image

    assert path.is_file(), f"{path.name} was not written"
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size[0] >= min_size[0] and im.size[1] >= min_size[1], im.size
        rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert rgb.std() > 20, f"{path.name} looks blank"
    if chart:
        colourful = rgb.max(axis=-1) - rgb.min(axis=-1) > 60
        assert np.mean(colourful) > 0.02, f"{path.name} has no coloured marks"
        return
    # Most of the figure is image content, not white background.
    assert np.mean(rgb.min(axis=-1) < 200) > 0.3, f"{path.name} is mostly empty"


def test_two_tiles_example(tmp_path):
    claims = run_example("two_tiles.py", tmp_path)
    # Photograph with a known offset and a 0.8 degree rotation (docs/examples.md states these).
    assert claims["photo_guess_error_px"] > 10             # the stage guess is visibly off
    assert claims["photo_rigid_error_px"] < 6              # one coarse match: near, not exact
    assert claims["photo_affine_error_px"] < 0.4           # fine grid + affine: subpixel everywhere
    assert claims["photo_affine_max_error_px"] < 0.8
    assert claims["photo_affine_error_px"] < claims["photo_rigid_error_px"] / 5
    assert claims["photo_affine_residual_rms_px"] < 0.25
    assert claims["photo_matches"] >= 20
    for name in ("two_tiles_overlay.png", "two_tiles_montage.png"):
        assert_figure(tmp_path / name)
    if all((SHARED_DATA / t).is_file() for t in YFP_TILES):
        # Real microscopy: no truth, but the matches must agree after placement.
        assert claims["yfp_matches"] >= 6
        assert claims["yfp_affine_residual_rms_px"] < 1.0
        assert claims["yfp_affine_residual_rms_px"] <= claims["yfp_rigid_residual_rms_px"]
        for name in ("yfp_two_tiles_overlay.png", "yfp_two_tiles_montage.png"):
            assert_figure(tmp_path / name)
    else:
        assert "yfp_matches" not in claims


def test_two_tiles_example_without_the_yfp_tiles(tmp_path):
    """With no YFP data, the photograph part still runs and the microscopy part is skipped cleanly."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    env = dict(os.environ, SPECTRALIGN_SHARED_DATA=str(empty))
    proc = subprocess.run([sys.executable, "-W", "error", str(EXAMPLES / "two_tiles.py"), "--output",
                           str(tmp_path / "out"), "--data", str(empty)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=empty)
    assert proc.returncode == 0, proc.stderr
    assert "skipped" in proc.stdout
    assert "yfp_matches" not in proc.stdout
    assert (tmp_path / "out" / "two_tiles_overlay.png").is_file()
    assert not (tmp_path / "out" / "yfp_two_tiles_overlay.png").exists()


def test_grid_example(tmp_path):
    claims = run_example("grid.py", tmp_path)
    assert claims["matches"] >= 100                        # 7 neighbour pairs, most fine matches kept
    assert claims["rigid_error_px"] > 0.5                  # rotations that rigid cannot follow
    assert claims["affine_error_px"] < 0.4
    assert claims["affine_max_error_px"] < 1.0
    assert claims["affine_error_px"] < claims["rigid_error_px"] / 3
    assert claims["affine_residual_rms_px"] < 0.25
    assert claims["affine_residual_rms_px"] < claims["rigid_residual_rms_px"] / 5
    # The tiles only rotate and shift: a similarity fits them with nothing to extrapolate.
    assert claims["similarity_error_px"] < 0.2
    assert claims["similarity_error_px"] <= claims["affine_error_px"]
    for name in ("grid_residuals.png", "grid_overlay.png"):
        assert_figure(tmp_path / name)


def test_serial_sections_example(tmp_path):
    claims = run_example("serial_sections.py", tmp_path)
    # 5 sections with known drift, rotation and stretch; section 2 as 2 x 2 tiles (docs/examples.md).
    assert claims["levels"] == 5 and claims["tiles"] == 8
    assert claims["stack_shape"][0] == 5 and min(claims["stack_shape"][1:]) >= 512
    assert claims["matches"] >= 50
    before, after, worst = claims["before_error_px"], claims["error_px"], claims["max_error_px"]
    assert after[0] < 1e-6                                  # section 0 is the frame
    for z in range(1, 5):
        assert before[z] > 3                                # the drift is visible as imaged
        assert after[z] < 0.3 and worst[z] < 0.6            # aligned to a fraction of a pixel
        assert after[z] < before[z] / 20
    assert claims["registration_rms_px"] < 0.3
    assert claims["registration_max_px"] < 0.6
    assert claims["residual_rms_px"] < 0.2
    assert_figure(tmp_path / "serial_sections_stack.png")
    assert_figure(tmp_path / "serial_sections_error.png", chart=True)


def test_motion_correction_example(tmp_path):
    claims = run_example("motion_correction.py", tmp_path)
    # 300 frames of 256 x 256 px drifting smoothly by up to 10 px, with noise (docs/examples.md).
    assert claims["frames"] == 300 and claims["shape"] == [300, 256, 256] and claims["dtype"] == "float32"
    assert claims["drift_max_px"] >= 9.9
    assert claims["true_error_rms_px"] < 0.25 and claims["true_error_max_px"] < 1.0
    assert claims["mean_iter_error_rms_px"] < 0.45 and claims["mean_iter_error_max_px"] < 1.5
    assert claims["mean_error_rms_px"] > 3 * claims["mean_iter_error_rms_px"]     # why iterations= is there
    assert claims["thunder_error_rms_px"] > 2 * claims["true_error_rms_px"]       # integer peaks, plain correlation
    assert claims["sharpness_before"] < 0.5                                       # drift blurs the mean
    assert claims["sharpness_after"] > 2.5 * claims["sharpness_before"]
    assert claims["sharpness_after"] > 0.9 * claims["sharpness_true_drift"]       # as sharp as the truth makes it
    assert_figure(tmp_path / "motion_correction_shifts.png", chart=True)
    assert_figure(tmp_path / "motion_correction_mean.png")


def test_large_montage_example(tmp_path):
    claims = run_example("large_montage.py", tmp_path)
    # 4 x 4 uint16 tiles with known jitter and rotation, written to OME-Zarr (docs/examples.md).
    assert claims["tiles"] == 16 and claims["matches"] >= 100
    assert claims["registration_rms_px"] < 0.5 and claims["registration_max_px"] < 1.0
    assert claims["residual_rms_px"] < 0.2
    assert claims["dtype"] == "uint16" and min(claims["shape"]) >= 1300
    assert claims["levels"] >= 3 and claims["cli_levels"] == claims["levels"]
    assert claims["level0_vs_memory"] == 0                  # chunked writing = rendering in memory
    assert claims["cli_vs_python"] <= 1                     # same montage from the command line
    assert claims["cli_transform_diff"] < 1e-3
    assert claims["pyramid_vs_block_mean"] <= 0.5           # every level is the 2x2 mean, rounded
    assert (tmp_path / "montage.ome.zarr" / ".zattrs").is_file()
    assert (tmp_path / "cli_montage.json").is_file() and (tmp_path / "montage.json").is_file()
    assert not list(tmp_path.glob("*.partial-*")), "temporary stores left behind"
    assert_figure(tmp_path / "large_montage_pyramid.png")
    assert_figure(tmp_path / "large_montage_report.png")


def test_large_montage_example_on_a_local_cluster(tmp_path):
    """--local-cluster 2: the montage again on a Dask LocalCluster (Python and the command line's --scheduler),
    bit for bit the local one with "estimate" FFT planning (docs/examples.md, docs/distributed.md)."""
    claims = run_example("large_montage.py", tmp_path, "--local-cluster", "2")
    assert claims["cluster_workers"] == 2
    assert claims["cluster_matches_identical"] is True
    assert claims["cluster_transform_diff"] == 0.0
    assert claims["cluster_vs_local"] == 0 and claims["cluster_levels"] == claims["levels"] >= 3
    # The CLI (on the cluster too) keeps its process's default "measure" planning: the plain run's bounds.
    assert claims["cli_vs_python"] <= 1 and claims["cli_transform_diff"] < 1e-3
    assert claims["level0_vs_memory"] == 0 and claims["registration_rms_px"] < 0.5
    assert (tmp_path / "cluster_montage.ome.zarr" / ".zattrs").is_file()
    assert (tmp_path / "cluster_montage.json").is_file() and (tmp_path / "cli_montage.json").is_file()
    assert not list(tmp_path.glob("*.partial-*")), "temporary stores left behind"
    assert_figure(tmp_path / "large_montage_pyramid.png")


def test_affine_registration_example(tmp_path):
    claims = run_example("affine_registration.py", tmp_path)
    # camera moved by 12 degrees, scale, shear and 20 px, intensities remapped; the MNI152
    # template moved by 8 and -5 degrees and 5 voxels (docs/examples.md).
    assert claims["photo_dipy_recipe_rms_px"] < 0.2       # DIPY's recipe, cross-modality
    assert claims["photo_one_call_rms_px"] < 0.2
    assert claims["photo_one_call_start"].startswith("initial_affine")
    assert claims["brain_rms_voxels"] < 0.1
    assert_figure(tmp_path / "affine_photographs.png")
    assert_figure(tmp_path / "affine_brain.png")


def test_deformable_registration_example(tmp_path):
    claims = run_example("deformable_registration.py", tmp_path)
    # camera moved by a known affine and Gaussian bumps up to 6 px; the MNI152 template (2 mm)
    # deformed by bumps up to 5 voxels (docs/examples.md).
    assert claims["photo_syn_rms_px"] < 0.6 < claims["photo_affine_only_rms_px"]
    assert claims["photo_min_jacobian"] > 0
    assert claims["brain_syn_rms_voxels"] < 0.4 < claims["brain_before_rms_voxels"]
    assert claims["brain_min_jacobian"] > 0
    assert_figure(tmp_path / "syn_photographs.png")
    assert_figure(tmp_path / "syn_brain.png")


def test_stalign_he_fluorescence_example(tmp_path):
    claims = run_example("stalign_he_fluorescence.py", tmp_path)
    # Simulated fluorescence onto the IHC photograph: zoom 1.1, 10 degrees, a shift and a smooth
    # deformation up to 5 px; 4 landmarks with 1 px noise, 500 tissue points (docs/stalign.md).
    assert claims["points"] == 500
    assert claims["affine_rms_px"] > 1.5                   # the landmark affine leaves the deformation
    assert claims["lddmm_rms_px"] < 1.0
    assert claims["lddmm_rms_px"] < claims["affine_rms_px"] / 3
    assert claims["converged"] is True
    assert claims["energy_last"] < claims["energy_first"]
    assert_figure(tmp_path / "stalign_he_fluorescence.png")


def test_stalign_cell_clouds_example(tmp_path):
    claims = run_example("stalign_cell_clouds.py", tmp_path)
    # Nuclei of the IHC photograph and their images under a known map, 10 % lost, 5 % spurious,
    # rasterized at dx = 3 px (docs/stalign.md).
    assert claims["pairs"] >= 200 and claims["cells_target"] > claims["pairs"]
    assert claims["tre_before_mean_px"] > 10               # the clouds start far apart
    assert claims["tre_mean_px"] < 1.5
    assert claims["converged"] is True
    assert_figure(tmp_path / "stalign_cell_clouds.png", chart=True)


def test_elastic_sections_example(tmp_path):
    pytest.importorskip("nilearn")
    claims = run_example("elastic_sections.py", tmp_path)
    # 60 MNI152 axial slices from slice 60, each deformed by its own smooth map (3 px at most) plus
    # a small affine and noise (docs/examples.md, example 10).
    assert claims["sections"] == 60 and claims["points"] > 1000
    assert claims["affine_px"] > 1.0                       # the affine alignment leaves the warps
    assert claims["elastic_px"] < 0.6
    assert claims["elastic_px"] < claims["affine_px"] / 2
    assert claims["inverted"] == 0
    assert claims["flow_rms_px"][1] < claims["flow_rms_px"][0] / 2
    assert_figure(tmp_path / "elastic_sections.png")


def test_microscope_slide_example(tmp_path):
    claims = run_example("microscope_slide.py", tmp_path)
    # Two cycles of an 11-tile slide written with stage positions, 3 channels each (docs/examples.md, 11).
    assert claims["tiles"] == 11
    assert claims["channels"] == ["DAPI", "CD3", "CD20", "DAPI (cycle 2)", "CD8", "CD68"]
    assert claims["pixel_size"] == [0.65, 0.65] and claims["shape"][0] == 6
    assert claims["cycle1_corners_px"] < 0.35
    assert claims["cycle2_vs_cycle1_px"][0] < 0.3
    raw, corrected = claims["seam_contrast"]
    assert raw / corrected > 5
    assert_figure(tmp_path / "slide.png", chart=True)  # tile outlines, residuals and SNR dots on white
    assert_figure(tmp_path / "slide-illumination.png", min_size=(400, 100))
    assert (tmp_path / "slide.ome.zarr").is_dir() and (tmp_path / "slide.json").is_file()
