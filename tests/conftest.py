"""Shared fixtures: real image content and exact synthetic shifts."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

# The NumPy oracles live next to the tests.
sys.path.insert(0, str(Path(__file__).parent))

SHARED_DATA = Path(os.environ.get("SPECTRALIGN_SHARED_DATA",
                                  Path(__file__).resolve().parents[1].parent / "shared" / "data"))
YFP_TILES = ("C2-20250523_montage_YFP_ideal_02.jpg", "C2-20250523_montage_YFP_ideal_03.jpg")


def fourier_shift(img: np.ndarray, dx: float, dy: float, pad: int = 64) -> np.ndarray:
    """img with its content moved by (+dx, +dy) (right, down), band-limited:
    out(x, y) = img(x - dx, y - dy). The image is mirrored by `pad` pixels
    first, so the cyclic transform has no edge jump whose ringing would
    reach into the image and spoil the truth."""
    a = np.pad(np.asarray(img, dtype=np.float64), pad, mode="symmetric")
    ky = np.fft.fftfreq(a.shape[0])[:, None]
    kx = np.fft.fftfreq(a.shape[1])[None, :]
    out = np.fft.ifft2(np.fft.fft2(a) * np.exp(-2j * np.pi * (kx * dx + ky * dy))).real
    return out[pad:-pad, pad:-pad].astype(np.float32)


def grey(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 3:
        a = a[..., :3].mean(axis=-1)
    return (a / 255.0).astype(np.float32)


@pytest.fixture(scope="session")
def dev_tools():
    """spectralign_fast._core.dev: benchmark helpers and test hooks, present only in builds made
    with -DSPECTRALIGN_DEV_TOOLS=ON (every `make` target); tests that need it skip without it."""
    return pytest.importorskip(
        "spectralign_fast._core.dev",
        reason="_core.dev is not built: rebuild with -C cmake.define.SPECTRALIGN_DEV_TOOLS=ON (as `make install` does)")


@pytest.fixture(scope="session")
def retina() -> np.ndarray:
    """scikit-image's bundled retina photograph, 1411x1411, grey float32."""
    from skimage import data

    return grey(data.retina())


@pytest.fixture(scope="session")
def hubble() -> np.ndarray:
    """scikit-image's bundled Hubble deep field, 872x1000, grey float32."""
    from skimage import data

    return grey(data.hubble_deep_field())


@pytest.fixture(scope="session")
def camera() -> np.ndarray:
    from skimage import data

    return grey(data.camera())


@pytest.fixture(scope="session")
def yfp_tiles() -> tuple[np.ndarray, np.ndarray]:
    """The two overlapping YFP microscopy tiles (02 left of 03)."""
    paths = [SHARED_DATA / name for name in YFP_TILES]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"shared YFP tiles not found in {SHARED_DATA} (set SPECTRALIGN_SHARED_DATA)")
    from spectralign_fast import Image

    return tuple(np.asarray(Image(p)) for p in paths)
