"""Affine registration benchmark: spectralign_fast.register next to DIPY, SimpleITK and ANTsPy on
the same inputs with the same multi-resolution settings, in one run.

Settings shared by every tool: 3 levels, shrink 4-2-1, Gaussian smoothing 3-1-0 voxels, Mattes
mutual information with 32 bins, dense sampling (every voxel), and DIPY tutorial's chain
(centres of mass -> translation -> rigid -> affine). Where a tool cannot do exactly that, the
table says so:

* ours:      ``register_affine(model="affine", metric="mi", nbins=32, sampling_proportion=None,
             level_iters=[10000, 1000, 100], sigmas=[3, 1, 0], factors=[4, 2, 1], threads=n)``;
             its default ``stage_levels="coarse"`` runs translation and rigid on the two coarse
             levels and the affine on all three (ANTs' "Affine" runs one affine stage)
* DIPY:      ``transform_centers_of_mass`` then ``AffineRegistration(MutualInformationMetric(32,
             None), [10000, 1000, 100], [3, 1, 0], [4, 2, 1])`` for Translation, Rigid, Affine
             (DIPY has no thread option: it is run once, as "1 thread").
* SimpleITK: ``CenteredTransformInitializer(MOMENTS)`` then ``ImageRegistrationMethod`` three
             times (Euler with the rotation weights 0 = translation, Euler = rigid, Affine),
             Mattes 32 bins, sampling NONE, shrink [4, 2, 1], sigmas [3, 1, 0] in voxels,
             gradient descent with physical-shift scales, at most [10000, 1000, 100]
             iterations per level (ITK's optimiser takes one per level, the finest cap is used:
             see ``SITK_ITERS``), threads via ``ProcessObject_SetGlobalDefaultNumberOfThreads``.
* ANTsPy:    ``ants.registration(type_of_transform="Affine", aff_metric="mattes",
             aff_sampling=32, aff_random_sampling_rate=1, aff_iterations=(10000, 1000, 100),
             aff_shrink_factors=(4, 2, 1), aff_smoothing_sigmas=(3, 1, 0), random_seed=1)``:
             centres of mass (ANTs' ``[fixed, moving, 1]`` initialiser) then one affine stage
             (its "Affine" has no rigid stage); threads via ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS.

Every (tool, case, threads) runs in its own subprocess (inputs cached as .npy files), which
times ``--repeats`` registrations in a row and reports the median, its own peak RSS (VmHWM;
not ``ru_maxrss``, see ``peak_memory.py``) and the RSS just before the first registration, and
the recovered map converted to the truth's convention: static ARRAY INDEX -> moving ARRAY
INDEX (see ``_index_map_*``). Accuracy is the RMS over every static voxel of the distance between
the recovered and the true map (px / voxels). Each conversion is also checked by resampling
the moving image with the tool's own resampler and with ``scipy.ndimage`` through the converted
matrix (column ``conv``: the largest interior difference over the image's range).

    pip install -e '.[bench]'   # dipy, antspyx, nilearn, nibabel, SimpleITK
    OPENBLAS_NUM_THREADS=1 python bench/bench_register.py [--quick] [--cases ...] [--tools ...]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peak_memory import peak_rss_mb as _peak_mb  # noqa: E402  (VmHWM, not ru_maxrss)
TOOLS = ("ours", "dipy", "sitk", "ants")
LEVEL_ITERS = [10000, 1000, 100]
SIGMAS = [3.0, 1.0, 0.0]
FACTORS = [4, 2, 1]
NBINS = 32
SITK_ITERS = [10000, 1000, 100]
SEED = 1
# Our starting point: "auto" (the default global initialiser, which DIPY lacks) or "mass"
# (centres of mass, the start of DIPY's tutorial chain); --ours-initial.
_OURS_INITIAL = ["auto"]


# ----------------------------------------------------------------------------- inputs

def _grey(name: str) -> np.ndarray:
    from skimage import color, data
    img = getattr(data, name)()
    if img.ndim == 3:
        img = color.rgb2gray(img[..., :3])
    img = img.astype(np.float64)
    return (img - img.min()) / (img.max() - img.min())


def _affine_2d(angle_deg: float, scale: tuple[float, float], shear: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag(scale)


def _rotation_3d(angles_deg: tuple[float, float, float]) -> np.ndarray:
    a, b, c = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _warp(src: np.ndarray, b: np.ndarray, shift: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """moving[y] = src(B (y - c) + c + shift) in index space (cubic spline); returns (moving,
    true map static index -> moving index). As tests/test_register_affine.py does it."""
    from scipy import ndimage
    d = src.ndim
    c = (np.array(src.shape) - 1) / 2.0
    o = -b @ c + c + shift
    moving = ndimage.affine_transform(src, b, offset=o, order=3, mode=mode)
    truth = np.eye(d + 1)
    binv = np.linalg.inv(b)
    truth[:d, :d] = binv
    truth[:d, d] = -binv @ o
    return moving, truth


# name -> (description, builder); builder() -> static, moving, static g2w, moving g2w, truth index map
def _case_2d(name: str, angle: float, scale: tuple[float, float], shift: tuple[float, float], cross: bool):
    def build():
        src = _grey(name)
        moving, truth = _warp(src, _affine_2d(angle, scale, 0.0), np.array(shift), "nearest")
        rng = np.random.default_rng(0)
        static = np.clip(src + 0.02 * rng.standard_normal(src.shape), 0, 1)
        moving = np.clip(moving + 0.02 * rng.standard_normal(moving.shape), 0, 1)
        if cross:
            moving = 1.0 - moving ** 2
        return static.astype(np.float32), moving.astype(np.float32), np.eye(3), np.eye(3), truth
    kind = "cross (1 - x^2)" if cross else "mono"
    return (f"2-D {name} 512², {kind}, {angle:g}°, scale {scale[0]:g}/{scale[1]:g}, "
            f"shift ({shift[0]:g}, {shift[1]:g}) px", build)


def _random_3d(seed: int) -> tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]:
    """A seeded draw within the issue's range: rotations up to 12 degrees about each axis,
    scales 0.95-1.05, shifts up to 8 voxels (angles, scales, shift)."""
    rng = np.random.default_rng(1000 + seed)

    def draw(lo: float, hi: float, digits: int) -> tuple[float, float, float]:
        x = np.round(rng.uniform(lo, hi, 3), digits)
        return float(x[0]), float(x[1]), float(x[2])
    return draw(-12.0, 12.0, 2), draw(0.95, 1.05, 3), draw(-8.0, 8.0, 2)


def _case_mni(res: int, cross: str = "", warped: bool = True, seed: int = 0):
    """cross: "" (mono), "gm" (the grey-matter template x 100 as moving) or "remap" (the
    template through 1 - x^2 on [0, 1], as the 2-D cross cases: an exact truth). warped=False
    registers the unwarped pair, truth the identity: how far each tool's optimum lies from
    the construction's truth before any transform has to be recovered. seed > 0: the affine
    is _random_3d(seed) instead of the fixed one (a sample of transforms for accuracy)."""
    angles, scales, shift = ((8.0, -5.0, 10.0), (1.04, 0.97, 1.0), (6.0, -8.0, 4.0)) if seed == 0 \
        else _random_3d(seed)
    def build():
        from nilearn import datasets
        t1 = datasets.load_mni152_template(resolution=res)
        static = np.asarray(t1.get_fdata(), dtype=np.float64)
        g2w = np.asarray(t1.affine, dtype=np.float64)
        if cross == "gm":
            gm = datasets.load_mni152_gm_template(resolution=res)
            src = np.asarray(gm.get_fdata(), dtype=np.float64) * 100.0
            assert src.shape == static.shape and np.allclose(gm.affine, g2w)
        elif cross == "remap":
            src = 1.0 - (static / static.max()) ** 2
        else:
            src = static
        if not warped:
            return static.astype(np.float32), src.astype(np.float32), g2w, g2w.copy(), np.eye(4)
        b = _rotation_3d(angles) @ np.diag(scales)
        # The remapped copy's background is 1: fill with it as a scanner would show it.
        moving, truth = _warp(src, b, np.array(shift), "nearest" if cross == "remap" else "constant")
        return static.astype(np.float32), moving.astype(np.float32), g2w, g2w.copy(), truth
    kind = {"": "mono", "gm": "cross (grey-matter template x 100 as moving)",
            "remap": "cross (the template through 1 - x^2 as moving)"}[cross]
    if not warped:
        return f"3-D MNI152 {res} mm, {kind}, NOT warped (truth: identity)", build
    return (f"3-D MNI152 {res} mm, {kind}, rotation ({', '.join(f'{a:g}' for a in angles)})°, "
            f"scale {'/'.join(f'{x:g}' for x in scales)}, shift ({', '.join(f'{x:g}' for x in shift)}) voxels",
            build)


CASES = {
    "camera": _case_2d("camera", 10.0, (1.05, 0.95), (18.0, -22.0), False),
    "camera-x": _case_2d("camera", 10.0, (1.05, 0.95), (18.0, -22.0), True),
    "astronaut": _case_2d("astronaut", -9.0, (0.92, 1.08), (-20.0, 15.0), False),
    "astronaut-x": _case_2d("astronaut", -9.0, (0.92, 1.08), (-20.0, 15.0), True),
    "mni2": _case_mni(2),
    "mni2-x": _case_mni(2, "gm"),
    "mni2-x0": _case_mni(2, "gm", warped=False),
    "mni2-r": _case_mni(2, "remap"),
    "mni1": _case_mni(1),
    "mni1-x": _case_mni(1, "gm"),
    "mni1-r": _case_mni(1, "remap"),
}
# More transforms of the 2 mm template (seeded draws, _random_3d), so that accuracy is compared
# over a sample rather than one transform: mni2-s1, mni2-r-s1, mni2-x-s1, ...
# Named with --cases only (not in the default run).
SAMPLE_CASES = {}
for _seed in range(1, 5):
    SAMPLE_CASES[f"mni2-s{_seed}"] = _case_mni(2, seed=_seed)
    SAMPLE_CASES[f"mni2-r-s{_seed}"] = _case_mni(2, "remap", seed=_seed)
    SAMPLE_CASES[f"mni2-x-s{_seed}"] = _case_mni(2, "gm", seed=_seed)
DEFAULT_CASES = list(CASES)
CASES.update(SAMPLE_CASES)


def rms_error(found: np.ndarray, truth: np.ndarray, shape: tuple[int, ...]) -> float:
    d = len(shape)
    pts = np.indices(shape).reshape(d, -1).astype(np.float64)
    diff = (found[:d, :d] - truth[:d, :d]) @ pts + (found[:d, d] - truth[:d, d])[:, None]
    return float(np.sqrt((diff ** 2).sum(axis=0).mean()))


# ----------------------------------------------------------------------------- tools
# Each returns (index map static index -> moving index, extra dict, resample-check callable).

def _g2w_diag(g2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(spacing, origin) of a grid2world without rotation (as our test inputs are)."""
    d = g2w.shape[0] - 1
    lin = g2w[:d, :d]
    if not np.allclose(lin, np.diag(np.diag(lin))) or (np.diag(lin) <= 0).any():
        raise ValueError("the ITK tools are given diagonal, positive grid2worlds only")
    return np.diag(lin).copy(), g2w[:d, d].copy()


