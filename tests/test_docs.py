"""The docs say what the code does: the command-line page documents every option the command
line has (docs/cli.md), and the thunder-registration migration page's recipes and claims hold."""
from __future__ import annotations

from pathlib import Path

from spectralign_fast.cli import parser

CLI_PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_cli_page_lists_every_subcommand_and_option():
    text = CLI_PAGE.read_text()
    sub = next(a for a in parser()._actions if a.dest == "command")
    assert set(sub.choices) == {"montage", "stack", "register", "demo"}
    for name, p in sub.choices.items():
        assert f"spectralign-fast {name}" in text, name
        for action in p._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in text, f"{name} {flag} is not documented in docs/cli.md"
    for placeholder in ("{row}", "{col}", "{z}"):
        assert placeholder in text


def test_thunder_migration_page_recipes(tmp_path, camera):
    """The recipes and claims of docs/migration-thunder.md hold (thunder's side via tests/thunder_oracle.py)."""
    import numpy as np

    import spectralign_fast as sf
    import thunder_oracle

    text = (Path(__file__).resolve().parents[1] / "docs" / "migration-thunder.md").read_text()
    for name in ("CrossCorr", "RegistrationModel", "Displacement", "LocalDisplacement", "toarray", "transform"):
        assert f"`{name}" in text or f"{name}`" in text, name
    ref = camera[100:228, 100:228]
    frame = camera[97:225, 104:232]                  # content moved by (+3, -4): frame[i] == ref[i - d]
    # Displacement.compute(a, b) -> CrossCorr().fit(a[None], b)[0], thunder's answer with its options.
    d = sf.CrossCorr(subpixel=False, whiten=0).fit(frame[None], ref)[0]
    assert isinstance(d, sf.Displacement)
    assert d.delta == thunder_oracle.displacement(frame, ref) == [3, -4]
    # Saving a model as an array and rebuilding it transforms the same.
    frames = np.stack([frame, camera[101:229, 98:226]])
    model = sf.CrossCorr().fit(frames, ref)
    np.save(tmp_path / "d.npy", model.toarray())
    rebuilt = sf.RegistrationModel({(i,): sf.Displacement(v) for i, v in enumerate(np.load(tmp_path / "d.npy"))})
    np.testing.assert_array_equal(rebuilt.transform(frames), model.transform(frames))
    # LocalDisplacement.apply leaves the caller's volume alone (thunder's shifted it in place).
    vol = np.stack([ref, frame, ref])
    copy = vol.copy()
    sf.LocalDisplacement([[1, 2], [0.5, -1], [0, 0]], axis=0).apply(vol)
    np.testing.assert_array_equal(vol, copy)
    # thunder's algorithm on a frame with a NaN pixel: silently (0, 0).
    bad = frame.astype(np.float64)
    bad[5, 5] = np.nan
    with np.errstate(invalid="ignore"):
        assert thunder_oracle.displacement(bad, ref) == [0, 0]


def test_distributed_page_includes_the_measured_overhead():
    """docs/distributed.md takes its numbers from bench/RESULTS.md's marked Dask section, never by hand."""
    import re

    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "distributed.md").read_text()
    results = (root / "bench" / "RESULTS.md").read_text()
    assert '--8<-- "bench/RESULTS.md:dask"' in page
    start, end = results.index("--8<-- [start:dask]"), results.index("--8<-- [end:dask]")
    assert start < end and "LocalCluster" in results[start:end] and "| total |" in results[start:end]
    prose = page[: page.index("--8<--")]
    assert not re.search(r"\d+(\.\d+)? s\b|[+-]\d+ ?%", prose), "a timing copied by hand into distributed.md"
    for name in ("client=", "--scheduler", "LocalCluster", "set_fft_planning", "MontageResult.write", "CrossCorr"):
        assert name in page, name
