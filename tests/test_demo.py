"""The demo (`make demo`) runs end to end and its claims hold."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import SHARED_DATA, YFP_TILES
from spectralign_fast import demo


def test_demo_runs_and_its_numbers_hold(tmp_path, capsys):
    if not all((SHARED_DATA / t).is_file() for t in YFP_TILES):
        pytest.skip(f"shared YFP tiles not found in {SHARED_DATA}")
    assert demo.main(["--data", str(SHARED_DATA), "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "yfp_overlay.png").stat().st_size > 1000
    matches = json.loads((tmp_path / "yfp_matches.json").read_text())
    assert len(matches["p1"]) == len(matches["snr"]) > 10
    assert np.asarray(matches["affine_tile2_to_tile1"]).shape == (2, 3)
    # Known-shift part: the printed RMS error is small.
    rms = float(re.search(r"RMS error ([0-9.]+) px", out).group(1))
    assert rms < 0.05
    # Placement of the real tiles: residuals near the matching precision.
    affine_rms = float(re.search(r"affine residuals: RMS ([0-9.]+) px", out).group(1))
    assert affine_rms < 1.0
    assert not list(tmp_path.glob("*.part*"))  # no temporary files left behind