def _itk_homogeneous(matrix, center, translation) -> np.ndarray:
    """ITK's x' = M (x - c) + c + t as a homogeneous matrix (ITK's physical x, y, z order)."""
    d = len(center)
    m = np.asarray(matrix, float).reshape(d, d)
    c = np.asarray(center, float)
    h = np.eye(d + 1)
    h[:d, :d] = m
    h[:d, d] = c + np.asarray(translation, float) - m @ c
    return h


def run_ours(static, moving, gs, gm, threads):
    import spectralign_fast.register as reg
    res = reg.register_affine(static, moving, model="affine", metric="mi", static_grid2world=gs,
                              moving_grid2world=gm, level_iters=LEVEL_ITERS, sigmas=SIGMAS,
                              factors=FACTORS, nbins=NBINS, sampling_proportion=None,
                              initial=_OURS_INITIAL[0], threads=threads)
    index = np.linalg.inv(gm) @ res.affine @ gs
    levels = [{"stage": st.model, "level": lv.level, "shape": list(lv.static_shape),
               "evaluations": lv.evaluations, "iterations": lv.iterations, "seconds": lv.seconds,
               "metric_seconds": lv.metric_seconds} for st in res.stages for lv in st.levels]
    extra = {"evaluations": res.evaluations, "levels": levels,
             "stage_seconds": {st.model: st.seconds for st in res.stages}, "seconds": res.seconds}
    return index, extra, None


