"""Elastic alignment of serial sections (issue 19): accuracy against truth, the mesh solve
against the number of nodes, and the whole job end to end. Prints Markdown for bench/RESULTS.md.

    python bench/bench_sections.py --accuracy [--first 10 --sections 140] [--sofima]
    python bench/bench_sections.py --solve-scaling
    python bench/bench_sections.py --end-to-end [--sections 100 --size 2048 --spacing 64]

*Accuracy*: consecutive axial slices of nilearn's MNI152 template (1 mm, 197 x 233), each
deformed by its own known smooth map (four sinusoids, 3 px at most) plus a small affine
(rotation up to 1 degree, scale 1 +- 1%, shift up to 3 px) and noise; the error is the RMS
distance between the undeformed points that neighbouring aligned sections show at the same
output pixel, over the brain (tests/sections_truth.py). SOFIMA (``--sofima``, installed by
bench/install_sofima.sh into bench/.venv-sofima) runs its flow + mesh relaxation of the EM
alignment notebook on the same sections, in the same run (bench/sofima_peer.py; the sections'
empty background masked, which also makes its flow the normalised masked cross-correlation),
twice: with the notebook's spring constants (k0 0.01, k 0.1) and with k 0.01, chosen on slices
60-64 from k 0.1-0.001 (best for cycles 0.5-1.5, 0.05 px off k 0.003's best for 1-2): at stride 8
the notebook's mesh is too stiff to follow these 3 px warps on a 200 px section.
*Solve scaling*: the mesh solve alone on synthetic matches (4 per cell per pair of sections),
each size in its own process (peak RSS is that process's).
*End to end*: sections made from scikit-image's retina photograph scaled to ``--size``, each
deformed as above (4 px at most), written as uint16 TIFF files, then ``align_stack(model=
"elastic")`` to OME-Zarr in a child process: its per-stage seconds and peak RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from peak_memory import peak_rss_mb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def _machine() -> str:
    from spectralign_fast._config import cpu_name

    return f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}"


# -- accuracy ------------------------------------------------------------------------------------


def accuracy(first: int, n: int, cycles: tuple, sofima: bool, spacing: float) -> dict:
    from scipy.ndimage import map_coordinates

    import sections_truth as truth
    import spectralign_fast as sf
    from spectralign_fast.synthetic_sections import mni_axial_slices, serial_sections

    ss = serial_sections(mni_axial_slices(first, n), seed=1, cycles=cycles, max_displacement=3.0)
    t0 = time.perf_counter()
    res = sf.align_stack(ss.images, model="elastic", mesh_spacing=spacing, z_size=96, z_step=32, regularize=0.1,
                         progress=False)
    wall = time.perf_counter() - t0
    q = truth.output_grid(res)
    keep = np.ones(len(q), bool)
    X = [truth.reference_points(res, ss, z, q) for z in range(n)]
    for z in range(n):
        keep &= map_coordinates(ss.reference[z], [X[z][:, 1], X[z][:, 0]], order=1) > 0.15
    row = {"sections": n, "cycles": cycles, "wall_s": wall, "timings": res.timings,
           "elastic_timings": res.elastic.timings, "solve": res.elastic.solve,
           "elastic_px": truth.neighbour_error(res, ss, q, keep),
           "affine_px": truth.neighbour_error(res, ss, q, keep, elastic=False),
           "inverted": int(res.elastic.inverted.sum()), "points": int(keep.sum())}
    if sofima:
        row.update(_sofima(ss, res, q, keep, SOFIMA_K[0]))
        row.update({k + "_tuned": v for k, v in _sofima(ss, res, q, keep, SOFIMA_K[1]).items()})
    return row


SOFIMA_K = (0.1, 0.01)  # the EM notebook's in-plane spring constant; the one chosen on slices 60-64 (k0 0.01)


def _sofima(ss, res, q, keep, k: float) -> dict:
    """SOFIMA on the same sections; its output frame is section 0's pixels, ours is the canvas:
    the query points are taken to section 0's frame (both frames are regular pixel grids)."""
    py = HERE / ".venv-sofima" / "bin" / "python"
    if not py.exists():
        return {"sofima": "not installed (bash bench/install_sofima.sh <sofima checkout or mirror>)"}
    x0, y0 = res.canvas[:2]
    q0 = q + [x0, y0]  # canvas pixel -> model = section 0's pixel frame
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(inp, sections=np.array(ss.images), q=q0)
        t0 = time.perf_counter()
        p = subprocess.run([str(py), str(HERE / "sofima_peer.py"), str(inp), str(out), "--patch", "32",
                            "--stride", "8", "--k", str(k)], capture_output=True, text=True,
                           env={**os.environ, "JAX_PLATFORMS": "cpu"})
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            return {"sofima": "failed: " + p.stderr.strip().splitlines()[-1]}
        d = np.load(out)
        coords = d["coords"]
    X = np.array([ss.to_reference(z, coords[z]) for z in range(len(ss.images))])
    d_px = np.linalg.norm(X[1:] - X[:-1], axis=2)[:, keep]
    return {"sofima_px": float(np.sqrt(np.mean(d_px ** 2))), "sofima_wall_s": wall,
            "sofima_flow_s": float(d["t_flow"]), "sofima_mesh_s": float(d["t_mesh"]),
            "sofima_invert_s": float(d["t_invert"])}


