"""The mean reference of ``CrossCorr.fit`` when none is given (``reference=None``).

A movie that drifts has a blurred plain mean, and whitened correlation against
it finds where most frames sit rather than where each one is. The reference is
therefore the mean of *registered* frames:

1. up to SEED_POOL frames, evenly spaced over the movie (frames with NaN or inf
   pixels left out), are compared on a subsample of their pixels, and the
   SEED_FRAMES of them that look most alike are averaged, unregistered
   (suite2p's initial reference): frames that look alike sit at nearly the
   same position, so their mean is sharp, and it averages noise out where one
   frame of a noisy movie would not;
2. every frame is registered to that by FFT cross-correlation, and the
   reference becomes the mean of the registered frames (summed in C++ as they
   are shifted, ``_core.stackreg.accumulate_shifted``); with ``iterations`` > 1
   the frames are registered to that mean and the mean re-taken;
3. the intensity refinement then runs from the last estimates against the
   final mean (``StackRegCore.refine``): the mean was built from those
   estimates, so they are already within the refinement's reach, and the
   second FFT of every frame that a full pass would cost is saved. A frame
   whose refinement keeps its start is registered again in full (FFT peak,
   then refinement) against the final mean. With ``refine=None`` the last step
   is an FFT pass against the final mean.

Each frame's own share of a mean is left out of its FFT correlation (a seed
frame's unshifted, a registered frame's at its estimate). Cost on the bench
movie (bench/RESULTS.md, "Intensity refinement (issue 21)"): one FFT pass, one
mean and one refinement pass, against four FFT passes and three means before.
"""
from __future__ import annotations

import numpy as np

# Frames compared to choose the first reference: at most this many, evenly spaced.
SEED_POOL = 128
# Frames averaged, unregistered, into the first reference (suite2p averages 20).
SEED_FRAMES = 20


def spread_indices(candidates: np.ndarray, count: int) -> np.ndarray:
    """``count`` indices evenly spaced over ``candidates`` (sorted frame indices), first and
    last included; all of them when there are no more than ``count``."""
    if count >= len(candidates):
        return candidates
    picks = np.round(np.linspace(0, len(candidates) - 1, count)).astype(np.intp)
    return candidates[np.unique(picks)]


def seed_frames(frames: np.ndarray, count: int = SEED_FRAMES) -> np.ndarray:
    """Indices of ``count`` frames that look most alike, whose plain mean starts the
    reference (suite2p's initial reference): the frame whose ``count`` highest Pearson
    correlations with the frames (itself included) have the largest mean, and those
    ``count`` frames. ``frames``: (n, pixels) float32; a subsample of each frame's pixels
    is enough."""
    n = len(frames)
    count = max(1, min(count, n))
    centred = frames - frames.mean(axis=1, dtype=np.float64)[:, None].astype(np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", centred, centred, dtype=np.float64))
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(np.float32)
    unit = centred * scale[:, None]
    corr = (unit @ unit.T).astype(np.float64)
    nearest = np.argsort(-corr, axis=1, kind="stable")[:, :count]
    score = np.take_along_axis(corr, nearest, axis=1).mean(axis=1)
    score[norms == 0] = -np.inf  # a constant frame carries no position
    return np.sort(nearest[int(np.argmax(score))])