def run_dipy(static, moving, gs, gm, threads):
    from dipy.align import imaffine, transforms
    d = static.ndim
    com = imaffine.transform_centers_of_mass(static, gs, moving, gm)
    affreg = imaffine.AffineRegistration(metric=imaffine.MutualInformationMetric(NBINS, None),
                                         level_iters=list(LEVEL_ITERS), sigmas=list(SIGMAS),
                                         factors=list(FACTORS), verbosity=0)
    start = com.affine
    stage_seconds = {}
    for name, t in (("translation", transforms.TranslationTransform2D() if d == 2 else transforms.TranslationTransform3D()),
                    ("rigid", transforms.RigidTransform2D() if d == 2 else transforms.RigidTransform3D()),
                    ("affine", transforms.AffineTransform2D() if d == 2 else transforms.AffineTransform3D())):
        t0 = time.perf_counter()
        amap = affreg.optimize(static, moving, t, None, gs, gm, starting_affine=start)
        stage_seconds[name] = time.perf_counter() - t0
        start = amap.affine
    return np.linalg.inv(gm) @ start @ gs, {"stage_seconds": stage_seconds}, None


def _sitk_image(arr: np.ndarray, g2w: np.ndarray):
    """Our array as a SimpleITK image: ITK's x is the array's LAST axis; spacing and origin
    from the (diagonal) grid2world, reversed likewise."""
    import SimpleITK as sitk
    spacing, origin = _g2w_diag(g2w)
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr, dtype=np.float32))
    img.SetSpacing([float(v) for v in spacing[::-1]])
    img.SetOrigin([float(v) for v in origin[::-1]])
    return img


