"""Independent NumPy oracles for the output writers (NaN-padded reshape means, no shared code)."""
from __future__ import annotations

import numpy as np


def block_mean_oracle(img: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor x factor blocks, edge blocks over the pixels present;
    float64 sums, integers rounded half to even."""
    a = np.asarray(img, dtype=np.float64)
    h, w = a.shape
    oh, ow = -(-h // factor), -(-w // factor)
    padded = np.full((oh * factor, ow * factor), np.nan)
    padded[:h, :w] = a
    out = np.nanmean(padded.reshape(oh, factor, ow, factor), axis=(1, 3))
    if np.issubdtype(img.dtype, np.integer):
        return np.rint(out).astype(img.dtype)
    return out.astype(img.dtype)


def pyramid_oracle(img: np.ndarray, levels: int) -> list[np.ndarray]:
    out = [np.asarray(img)]
    for _ in range(levels - 1):
        out.append(block_mean_oracle(out[-1], 2))
    return out


def write_chunks_in_child(tmp_path: str, chunks: list, image: np.ndarray) -> int:
    """Runs in a spawned process: re-opens the writer from its temporary path and
    writes the given level-0 chunks (iy, ix) from image."""
    from spectralign_fast.io import OmeZarrWriter

    w = OmeZarrWriter.open(tmp_path)
    ch, cw = w.chunk
    for iy, ix in chunks:
        w.write_chunk(iy, ix, image[iy * ch:(iy + 1) * ch, ix * cw:(ix + 1) * cw])
    return len(chunks)


def write_with_pickled_writer(writer, chunks: list, image: np.ndarray) -> int:
    """Runs in a spawned process: the writer arrives pickled."""
    ch, cw = writer.chunk
    for iy, ix in chunks:
        writer.write_chunk(iy, ix, image[iy * ch:(iy + 1) * ch, ix * cw:(ix + 1) * cw])
    return len(chunks)
