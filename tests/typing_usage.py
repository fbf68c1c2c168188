"""The public API as a user's typed code calls it; checked by mypy (`make typecheck`), never run.

Not collected by pytest (its name does not start with ``test_``). Each call
here uses the types a user would have, so a signature that refuses them
(e.g. ``Mapping[Hashable, X]``, which is invariant in its keys, against a
``dict[tuple[int, int], X]``) fails the type check.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

import spectralign_fast as sf
from spectralign_fast import register as reg
from spectralign_fast.io import (TileEntry, read_affine, read_channels, read_tile_configuration, read_volume,
                                 write_affine, write_channels, write_tile_configuration, write_volume)


def stitch(tiles: dict[tuple[int, int], npt.NDArray[np.uint16]], out: Path) -> sf.MontageResult:
    result = sf.montage(tiles, overlap=0.1, model="similarity", progress=False)
    transforms: dict[tuple[int, int], sf.Affine] = {(0, 0): result.transforms[(0, 0)]}
    result.save(out.with_suffix(".json"))
    sf.write_report(result, tiles, out.with_suffix(".png"), title="grid")
    image: np.ndarray | None = result.image
    assert image is not None and transforms
    return result


def stitch_files(paths: dict[tuple[int, int], Path], out: Path) -> Path:
    result = sf.montage(paths, render=False, progress=False)
    return result.write(out, paths, overwrite=True)


def render(transforms: dict[tuple[int, int], sf.Affine], images: dict[tuple[int, int], np.ndarray],
           positions: dict[str, tuple[float, float]]) -> np.ndarray:
    r = sf.Renderer(affine=transforms, tilesize=(512, 512), blend=10)
    whole: np.ndarray = r.render_all(images)
    region: np.ndarray = r.render_region((0, 0, 256, 256), images)
    part, mask = r.render_region((0, 0, 256, 256), images, coverage=True)
    r.render((0, 0), images[(0, 0)])
    rigid = sf.Renderer(rigid=positions, tilesize={"a": (512, 512), "b": (512, 512)})
    bounds: tuple[float, float, float, float] = rigid.tile_bounds("a")
    assert bounds and part.shape == mask.shape == region.shape
    return whole


def place(points: list[tuple[tuple[int, int], tuple[int, int], np.ndarray, np.ndarray]]) -> np.ndarray:
    plc = sf.Placement()
    for t1, t2, p1, p2 in points:
        plc.addmatches(t1, t2, p1, p2)
    plc.addmatch((0, 0), (0, 1), (900.0, 300.0), (100.0, 300.0))
    affine = plc.affine(fix=(0, 0), reject=3.0)
    positions = plc.rigid()
    residuals: sf.PlacementResiduals = plc.residuals()
    r = sf.Renderer(affine=affine, tilesize=(1000, 600))
    assert positions and residuals.rms >= 0
    return r.unionmask()


def match(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    m = sf.Matcher(sf.Image(a), sf.Image(b))
    p1, p2 = m.refine((256.0, 256.0), (250.0, 256.0), 128, iters=3)
    q1, q2, stats = m.refine_many(np.array([[256.0, 256.0]]), np.array([[250.0, 256.0]]), (128, 96))
    snr: np.ndarray = stats.snr
    return np.asarray(p1) - np.asarray(p2) + q1 - q2 + snr[:, None]


def stack(sections: list[np.ndarray], frames: np.ndarray) -> np.ndarray:
    result = sf.align_stack(sections, render=False, progress=False)
    loaded = sf.MontageResult.load("alignment.json")
    assert result.levels is not None and loaded.n_matches >= 0
    model = sf.CrossCorr(whiten=-1.0).fit(frames, frames.mean(axis=0))
    registered: np.ndarray = model.transform(frames)
    return registered


def configure() -> str:
    sf.set_fft_planning("estimate")
    return str(sf.config()["fftw_version"])


def transform_files(static: list[list[float]], moving: npt.NDArray[np.float64], out: Path) -> np.ndarray:
    A = sf.affine_from_points(static, moving, model="rigid", weights=[1.0] * len(static))
    written: Path = write_affine(out.with_suffix(".tfm"), A, world="ras", overwrite=True)
    write_affine(str(out.with_suffix(".txt")), A, format="itk")
    vol, g = read_volume(out.with_suffix(".nii.gz"))
    write_volume(out.with_suffix(".tif"), vol[0], np.eye(3), overwrite=True)
    return read_affine(written, world=None) @ g


def affine_registration(static: npt.NDArray[np.float32], moving: npt.NDArray[np.float32],
                        g2w: npt.NDArray[np.float64]) -> float:
    affreg = reg.AffineRegistration(reg.MutualInformationMetric(32), level_iters=[100, 10],
                                    sigmas=[1.0, 0.0], factors=[2, 1], threads=1)
    start = reg.transform_centers_of_mass(static, g2w, moving, g2w)
    amap = affreg.optimize(static, moving, reg.RigidTransform3D(), None, g2w, g2w,
                           starting_affine=start.affine)
    moved: np.ndarray = amap.transform(moving)
    result = reg.register_affine(static, moving, model="similarity", metric="cc",
                                 static_grid2world=g2w, moving_grid2world=g2w)
    init = reg.initial_affine(static, moving, static_grid2world=g2w, moving_grid2world=g2w)
    seconds: float = sum(lv.seconds for lv in affreg.levels_report) + result.seconds
    syn = reg.register_syn(static, moving, static_grid2world=g2w, moving_grid2world=g2w, level_iters=[5, 5])
    sdr = reg.SymmetricDiffeomorphicRegistration(reg.CCMetric(3, sigma_diff=2.0, radius=2), level_iters=[3],
                                                 threads=1)
    mapping: reg.DiffeomorphicMap = sdr.optimize(static, moving, g2w, g2w, syn.affine)
    warped: np.ndarray = mapping.transform(moving)
    points: np.ndarray = mapping.transform_points(np.zeros((2, 3)))
    jac: np.ndarray = mapping.jacobian_determinant()
    return (float(moved.mean()) + seconds + float(init.score) + float(result.affine[0, 0]) + float(warped.mean())
            + float(points.sum()) + float(jac.min()) + syn.seconds)


def channels_and_tile_configuration(stack: npt.NDArray[np.uint16], names: list[str], folder: Path) -> Path:
    def block(c: int, y0: int, x0: int, h: int, w: int) -> npt.NDArray[np.uint16]:
        return stack[c, y0:y0 + h, x0:x0 + w]

    out: Path = write_channels(folder / "slide.ome.tif", stack.shape[1:], np.uint16, names, block,
                               pixel_size=(0.325, 0.325), tile=512, compression="zlib", overwrite=True)
    back = read_channels(out, level=1)
    data: np.ndarray = back.data
    size: tuple[float, float] | None = back.pixel_size
    conf = read_tile_configuration(folder / "TileConfiguration.registered.txt")
    files: list[Path] = conf.paths()
    moved = [TileEntry(e.name, e.series, (e.position[0] + 1.0, e.position[1])) for e in conf.entries]
    assert data.size and size and files
    return write_tile_configuration(folder / "TileConfiguration.txt", moved, dim=conf.dim, overwrite=True)


def slides(cycle1: Path, cycle2: Path, config: Path) -> list[str]:
    result = sf.montage([cycle1, cycle2], align_channel="DAPI", flatfield="auto", progress=False)
    rms: float = result.cycles[0].montage.residuals.rms
    slide = sf.io.read_slide(cycle1)
    tiles, positions = sf.io.configuration_tiles(config)
    placed: sf.MontageResult = sf.montage(tiles, positions=positions, render=False)
    flat = sf.io.estimate_illumination(list(slide.tiles("DAPI").values()))
    assert rms >= 0 and placed.model and flat.flatfield.ndim == 2
    return result.channels
