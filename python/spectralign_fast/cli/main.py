"""Command line: ``spectralign-fast montage | stack | register | demo``.

    spectralign-fast montage "tiles/r{row}_c{col}.tif" -o out.ome.zarr --report report.png
    spectralign-fast montage cycle1.ome.tiff cycle2.ome.tiff -o out.ome.zarr --align-channel DAPI --flatfield auto
    spectralign-fast montage TileConfiguration.txt -o out.ome.tif --tile-configuration TileConfiguration.registered.txt
    spectralign-fast stack "sections/s{z}.tif" -o stack.ome.zarr
    spectralign-fast stack "sections/s{z}_r{row}_c{col}.tif" -o stack.tif
    spectralign-fast register static.nii.gz moving.nii.gz -o moved.nii.gz --transform out.tfm
    spectralign-fast demo

User mistakes (missing files, a pattern that matches nothing, an output that
exists) end with one line on stderr and exit code 2; a failure while working
ends with exit code 1.
"""
from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .._config import set_fft_planning
from ..execute import connect
from ..io.atomic import check_output_path
from ..io.formats import output_kind
from ..workflows.montage import montage, write_report
from ..workflows.result import MontageResult
from ..workflows.sections import align_stack
from ..workflows.slide import write_registered_configuration, write_slide_report
from . import demo
from . import montage_inputs as mi
from . import register as register_cli

_FIELDS = ("row", "col", "z")


class UsageError(Exception):
    """A mistake in the command line or its files: reported in one line, exit code 2."""


def expand_pattern(pattern: str, fields: Tuple[str, ...], optional: Tuple[str, ...] = ()
                   ) -> Dict[Tuple[int, ...], str]:
    """Files matching a pattern with ``{row}``, ``{col}``, ``{z}`` placeholders.

    Returns ``{(values of the fields present, in the order of `fields`): path}``.
    """
    names = re.findall(r"{(\w+)}", pattern)
    unknown = sorted(set(names) - set(_FIELDS))
    if unknown:
        raise UsageError(f"unknown placeholder {{{unknown[0]}}} in {pattern!r}; use {{row}}, {{col}} and {{z}}")
    missing = [f for f in fields if f not in names and f not in optional]
    if missing:
        raise UsageError(f"the pattern {pattern!r} has no {{{missing[0]}}}; write e.g. "
                         f"'tiles/r{{row}}_c{{col}}.tif'")
    for f in set(names):
        if names.count(f) > 1:
            raise UsageError(f"{{{f}}} appears twice in {pattern!r}")
    matched, globbed = mi.match_files(pattern)
    found: Dict[Tuple[int, ...], str] = {}
    for path, m in matched:
        key = tuple(int(m.group(f)) for f in fields if f in names)
        if key in found:
            raise UsageError(f"two files give the same position {key}: {found[key]} and {path}")
        found[key] = path
    if not found:
        raise UsageError(f"no file matches {pattern!r}" + ("" if globbed else
                                                          " (check the folder and the file names)"))
    return found


