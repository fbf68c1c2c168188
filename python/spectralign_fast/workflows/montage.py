"""End-to-end montage of a grid of tiles: match neighbours, place, render.

``montage(tiles)`` does what spectralign's README does by hand: a coarse match
in the middle of each overlap between horizontal and vertical neighbours (and
diagonal ones if asked), a grid of fine matches around it, dropping low-SNR and
inconsistent matches, a least-squares placement, and the rendering. The work
runs through an ``Executor`` (this machine's threads, or a Dask cluster).

Coordinates: points are (x, y) = (column, row) in a tile's pixels; a tile's
transform maps its pixel (x, y) to model space.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Tuple, Union, overload

from .._types import TileKeyT
from ..place.regularize import DEFAULT_REGULARIZE, MONTAGE_PRIOR
from ..render.overview import overview
from ..report import montage_report
from .result import MontageResult
from .slide import SlideMontage, montage_slide
from .stitch import stitch


@overload
def montage(tiles: Mapping[Any, Any], *, positions: Optional[Mapping[Any, Any]] = None, overlap: float = 0.1,
            model: str = "affine", regularize: float = DEFAULT_REGULARIZE, prior: str = MONTAGE_PRIOR,
            coarse_size: Any = None, fine_size: int = 128, fine_step: float = 100, iters: int = 3, min_snr: float = 8.0,
            whiten: float = -0.65, peak_radius: int = 3, diagonals: bool = False, threads: int = 0,
            progress: bool = True, render: bool = True, output: str | os.PathLike | None = None,
            overwrite: bool = False, blend: float = 10, interpolation: str = "linear", chunk: int = 1024,
            client: Any = None, align_channel: Any = 0, flatfield: Any = None, darkfield: Any = None,
            flip_x: bool = False, flip_y: bool = False, grid: Optional[Tuple[int, int]] = None) -> MontageResult: ...


@overload
def montage(tiles: str | os.PathLike | Sequence[str | os.PathLike], *, positions: None = None,
            overlap: float = 0.1, model: str = "affine", regularize: float = DEFAULT_REGULARIZE,
            prior: str = MONTAGE_PRIOR, coarse_size: Any = None, fine_size: int = 128, fine_step: float = 100,
            iters: int = 3, min_snr: float = 8.0, whiten: float = -0.65, peak_radius: int = 3, diagonals: bool = False,
            threads: int = 0, progress: bool = True, render: bool = True,
            output: str | os.PathLike | None = None, overwrite: bool = False, blend: float = 10,
            interpolation: str = "linear", chunk: int = 1024, client: Any = None, align_channel: Any = 0,
            flatfield: Any = None, darkfield: Any = None, flip_x: bool = False, flip_y: bool = False,
            grid: Optional[Tuple[int, int]] = None) -> SlideMontage: ...


def montage(tiles: Any, *, positions: Optional[Mapping[Any, Any]] = None, overlap: float = 0.1,
            model: str = "affine", regularize: float = DEFAULT_REGULARIZE, prior: str = MONTAGE_PRIOR,
            coarse_size: Any = None, fine_size: int = 128, fine_step: float = 100, iters: int = 3, min_snr: float = 8.0,
            whiten: float = -0.65, peak_radius: int = 3, diagonals: bool = False, threads: int = 0,
            progress: bool = True, render: bool = True, output: str | os.PathLike | None = None,
            overwrite: bool = False, blend: float = 10, interpolation: str = "linear", chunk: int = 1024,
            client: Any = None, align_channel: Any = 0, flatfield: Any = None, darkfield: Any = None,
            flip_x: bool = False, flip_y: bool = False,
            grid: Optional[Tuple[int, int]] = None) -> Union[MontageResult, SlideMontage]:
    """Stitch overlapping tiles: match neighbours, place, render.

    Parameters
    ----------
    tiles : dict, path or list of paths
        ``{(row, col): tile}``, where a tile is a 2-D array, an ``Image``, a path
        (TIFF, PNG, JPEG) or a callable returning an array. Row grows down,
        column to the right; missing positions (holes) are allowed, and tiles
        may differ in size. All tiles must share one dtype. With
        ``positions``, the keys may be any ids.
        (A Fiji ``TileConfiguration.txt``: ``io.configuration_tiles`` gives
        the tiles and positions to pass.)
        Or a microscope file with every tile's stage position in its metadata
        (OME-TIFF; ND2, CZI, LIF, ... through bioio: ``io.read_slide``), or a
        list of such files, one per imaging cycle: the tiles are laid out
        from their positions (any layout), stitched on ``align_channel``,
        later cycles registered to the first tile by tile, and every channel
        of every cycle rendered into one multi-channel output; the result is
        then a ``SlideMontage``.
    positions : dict, optional
        ``{tile: (x, y)}``: each tile's pixel (0, 0) in a common pixel frame
        (stage positions divided by the pixel size, a TileConfiguration's
        entries). Neighbours are then the tiles whose nominal rectangles
        overlap (grids with holes, serpentine or irregular layouts), matching
        starts from the nominal offsets, and a tile that matches nothing is
        placed at its nominal position with a RuntimeWarning.
    overlap : float
        Guessed fraction of a tile shared with each neighbour (0.1 = 10%); a
        guess within 2x of the truth works.
    model : {"affine", "similarity", "rigid"}
        Placement model: an affine transform per tile (spectralign's), a
        similarity (rotation, uniform scale and translation; not in
        spectralign), or a translation. With overlaps a tenth of a tile wide
        an affine fit extrapolates each tile's shear and stretch from narrow
        strips: "similarity" is several times more accurate where the tiles
        only rotate and shift (0.07 px against 0.56 px for the plain affine
        at the tile corners; the default regularised affine, see
        ``regularize``, 0.068 px: bench/RESULTS.md).
    regularize : float
        With ``model="affine"``: each tile's affine pulled toward its
        similarity placement with this weight times a factor that the
        matches set (``Placement.affine``'s ``regularize`` with
        ``prior="similarity-tested"``; 0: plain affine): 1 where the
        neighbours' matched points are consistent with similarities, falling
        steeply to 0 where an affine fits them clearly better (tiles that
        really stretch or shear). The default, 10, measured
        (bench/RESULTS.md): as close as a similarity placement where the
        tiles only rotate, shift and scale (8 x 8 tiles of 2048 px, 10 %
        overlap: 0.068 px at the corners, similarity 0.069), and closer than
        plain affine where each tile is stretched by 0.5 % per axis (8 x 8
        tiles of 1024 px: 1.37 px, plain affine 1.77, similarity 4.44).
    prior : {"similarity-tested", "rigid-centres", "similarity", "rigid"}
        What ``regularize`` pulls toward (``Placement.affine``'s ``prior``).
        "similarity-tested" (default) is the right choice for montages of up
        to a few thousand tiles; on larger grids its similarity placement
        bends, and "rigid-centres" (only the tile centres pulled toward the
        rigid placement; with ``regularize=1e-3``) keeps them from drifting:
        0.37-0.42 px from the truth from 30 x 30 to 1000 x 1000 tiles that
        share their distortion, where the default drifts 2.6 px at 100 x 100
        and 31 px at 300 x 300 (bench/RESULTS.md, "Regularised affine").
    coarse_size : int or (width, height), optional
        Window of the coarse match; default: the whole guessed overlap, capped at 1024.
    fine_size : int
        Window size (pixels) of the fine matches in each overlap.
    fine_step : float
        Spacing (pixels) of the grid of fine matches in each overlap.
    iters : int
        Refinement iterations per fine match.
    min_snr : float
        Matches whose correlation SNR is lower are dropped (as are matches
        inconsistent with the rest of their pair).
    whiten : float
        Exponent applied to the magnitude of the cross-power spectrum
        (spectralign's ``setprewhiten``): -0.65 (default) as SWiFT-IR, -1
        phase correlation, 0 plain cross-correlation.
    peak_radius : int
        Radius of the neighbourhood of the correlation peak whose centre of
        mass gives the subpixel shift. 3 (default) instead of the Matcher's
        5 (spectralign's): on noisy, narrow overlaps the smaller
        neighbourhood takes in less noise (bench/RESULTS.md).
    diagonals : bool
        Also match diagonal neighbours (helps grids with holes).
    threads : int
        Threads for matching and rendering; 0 (default) = all cores.
    progress : bool
        tqdm progress bars for matching and rendering.
    render : bool
        Render the montage (default). False: only match and place.
    output : path, optional
        Write the montage to ``.ome.zarr``/``.zarr`` (chunked, with a pyramid)
        or ``.tif``/``.tiff`` instead of returning it in memory. Nothing is
        left under this name if writing fails.
    overwrite : bool
        Replace an existing ``output``.
    blend : float
        Feathering radius in tile pixels (0: hard seams), as in ``Renderer``.
    interpolation : {"linear", "nearest", "cubic"}
        Sampling of the tiles, as in ``Renderer``.
    chunk : int
        Chunk size (pixels) of the written output.
    client : dask.distributed.Client, optional
        Run on a Dask cluster instead of this machine's threads (see
        ``execute.dask``): matching and the affine second pass as tasks over
        batches of neighbour pairs, each opening its own tiles; placement
        here; rendering one task per output chunk written straight into the
        OME-Zarr store, then the pyramid. Tiles given as paths are read by the
        workers (they must see the same paths: shared storage); arrays are
        scattered to the cluster once; callables are pickled with the tasks.
        ``output`` must then be OME-Zarr (a TIFF is refused) or None (the
        chunks are rendered on the cluster and assembled here). ``threads``
        is per task, and 0 means 1: Dask's worker threads fill the cores.
        The result is bit for bit that of a local run when every process
        plans its FFTs with ``set_fft_planning("estimate")`` (the tasks take
        this process's setting); with the default ``"measure"`` it may differ
        in the last bits.

    align_channel : str or int
        Microscope files: the channel (name or index) the tiles are matched
        on, in every cycle (DAPI/Hoechst for cyclic immunofluorescence).
    flatfield : {"auto"}, array, Illumination or None
        Microscope files: correct uneven illumination before matching and
        rendering. "auto" estimates it per channel and cycle from the tiles
        (``io.estimate_illumination``: a robust median of normalised
        tiles); an array (rows, cols) or (channels, rows, cols) is used as
        given. None (default): no correction.
    darkfield : number or array, optional
        Microscope files: the camera's dark field (offset), subtracted with
        the flat field; given, not estimated (``io.illumination`` says why).
    flip_x, flip_y : bool
        Microscope files: the stage axis runs against the image's columns (rows).
    grid : (rows, cols), optional
        Microscope files without stage positions only: lay the tiles out row
        by row on this grid (overlapping by ``overlap``).

    Returns
    -------
    MontageResult or SlideMontage
        ``transforms`` (tile pixel (x, y) to model space; tile at the lowest
        row, then column, is the identity), ``matches``, ``residuals``,
        ``image`` (when rendered in memory) and ``canvas``. ``model`` is the
        model used: when some tile's matches cannot determine the one asked
        for (an affine needs three matched points not on one line), every
        tile is placed with the next weaker one (affine, similarity, rigid)
        and a RuntimeWarning names the tiles.
    """
    if isinstance(tiles, (str, os.PathLike)) and str(tiles).lower().endswith(".txt"):
        raise ValueError(f"{tiles} looks like a Fiji TileConfiguration: read it with "
                         f"tiles, positions = io.configuration_tiles(path), then montage(tiles, positions=positions)")
    if isinstance(tiles, (str, os.PathLike)) or (isinstance(tiles, (list, tuple)) and len(tiles) > 0
                                                  and all(isinstance(t, (str, os.PathLike)) for t in tiles)):
        if positions is not None:
            raise ValueError("positions are read from the microscope files; give positions only with a dict of tiles")
        if client is not None:
            raise ValueError("microscope files are stitched on this machine's threads (client=None)")
        return montage_slide(tiles, align_channel=align_channel, flatfield=flatfield, darkfield=darkfield,
                             flip_x=flip_x, flip_y=flip_y, grid=grid, overlap=overlap, model=model,
                             regularize=regularize, prior=prior, coarse_size=coarse_size, fine_size=fine_size,
                             fine_step=fine_step, iters=iters, min_snr=min_snr, whiten=whiten,
                             peak_radius=peak_radius, diagonals=diagonals, threads=threads, progress=progress,
                             render=render, output=output, overwrite=overwrite, blend=blend,
                             interpolation=interpolation, chunk=chunk)
    if flatfield is not None or grid is not None or flip_x or flip_y:
        raise ValueError("flatfield, grid, flip_x and flip_y apply to microscope files; for a dict of tiles "
                         "correct the tiles yourself (io.estimate_illumination) and give positions")
    return stitch(tiles, positions=positions, overlap=overlap, model=model, regularize=regularize, prior=prior,
                  coarse_size=coarse_size, fine_size=fine_size, fine_step=fine_step, iters=iters, min_snr=min_snr,
                  whiten=whiten, peak_radius=peak_radius, diagonals=diagonals, threads=threads, progress=progress,
                  render=render, output=output, overwrite=overwrite, blend=blend, interpolation=interpolation,
                  chunk=chunk, client=client)


def write_report(result: MontageResult, tiles: Mapping[TileKeyT, Any], path: str | os.PathLike, *,
                 title: Optional[str] = None, threads: int = 0) -> Path:
    """PNG report: tile outlines over a downsampled montage, residual vectors, SNR map.

    For a stack (``result.levels``) the overview shows the first level.
    """
    keys = result.levels[0] if result.levels else list(result.transforms)
    img, scale, origin = overview(result.transforms, result.tile_sizes, tiles, keys=keys, threads=threads)
    table = result.match_table()
    return montage_report(path, image=img, scale=scale, origin=origin, tile_outlines=result.tile_outlines(),
                          points=table["points"], residuals=table["residuals"], snr=table["snr"],
                          title=title or f"{len(result.transforms)} tiles, {result.model}, "
                                         f"{result.n_matches} matches, residual RMS {result.residuals.rms:.3f} px")
