"""The core's helper threads (cpp/src/core/parallel.cpp): one pool shared by every multithreaded
call, kept between calls. Calls from several Python threads at once, and a forked child, must get
the same results as one call alone."""
from __future__ import annotations

import multiprocessing
import os
import threading
import warnings

import numpy as np
import pytest

from spectralign_fast._core import register as core


def _smooth(image: np.ndarray, threads: int) -> np.ndarray:
    return np.asarray(core.gaussian_smooth(image, np.array([2.0, 1.5]), threads=threads))


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).random((300, 257)).astype(np.float32)


def test_calls_from_several_threads_at_once(image):
    want = _smooth(image, 1)
    got: list = []
    errors: list = []

    def run() -> None:
        try:
            for _ in range(20):
                got.append(_smooth(image, 3))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(got) == 80
    for g in got:
        np.testing.assert_array_equal(g, want)


def _child(image: np.ndarray, want: np.ndarray) -> None:
    os._exit(0 if np.array_equal(_smooth(image, 2), want) else 3)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_helpers(image):
    want = _smooth(image, 2)  # the parent's pool exists now; its threads do not exist in a child
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork of a threaded process
        p = multiprocessing.get_context("fork").Process(target=_child, args=(image, want))
        p.start()
    p.join(timeout=60)
    if p.is_alive():  # pragma: no cover - the failure this guards against
        p.kill()
        pytest.fail("the forked child hung in a multithreaded call")
    assert p.exitcode == 0