def _json_path(output: Path) -> Path:
    name = output.name
    for suffix in (".ome.zarr", ".zarr", ".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return output.with_name(name[: -len(suffix)] + ".json")
    return output.with_name(name + ".json")


def _pending_marker(output: Path) -> Path:
    """Made before the image is written and removed once its JSON is too: an image without its JSON
    beside this marker is the half of a pair that a killed run left, not a file of the user's."""
    return output.with_name(f".{output.name}.pending")


def _check_outputs(args: argparse.Namespace) -> Tuple[Path, bool]:
    """The output path, and whether the image there (if any) is to be replaced: with --overwrite,
    or when it is the lone image of a run killed before its JSON was written."""
    out = Path(args.output)
    marker = _pending_marker(out)
    try:
        output_kind(out)
        incomplete = marker.is_file() and not _json_path(out).exists()
        if marker.is_file() and not incomplete:
            marker.unlink()  # the pair was complete: killed just before removing the marker
        check_output_path(out, overwrite=args.overwrite or incomplete)
        check_output_path(_json_path(out), overwrite=args.overwrite)
        if args.report:
            check_output_path(Path(args.report), overwrite=args.overwrite)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
    return out, args.overwrite or incomplete


@contextlib.contextmanager
def _image_and_json(out: Path) -> Iterator[None]:
    """Around writing the image, then its JSON: the pending marker lives exactly as long as the pair
    may be incomplete (kept when a failure leaves an image without its JSON)."""
    marker = _pending_marker(out)
    marker.touch()
    # An old JSON (--overwrite) goes first: a new image beside it would pass for a complete pair.
    _json_path(out).unlink(missing_ok=True)
    try:
        yield
    except BaseException:
        if not (out.exists() and not _json_path(out).exists()):
            marker.unlink(missing_ok=True)
        raise
    marker.unlink(missing_ok=True)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, help="output image: *.ome.zarr (chunked, pyramid) or *.tif")
    p.add_argument("--model", choices=("affine", "similarity", "rigid"), default="affine",
                   help="placement model (affine); similarity = rotation + scale + shift")
    p.add_argument("--overlap", type=float, default=0.1, help="guessed overlap between neighbours (0.1)")
    p.add_argument("--fine-size", type=int, default=128, help="window of the fine matches, pixels (128)")
    p.add_argument("--fine-step", type=float, default=100, help="spacing of the fine matches, pixels (100)")
    p.add_argument("--min-snr", type=float, default=8.0, help="drop matches with a lower SNR (8)")
    p.add_argument("--diagonals", action="store_true", help="also match diagonal neighbours")
    p.add_argument("--threads", type=int, default=0, help="threads; 0 = all cores (default)")
    p.add_argument("--fft-planning", choices=("estimate", "measure", "patient"), default=None,
                   help="how hard FFTW searches for fast transforms (measure); 'patient' plans for "
                        "a few seconds per window size once (kept as wisdom), then matches a few %% faster")
    p.add_argument("--chunk", type=int, default=1024, help="chunk size of the output (1024)")
    p.add_argument("--report", help="also write a PNG report (tile outlines, residuals, SNR map)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on the Dask cluster at ADDRESS (e.g. tcp://host:8786); tiles and output must be "
                        "on storage every worker sees, and the output must be *.ome.zarr")
    p.add_argument("--scheduler-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="give up connecting to the scheduler after this long (10)")


def _plan(args: argparse.Namespace) -> None:
    # Only when asked: main() called from Python keeps the caller's planning
    # (a fresh command-line process starts with "measure").
    if args.fft_planning is not None:
        set_fft_planning(args.fft_planning)


def _summary(result: MontageResult, out: Path, seconds: float) -> str:
    return (f"{len(result.transforms)} tiles, {result.n_matches} matches, residual RMS "
            f"{result.residuals.rms:.3f} px (max {result.residuals.max:.3f}); wrote {out} and "
            f"{_json_path(out)} in {seconds:.1f} s")


@contextlib.contextmanager
def _client(args: argparse.Namespace, out: Path) -> Iterator[Any]:
    """The Dask client of --scheduler (closed afterwards), or None."""
    if args.scheduler is None:
        yield None
        return
    if args.scheduler_timeout <= 0:
        raise UsageError(f"--scheduler-timeout must be positive, got {args.scheduler_timeout:g}")
    if not out.name.lower().endswith((".ome.zarr", ".zarr")):
        raise UsageError(f"with --scheduler the output must be *.ome.zarr (the workers write its chunks), "
                         f"got {out.name!r}")
    try:
        client = connect(args.scheduler, timeout=args.scheduler_timeout)
    except ImportError:
        raise UsageError("--scheduler needs Dask: pip install 'spectralign-fast[dask]'") from None
    except ConnectionError as exc:
        raise UsageError(str(exc)) from None
    try:
        yield client
    finally:
        client.close()


def cmd_montage(args: argparse.Namespace) -> int:

    out, replace = _check_outputs(args)
    _plan(args)
    try:
        kind = mi.input_kind(args.inputs)
        grid = mi.parse_grid(args.grid)
        flat = mi.flatfield_option(args.flatfield)
        if args.tile_configuration:
            check_output_path(Path(args.tile_configuration), overwrite=args.overwrite)
    except (mi.InputError, ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
    if kind == "slides":
        return _montage_slides(args, out, replace, grid, flat)
    if args.flip_x or args.flip_y:
        raise UsageError("--flip-x/--flip-y apply to microscope files with stage positions")
    try:
        if kind == "pattern":
            files, positions = mi.pattern_tiles(args.inputs[0], grid, args.overlap)
        else:
            if grid is not None:
                raise mi.InputError("--grid is for {index} patterns and files without positions; a "
                                    "TileConfiguration has its positions")
            files, positions = mi.configuration_inputs(args.inputs[0])
    except mi.InputError as exc:
        raise UsageError(str(exc)) from None
    tiles: Dict[Any, Any] = dict(files)
    if flat is not None:
        tiles, _ = mi.corrected_tiles(files, flat, args.darkfield)
    elif args.darkfield is not None:
        raise UsageError("--darkfield is subtracted together with a flat field: give --flatfield too")
    t0 = time.perf_counter()
    with _client(args, out) as client, _image_and_json(out):
        result = montage(tiles, positions=positions, overlap=args.overlap, model=args.model,
                         fine_size=args.fine_size, fine_step=args.fine_step, min_snr=args.min_snr,
                         diagonals=args.diagonals, threads=args.threads, progress=not args.quiet, output=out,
                         overwrite=replace, chunk=args.chunk, client=client)
        result.save(_json_path(out), overwrite=args.overwrite)
    if args.tile_configuration:
        write_registered_configuration(result, args.tile_configuration, overwrite=args.overwrite)
    if args.report:
        write_report(result, tiles, args.report, threads=args.threads)
    if not args.quiet:
        print(_summary(result, out, time.perf_counter() - t0))
    return 0


def _montage_slides(args: argparse.Namespace, out: Path, replace: bool, grid: Optional[Tuple[int, int]],
                    flat: Any) -> int:
    if args.scheduler is not None:
        raise UsageError("microscope files are stitched on this machine's threads; leave out --scheduler")
    if not out.name.lower().endswith((".ome.zarr", ".zarr", ".ome.tif", ".ome.tiff")):
        raise UsageError(f"microscope files give a multi-channel montage: write *.ome.zarr or *.ome.tif, "
                         f"got {out.name!r}")
    t0 = time.perf_counter()
    with _image_and_json(out):
        result = montage(args.inputs, align_channel=mi.parse_channel(args.align_channel), flatfield=flat,
                         darkfield=args.darkfield, flip_x=args.flip_x, flip_y=args.flip_y, grid=grid,
                         overlap=args.overlap, model=args.model, fine_size=args.fine_size, fine_step=args.fine_step,
                         min_snr=args.min_snr, diagonals=args.diagonals, threads=args.threads,
                         progress=not args.quiet, output=out, overwrite=replace, chunk=args.chunk)
        result.save(_json_path(out), overwrite=args.overwrite)
    first = result.cycles[0]
    if args.tile_configuration:
        write_registered_configuration(first.montage, args.tile_configuration, overwrite=args.overwrite)
    if args.report:
        write_slide_report(result, args.report, threads=args.threads)
    if not args.quiet:
        cycles = "; ".join(f"cycle {k + 1} residual RMS {c.residuals.rms:.3f} px"
                           for k, c in enumerate(result.cycles) if c.residuals is not None)
        print(f"{len(first.montage.transforms)} tiles x {len(result.cycles)} cycle(s), channels "
              f"{', '.join(result.channels)}; placement residual RMS {first.montage.residuals.rms:.3f} px"
              + (f"; {cycles}" if cycles else "") + f"; wrote {out} and {_json_path(out)} in "
              f"{time.perf_counter() - t0:.1f} s")
    return 0


def cmd_stack(args: argparse.Namespace) -> int:

    out, replace = _check_outputs(args)
    _plan(args)
    names = re.findall(r"{(\w+)}", args.pattern)
    if "z" not in names:
        raise UsageError(f"the pattern {args.pattern!r} has no {{z}}; write e.g. 'sections/s{{z}}.tif' or "
                         f"'sections/s{{z}}_r{{row}}_c{{col}}.tif'")
    tiled = "row" in names or "col" in names
    files = expand_pattern(args.pattern, ("z", "row", "col") if tiled else ("z",))
    zs = sorted({k[0] for k in files})
    slices: List[Dict[Tuple[int, ...], str] | str]
    if tiled:
        slices = [{k[1:]: p for k, p in files.items() if k[0] == z} for z in zs]
    else:
        slices = [files[(z,)] for z in zs]
    t0 = time.perf_counter()
    with _client(args, out) as client, _image_and_json(out):
        if args.elastic and args.model != "affine":
            raise UsageError("--elastic starts from the affine placement: leave --model at affine")
        result = align_stack(slices, overlap=args.overlap, model="elastic" if args.elastic else args.model,
                             fine_size=args.fine_size, fine_step=args.fine_step, min_snr=args.min_snr,
                             diagonals=args.diagonals, mesh_spacing=args.mesh_spacing, stiffness=args.stiffness,
                             threads=args.threads, progress=not args.quiet, output=out,
                             overwrite=replace, chunk=args.chunk, client=client)
        result.save(_json_path(out), overwrite=args.overwrite)
    if args.report:
        tiles: Dict[Tuple[int, ...], str] = {}
        for z, sl in enumerate(slices):
            for key, src in (sl.items() if isinstance(sl, dict) else [((0, 0), sl)]):
                tiles[(z,) + tuple(key)] = src
        write_report(result, tiles, args.report, threads=args.threads)
    if not args.quiet:
        print(_summary(result, out, time.perf_counter() - t0) + f"; {len(slices)} levels")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return demo.main(["--output", args.output] + (["--data", args.data] if args.data else [])
                     + (["--quiet"] if args.quiet else []) + (["--seed", str(args.seed)]))


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="spectralign-fast", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("montage", help="stitch tiles: a file pattern, a TileConfiguration or microscope files")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="a pattern such as 'tiles/r{row}_c{col}.tif' ({row}, {col}, {index}, {x}, {y}), "
                        "a Fiji TileConfiguration.txt, or microscope files with stage positions (OME-TIFF, "
                        "ND2, CZI, ...), one per imaging cycle")
    _common(p)
    mi.add_arguments(p)
    p.set_defaults(run=cmd_montage)
    p = sub.add_parser("stack", help="align serial sections / a z-stack (each level one image or a grid)")
    p.add_argument("pattern", help="files with {z} (and {row}, {col} for tiled levels)")
    _common(p)
    p.add_argument("--elastic", action="store_true",
                   help="after the placement, an elastic mesh per section solved jointly (model='elastic')")
    p.add_argument("--mesh-spacing", type=float, default=64, help="elastic: pixels between mesh nodes (64)")
    p.add_argument("--stiffness", type=float, default=1.0, help="elastic: weight of the mesh springs (1)")
    p.set_defaults(run=cmd_stack)
    register_cli.add_parser(sub, UsageError)
    p = sub.add_parser("demo", help="stitch a photograph cut into a 3x3 grid, with known truth")
    p.add_argument("--output", default="demo-output", help="folder for the demo's files (demo-output)")
    p.add_argument("--data", help="folder with the two YFP microscopy tiles (default: ../shared/data)")
    p.add_argument("--seed", type=int, default=2026, help="random seed of the jitter and noise")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=cmd_demo)
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"spectralign-fast: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError) as exc:
        print(f"spectralign-fast: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError) as exc:
        print(f"spectralign-fast: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("spectralign-fast: interrupted; nothing was left under the output name", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
