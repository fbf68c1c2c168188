"""The demo (`make demo` = `spectralign-fast demo`) runs end to end and its claims hold."""
from __future__ import annotations

import json
import re

import numpy as np
import tifffile

from conftest import SHARED_DATA, YFP_TILES
from spectralign_fast import cli


def test_demo_runs_and_its_numbers_hold(tmp_path, capsys):
    have_yfp = all((SHARED_DATA / t).is_file() for t in YFP_TILES)
    argv = ["demo", "--output", str(tmp_path), "--quiet"] + (["--data", str(SHARED_DATA)] if have_yfp else [])
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    errors = {m.group(1): float(m.group(2)) for m in
              re.finditer(r"(rigid|similarity|affine)\s*: .*vs truth: RMS ([0-9.]+) px", out)}
    assert errors["affine"] <= 0.3          # the bound on the demo data set
    assert errors["similarity"] <= 0.15     # rotation + scale: nothing to extrapolate (bench/RESULTS.md)
    assert errors["rigid"] > errors["affine"]  # rigid cannot follow the rotations
    montage = tifffile.imread(tmp_path / "montage_affine.tif")
    assert montage.dtype == np.uint16 and montage.shape[0] > 1300 and montage.std() > 1000
    saved = json.loads((tmp_path / "montage_affine.json").read_text())
    assert saved["model"] == "affine" and len(saved["tiles"]) == 9 and saved["residuals"]["n_matches"] > 50
    assert (tmp_path / "report.png").stat().st_size > 50_000
    if have_yfp:
        assert (tmp_path / "yfp_report.png").is_file()
        x = float(re.search(r"tile 03 lies at \(([0-9.]+),", out).group(1))
        assert 880 < x < 900
    assert not list(tmp_path.glob("*.partial*")) and not list(tmp_path.glob(".*"))