# -- solve scaling --------------------------------------------------------------------------------


def solve_case(ns: int, ny: int, nx: int, solver: str) -> dict:
    from spectralign_fast import _core

    sp = 64.0
    rng = np.random.default_rng(0)
    gy, gx = np.mgrid[0:(ny - 1) * 2, 0:(nx - 1) * 2]
    pts = np.column_stack([gx.ravel(), gy.ravel()]) * sp / 2 + sp / 4
    za = np.repeat(np.arange(ns - 1), len(pts))
    pa = np.tile(pts, (ns - 1, 1))
    pb = pa + rng.normal(0, 1.0, pa.shape)
    t0 = time.perf_counter()
    s = _core.place.solve_mesh(ns, ny, nx, sp, 0.0, 0.0, za, za + 1, pa, pb, np.full(len(za), 4.0), 1.0, 1e-3,
                               solver)
    wall = time.perf_counter() - t0
    return {"sections": ns, "mesh": f"{ny}x{nx}", "nodes": ns * ny * nx, "matches": len(za), "solver": s.solver,
            "cg_iterations": s.cg_iterations, "wall_s": wall, "assemble_s": s.assemble_s, "factor_s": s.factor_s,
            "solve_s": s.solve_s, "peak_mb": peak_rss_mb()}


def _child(args: list) -> dict:
    p = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


# -- end to end -----------------------------------------------------------------------------------


def make_sections(folder: Path, n: int, size: int) -> list:
    import tifffile
    from scipy.ndimage import zoom

    from spectralign_fast.synthetic import photograph
    from spectralign_fast.synthetic_sections import serial_sections

    photo = photograph("retina")
    big = zoom(photo, size / photo.shape[0], order=1)[:size, :size].astype(np.float32)
    paths = []
    for z in range(n):
        ss = serial_sections(big[None], seed=100 + z, cycles=(0.5, 1.5), max_displacement=4.0)
        paths.append(folder / f"section_{z:04d}.tif")
        tifffile.imwrite(paths[-1], np.rint(np.clip(ss.images[0], 0, 1) * 65535).astype(np.uint16))
    return paths


