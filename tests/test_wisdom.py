"""FFTW wisdom is kept between processes (planning costs more than transforming)."""
from __future__ import annotations

import os
import subprocess
import sys

PLAN = ("import numpy as np, spectralign_fast as sf, time;"
        "from spectralign_fast import _core;"
        "a = np.random.default_rng(0).random((600, 600)).astype(np.float32);"
        "m = sf.Matcher(a, a);"
        "t = time.perf_counter(); m.refine((300, 300), (300, 300), (264, 200)); "
        "print(time.perf_counter() - t); print(sf.config()['fft_wisdom'])")


def run(env):
    done = subprocess.run([sys.executable, "-c", PLAN], capture_output=True, text=True, env=env, check=True)
    seconds, where = done.stdout.strip().splitlines()
    return float(seconds), where


def test_wisdom_is_saved_and_reused(tmp_path):
    path = tmp_path / "wisdom.txt"
    env = dict(os.environ, SPECTRALIGN_FFTW_WISDOM=str(path))
    cold, where = run(env)
    assert where == str(path)                # nothing to load yet
    text = path.read_text()
    assert "fftwf_wisdom" in text and not list(tmp_path.glob(".*part*"))
    warm, where = run(env)
    assert where == f"{path} (loaded)"
    assert warm < cold                        # no measuring the second time
    assert set(text.splitlines()) <= set(path.read_text().splitlines())  # merged, nothing lost


def test_wisdom_can_be_turned_off_and_survives_a_bad_file(tmp_path):
    env = dict(os.environ, SPECTRALIGN_FFTW_WISDOM="")
    _, where = run(env)
    assert where == "off"
    bad = tmp_path / "bad.txt"
    bad.write_text("not wisdom at all")
    _, where = run(dict(os.environ, SPECTRALIGN_FFTW_WISDOM=str(bad)))
    assert where == str(bad)                 # rejected, not loaded, and no crash


def test_estimate_planning_forgets_wisdom(tmp_path):
    from spectralign_fast import _core, set_fft_planning

    before = _core.config.fft_planning()
    try:
        set_fft_planning("estimate")
        assert _core.config.export_fft_wisdom().count("(") <= 2  # header only: nothing measured remains
    finally:
        set_fft_planning(before)


def test_corrupt_wisdom_file_warns_once_and_is_rewritten(tmp_path):
    # Issue "Reliability": a binary (non-UTF-8) wisdom file printed a UnicodeDecodeError
    # traceback at every exit.
    bad = tmp_path / "corrupt.txt"
    bad.write_bytes(b"\xff\xfe\x00garbage\x80\x81")
    env = dict(os.environ, SPECTRALIGN_FFTW_WISDOM=str(bad))
    done = subprocess.run([sys.executable, "-c", PLAN], capture_output=True, text=True, env=env, check=True)
    assert "Traceback" not in done.stderr
    warnings = [ln for ln in done.stderr.splitlines() if "RuntimeWarning" in ln]
    assert len(warnings) == 1 and "damaged FFTW wisdom file" in warnings[0]
    assert "fftwf_wisdom" in bad.read_text()  # replaced by good wisdom at exit
    _, where = run(env)
    assert where == f"{bad} (loaded)"