def _index_map_sitk(h_xyz: np.ndarray, gs: np.ndarray, gm: np.ndarray) -> np.ndarray:
    """ITK fixed-physical -> moving-physical (x, y, z) as our static index -> moving index map.
    ITK physical p = spacing * itk_index + origin, itk_index = our index reversed."""
    d = h_xyz.shape[0] - 1
    p = np.eye(d + 1)
    p[:d, :d] = np.eye(d)[::-1]
    def grid(g):  # our index -> ITK physical
        s, o = _g2w_diag(g)
        m = np.eye(d + 1)
        m[:d, :d] = np.diag(s[::-1])
        m[:d, d] = o[::-1]
        return m @ p
    return np.linalg.inv(grid(gm)) @ h_xyz @ grid(gs)


def run_sitk(static, moving, gs, gm, threads):
    import SimpleITK as sitk
    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(threads)
    d = static.ndim
    fixed, mov = _sitk_image(static, gs), _sitk_image(moving, gm)
    euler = sitk.Euler2DTransform() if d == 2 else sitk.Euler3DTransform()
    init = sitk.CenteredTransformInitializer(fixed, mov, euler,
                                             sitk.CenteredTransformInitializerFilter.MOMENTS)
    euler = sitk.Euler2DTransform(init) if d == 2 else sitk.Euler3DTransform(init)
    counts = {}

    def register(transform, stage, weights=None):
        r = sitk.ImageRegistrationMethod()
        r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=NBINS)
        r.SetMetricSamplingStrategy(r.NONE)
        r.SetInterpolator(sitk.sitkLinear)
        r.SetOptimizerAsGradientDescent(learningRate=1.0, numberOfIterations=SITK_ITERS[-1],
                                        convergenceMinimumValue=1e-6, convergenceWindowSize=10)
        r.SetOptimizerScalesFromPhysicalShift()
        if weights is not None:
            r.SetOptimizerWeights(weights)
        r.SetShrinkFactorsPerLevel(FACTORS)
        r.SetSmoothingSigmasPerLevel(SIGMAS)
        r.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
        r.SetInitialTransform(transform, inPlace=True)
        counts[stage] = []
        r.AddCommand(sitk.sitkMultiResolutionIterationEvent, lambda: counts[stage].append(0))
        r.AddCommand(sitk.sitkIterationEvent, lambda: counts[stage].__setitem__(-1, counts[stage][-1] + 1))
        r.Execute(fixed, mov)

    nrot = 1 if d == 2 else 3
    stage_seconds = {}
    t0 = time.perf_counter()
    register(euler, "translation", [0.0] * nrot + [1.0] * d)
    stage_seconds["translation"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    register(euler, "rigid")
    stage_seconds["rigid"] = time.perf_counter() - t0
    aff = sitk.AffineTransform(d)
    aff.SetCenter(euler.GetCenter())
    aff.SetMatrix(euler.GetMatrix())
    aff.SetTranslation(euler.GetTranslation())
    t0 = time.perf_counter()
    register(aff, "affine")
    stage_seconds["affine"] = time.perf_counter() - t0
    h = _itk_homogeneous(aff.GetMatrix(), aff.GetCenter(), aff.GetTranslation())

    def resample():
        out = sitk.Resample(mov, fixed, aff, sitk.sitkLinear, 0.0)
        return sitk.GetArrayFromImage(out)
    return _index_map_sitk(h, gs, gm), {"iterations": counts, "stage_seconds": stage_seconds}, resample


def _ants_image(arr: np.ndarray, g2w: np.ndarray):
    """Our array as an ANTs image: ANTs keeps numpy's axis 0 as ITK's x, so no reversal."""
    import ants
    spacing, origin = _g2w_diag(g2w)
    return ants.from_numpy(np.ascontiguousarray(arr, dtype=np.float32), origin=[float(v) for v in origin],
                           spacing=[float(v) for v in spacing])


def _index_map_ants(h: np.ndarray, gs: np.ndarray, gm: np.ndarray) -> np.ndarray:
    d = h.shape[0] - 1
    def grid(g):
        s, o = _g2w_diag(g)
        m = np.eye(d + 1)
        m[:d, :d] = np.diag(s)
        m[:d, d] = o
        return m
    return np.linalg.inv(grid(gm)) @ h @ grid(gs)


def run_ants(static, moving, gs, gm, threads):
    import ants  # ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS was set before this import (worker)
    d = static.ndim
    fixed, mov = _ants_image(static, gs), _ants_image(moving, gm)
    out = ants.registration(fixed, mov, type_of_transform="Affine", aff_metric="mattes",
                            aff_sampling=NBINS, aff_random_sampling_rate=1.0,
                            aff_iterations=tuple(LEVEL_ITERS), aff_shrink_factors=tuple(FACTORS),
                            aff_smoothing_sigmas=tuple(int(s) for s in SIGMAS), random_seed=SEED)
    path = out["fwdtransforms"][0]
    tx = ants.read_transform(path)
    par = np.asarray(tx.parameters, float)
    h = _itk_homogeneous(par[:d * d], np.asarray(tx.fixed_parameters, float), par[d * d:])

    def resample():
        return ants.apply_transforms(fixed, mov, [path], interpolator="linear").numpy()
    return _index_map_ants(h, gs, gm), {}, resample


RUNNERS = {"ours": run_ours, "dipy": run_dipy, "sitk": run_sitk, "ants": run_ants}


def _conversion_check(index_map, static_shape, moving, resample) -> float:
    """Largest interior difference, over the moving image's range, between the tool's own
    resampling of moving onto the static grid and scipy's through our converted index map."""
    from scipy import ndimage
    theirs = np.asarray(resample(), dtype=np.float64)
    d = moving.ndim
    ours = ndimage.affine_transform(moving.astype(np.float64), index_map[:d, :d], offset=index_map[:d, d],
                                    output_shape=static_shape, order=1, mode="constant")
    # Only where the mapped point is well inside the moving grid (boundaries differ by tool).
    pts = np.indices(static_shape).reshape(d, -1).astype(np.float64)
    y = index_map[:d, :d] @ pts + index_map[:d, d:d + 1]
    inside = np.all((y >= 2) & (y <= np.array(moving.shape)[:, None] - 3), axis=0).reshape(static_shape)
    if not inside.any():
        return float("nan")
    return float(np.max(np.abs(ours - theirs)[inside]) / max(float(np.ptp(moving)), 1e-12))


def worker(args) -> None:
    """One tool on one case in this process: --repeats registrations, JSON on stdout."""
    static = np.load(os.path.join(args.cache, f"{args.case}.static.npy"))
    moving = np.load(os.path.join(args.cache, f"{args.case}.moving.npy"))
    meta = np.load(os.path.join(args.cache, f"{args.case}.meta.npz"))
    gs, gm, truth = meta["gs"], meta["gm"], meta["truth"]
    run = RUNNERS[args.tool]
    _OURS_INITIAL[0] = args.ours_initial
    if args.tool == "ants":
        import ants  # noqa: F401  (imported before measuring the baseline RSS, like the others)
    elif args.tool == "sitk":
        import SimpleITK  # noqa: F401
    elif args.tool == "dipy":
        import dipy.align.imaffine  # noqa: F401
    else:
        import spectralign_fast.register  # noqa: F401
    base = _rss_mb()
    threads = args.threads[0]
    times, cpus, extras, index = [], [], [], None
    for _ in range(args.repeats):
        c0, t0 = _cpu_seconds(), time.perf_counter()
        index, extra, resample = run(static, moving, gs, gm, threads)
        times.append(time.perf_counter() - t0)
        cpus.append(_cpu_seconds() - c0)
        extras.append(extra)
    peak = _peak_mb()
    conv = _conversion_check(index, static.shape, moving, resample) if resample is not None else None
    print("RESULT " + json.dumps({
        "tool": args.tool, "case": args.case, "threads": threads, "times": times,
        "median": statistics.median(times), "cpu": statistics.median(cpus), "error": rms_error(index, truth, static.shape),
        "index_map": index.tolist(), "peak_mb": peak, "base_mb": base, "conv": conv, "extras": extras}),
        flush=True)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its waited-for children (ANTsPy runs
    antsRegistration in-process, but count children too)."""
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


# ----------------------------------------------------------------------------- driver

def prepare(case: str, cache: str) -> None:
    path = os.path.join(cache, f"{case}.static.npy")
    if os.path.exists(path):
        return
    static, moving, gs, gm, truth = CASES[case][1]()
    np.save(os.path.join(cache, f"{case}.moving.npy"), moving)
    np.savez(os.path.join(cache, f"{case}.meta.npz"), gs=gs, gm=gm, truth=truth)
    np.save(path, static)


def launch(tool: str, case: str, threads: int, repeats: int, cache: str, timeout: float,
           ours_initial: str = "auto") -> dict:
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = "1"
    env["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    # DIPY has no thread option; keep its (and numpy's) OpenMP/BLAS to one thread.
    env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--tool", tool, "--case", case,
           "--threads", str(threads), "--repeats", str(repeats), "--cache", cache,
           "--ours-initial", ours_initial]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"tool": tool, "case": case, "threads": threads, "failed": f"timeout after {timeout:.0f} s"}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            out = json.loads(line[7:])
            out["wall"] = time.perf_counter() - t0
            return out
    tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
    return {"tool": tool, "case": case, "threads": threads, "failed": " / ".join(tail)[-300:]}


def repeats_for(tool: str, case: str, quick: bool) -> int:
    big = case.startswith("mni1")
    if tool == "dipy":
        return 1
    if tool == "ours":
        return 2 if big else 3
    if quick or case.startswith("mni"):
        return 1
    return 2


def _fmt_cell(r: dict | None, ours: dict | None) -> str:
    if r is None:
        return "—"
    if "failed" in r:
        return f"failed ({r['failed'][:60]})"
    s = f"{r['median']:.2f} s (CPU {r['cpu']:.2f} s), {r['error']:.3f}, {r['peak_mb']:.0f} MB"
    if ours is not None and "failed" not in ours and r is not ours:
        s += f" (**{r['median'] / ours['median']:.1f}x**)"
    return s


def tables(results: list[dict], cases: list[str], tools: list[str], threads: list[int]) -> list[str]:
    by = {(r["tool"], r["case"], r["threads"]): r for r in results}
    out = ["| case | threads | ours: wall (CPU), RMS error, peak RSS | " +
           " | ".join({"dipy": "DIPY (1 thread)", "sitk": "SimpleITK", "ants": "ANTsPy"}[t]
                      for t in tools if t != "ours") +
           " | ours vs fastest ITK tool | targets (20x DIPY, 3x ITK, accuracy) |",
           "|---|---|---|" + "---|" * (len([t for t in tools if t != "ours"]) + 2)]
    for case in cases:
        for th in threads:
            ours = by.get(("ours", case, th))
            cells = [_fmt_cell(ours, None)]
            for t in tools:
                if t == "ours":
                    continue
                r = by.get((t, case, 1 if t == "dipy" else th))
                cells.append(_fmt_cell(r, ours))
            itk = [by.get((t, case, th)) for t in ("sitk", "ants") if t in tools]
            itk = [r for r in itk if r is not None and "failed" not in r]
            verdict, vs = [], "—"
            if ours is not None and "failed" not in ours:
                dp = by.get(("dipy", case, 1))
                if dp is not None and "failed" not in dp:
                    ok = dp["median"] / ours["median"] >= 20
                    verdict.append(f"DIPY {'met' if ok else 'missed'}")
                if itk:
                    fastest = min(itk, key=lambda r: r["median"])
                    ratio = fastest["median"] / ours["median"]
                    vs = f"{ratio:.2f}x ({fastest['tool']})"
                    verdict.append(f"ITK {'met' if ratio >= 3 else 'missed'}")
                peers = [by.get((t, case, 1 if t == "dipy" else th)) for t in tools if t != "ours"]
                errs = [r["error"] for r in peers if r is not None and "failed" not in r]
                if errs:
                    verdict.append("accuracy " + ("met" if ours["error"] <= min(errs) * 1.05 + 1e-3
                                                  else f"missed (best peer {min(errs):.3f})"))
            cells += [vs, ", ".join(verdict) or "—"]
            out.append(f"| {case} | {th} | " + " | ".join(cells) + " |")
    return out


def level_table(results: list[dict], cases: list[str], threads: list[int]) -> list[str]:
    out = ["| case | threads | stage | level (shape) | evaluations | level s | of which metric s | "
           "metric ms / evaluation |", "|---|---|---|---|---|---|---|---|"]
    for case in cases:
        for th in threads:
            r = next((r for r in results if r["tool"] == "ours" and r["case"] == case
                      and r["threads"] == th and "failed" not in r), None)
            if r is None:
                continue
            # The repeat whose total is the median.
            ex = sorted(r["extras"], key=lambda e: e["seconds"])[len(r["extras"]) // 2]
            for lv in ex["levels"]:
                per = 1e3 * lv["metric_seconds"] / max(lv["evaluations"], 1)
                out.append(f"| {case} | {th} | {lv['stage']} | {lv['level']} ({'x'.join(map(str, lv['shape']))}) | "
                           f"{lv['evaluations']} | {lv['seconds']:.3f} | {lv['metric_seconds']:.3f} | {per:.2f} |")
            tot = sum(lv["seconds"] for lv in ex["levels"])
            met = sum(lv["metric_seconds"] for lv in ex["levels"])
            out.append(f"| {case} | {th} | **all** | | {ex['evaluations']} | {tot:.3f} | {met:.3f} "
                       f"({100 * met / max(tot, 1e-12):.0f}%) | outside levels: {ex['seconds'] - tot:.3f} s |")
    return out


QUICK_CASES = ["camera", "camera-x", "mni2"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"cases {QUICK_CASES}, fewer repeats")
    ap.add_argument("--cases", nargs="+", choices=list(CASES), help="cases to run (default: all but the mni2*-s<k> samples)")
    ap.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--skip-dipy-1mm", action="store_true", help="DIPY on the 1 mm volumes takes many minutes")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per subprocess, seconds")
    ap.add_argument("--cache", help="folder for the prepared inputs (default: a temporary one)")
    ap.add_argument("--out", help="also write the markdown tables here")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--ours-initial", choices=("auto", "mass"), default="auto",
                    help="our start: the global initialiser (default) or centres of mass as DIPY's chain")
    # worker mode (internal)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tool", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    cases = args.cases or (QUICK_CASES if args.quick else DEFAULT_CASES)
    tmp = None
    if args.cache is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_register_")
        args.cache = tmp.name
    os.makedirs(args.cache, exist_ok=True)
    head = _header(args)
    print(head, flush=True)
    results = []
    for case in cases:
        t0 = time.perf_counter()
        prepare(case, args.cache)
        print(f"## {case}: {CASES[case][0]} (inputs ready in {time.perf_counter() - t0:.1f} s)", flush=True)
        for tool in args.tools:
            for th in ([1] if tool == "dipy" else args.threads):
                if tool == "dipy" and case.startswith("mni1") and args.skip_dipy_1mm:
                    continue
                reps = repeats_for(tool, case, args.quick)
                r = launch(tool, case, th, reps, args.cache, args.timeout, args.ours_initial)
                r["repeats"] = reps
                results.append(r)
                if "failed" in r:
                    print(f"  {tool:5s} {th} thread(s): FAILED {r['failed']}", flush=True)
                else:
                    print(f"  {tool:5s} {th} thread(s): {r['median']:8.3f} s, CPU {r['cpu']:.2f} s (x{reps}: "
                          f"{', '.join(f'{t:.2f}' for t in r['times'])}), RMS error {r['error']:.4f}, "
                          f"peak {r['peak_mb']:.0f} MB (before: {r['base_mb']:.0f} MB)"
                          + (f", conversion check {r['conv']:.1e}" if r.get("conv") is not None else ""),
                          flush=True)
    lines = tables(results, cases, args.tools, args.threads)
    lines += ["", *level_table(results, cases, args.threads)]
    tail = f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}"
    print("\n" + "\n".join(lines) + "\n\n" + tail, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(head + "\n\n" + "\n".join(lines) + "\n\n" + tail + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": head, "results": results}, f, indent=1)
    if tmp is not None:
        tmp.cleanup()


def _header(args) -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = []
    for mod, name in (("dipy", "DIPY"), ("SimpleITK", "SimpleITK"), ("ants", "ANTsPy"), ("numpy", "numpy"),
                      ("scipy", "scipy")):
        try:
            from importlib.metadata import version
            versions.append(f"{name} {version({'ants': 'antspyx', 'SimpleITK': 'SimpleITK'}.get(mod, mod))}")
        except Exception:  # noqa: BLE001
            pass
    load = os.getloadavg()
    return (f"# {cpu}, {os.cpu_count()} logical cores, Python {platform.python_version()}, "
            f"{', '.join(versions)}; load before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
            f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; ours: initial={args.ours_initial!r}")


if __name__ == "__main__":
    main()