def end_to_end_child(folder: str, spacing: float, out: str) -> dict:
    import spectralign_fast as sf

    paths = sorted(Path(folder).glob("section_*.tif"))
    t0 = time.perf_counter()
    res = sf.align_stack(paths, model="elastic", mesh_spacing=spacing, output=out, progress=False)
    return {"wall_s": time.perf_counter() - t0, "timings": res.timings, "elastic_timings": res.elastic.timings,
            "solve": res.elastic.solve, "inverted": int(res.elastic.inverted.sum()),
            "flow_rms_px": [float(np.nanmean(res.elastic.affine_rms)), float(np.nanmean(res.elastic.residual_rms))],
            "peak_mb": peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accuracy", action="store_true")
    ap.add_argument("--solve-scaling", action="store_true")
    ap.add_argument("--end-to-end", action="store_true")
    ap.add_argument("--sofima", action="store_true")
    ap.add_argument("--sections", type=int)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--first", type=int, default=10, help="--accuracy: first template slice (10)")
    ap.add_argument("--spacing", type=float)
    ap.add_argument("--solve-case", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--e2e-child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.solve_case:
        ns, ny, nx, solver = a.solve_case
        print(json.dumps(solve_case(int(ns), int(ny), int(nx), solver)))
        return
    if a.e2e_child:
        print(json.dumps(end_to_end_child(a.e2e_child[0], float(a.e2e_child[1]), a.e2e_child[2])))
        return
    print(f"Machine: {_machine()}\n")
    if a.accuracy:
        print(f"| sections | deformation cycles | elastic px | affine px | SOFIMA px (k {SOFIMA_K[0]:g}) | "
              f"SOFIMA px (k {SOFIMA_K[1]:g}) | ours s (flow / solve) | SOFIMA s (flow / mesh / invert), "
              f"k {SOFIMA_K[0]:g}; k {SOFIMA_K[1]:g} | inverted |")
        print("|---|---|---|---|---|---|---|---|---|")
        for cycles in ((0.5, 1.5), (1.0, 2.0)):
            r = accuracy(a.first, a.sections or 140, cycles, a.sofima, a.spacing or 16)
            so, st = [], []
            for t in ("", "_tuned"):
                ok = "sofima_px" + t in r
                so.append(f"{r['sofima_px' + t]:.3f}" if ok else r.get("sofima" + t, "-"))
                st.append(f"{r['sofima_wall_s' + t]:.1f} ({r['sofima_flow_s' + t]:.1f} / "
                          f"{r['sofima_mesh_s' + t]:.1f} / {r['sofima_invert_s' + t]:.1f})" if ok else "-")
            so, st = " | ".join(so), "; ".join(st)
            et = r["elastic_timings"]
            print(f"| {r['sections']} | {cycles[0]:g}-{cycles[1]:g} | {r['elastic_px']:.3f} | {r['affine_px']:.3f} | "
                  f"{so} | {r['wall_s']:.1f} ({et['flow']:.1f} / {et['solve']:.2f}) | {st} | {r['inverted']} |",
                  flush=True)
    if a.solve_scaling:
        print("\n| sections | mesh | nodes | matches | solver | CG its | total s | factor/precond s | solve s | "
              "peak RSS MB |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        cases = [(10, 33, 33, "cg"), (10, 33, 33, "cholesky"), (100, 33, 33, "cg"), (100, 33, 33, "cholesky"),
                 (30, 64, 64, "cg"), (300, 33, 33, "cg"), (300, 33, 33, "cholesky"), (1000, 33, 33, "cg"),
                 (250, 64, 64, "cg")]
        for ns, ny, nx, solver in cases:
            r = _child(["--solve-case", str(ns), str(ny), str(nx), solver])
            print(f"| {r['sections']} | {r['mesh']} | {r['nodes']} | {r['matches']} | {r['solver']} | "
                  f"{r['cg_iterations']} | {r['wall_s']:.2f} | {r['factor_s']:.2f} | {r['solve_s']:.2f} | "
                  f"{r['peak_mb']:.0f} |", flush=True)
    if a.end_to_end:
        n = a.sections or 100
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
            t0 = time.perf_counter()
            make_sections(Path(tmp), n, a.size)
            print(f"\n{n} sections of {a.size} x {a.size} made in {time.perf_counter() - t0:.0f} s", flush=True)
            r = _child(["--e2e-child", tmp, str(a.spacing or 64), str(Path(tmp) / "out.ome.zarr")])
        print("\n| stage | seconds |")
        print("|---|---|")
        for k, v in r["timings"].items():
            print(f"| {k} | {v:.1f} |")
        for k, v in r["elastic_timings"].items():
            print(f"| (elastic) {k} | {v:.1f} |")
        print(f"| **total** | **{r['wall_s']:.1f}** |")
        s = r["solve"]
        print(f"\nPeak RSS {r['peak_mb']:.0f} MB; mesh {s['unknowns']} nodes, solver {s['solver']} "
              f"({s['cg_iterations']} CG iterations); flow RMS {r['flow_rms_px'][0]:.2f} -> "
              f"{r['flow_rms_px'][1]:.2f} px; {r['inverted']} inverted triangles.")


if __name__ == "__main__":
    main()
