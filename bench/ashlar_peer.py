"""ASHLAR on a multi-cycle file series, run inside bench/.venv-ashlar by bench/bench_slides.py.

Cycle 1 with ``EdgeAligner``, later cycles with ``LayerAligner`` (ASHLAR's own pipeline,
``ashlar.scripts.ashlar.process_single`` without its argument parsing), then optionally the
pyramidal OME-TIFF of all cycles with ``PyramidWriter``. Prints JSON: seconds per stage and every
tile's position (row, col) of its pixel (0, 0) in the mosaic, per cycle.

    python ashlar_peer.py FOLDER --cycles 2 --grid 4 --overlap 0.1 --pixel-size 0.65 [--output out.ome.tif]
"""
import argparse
import json
import time
import warnings

warnings.simplefilter("ignore")

from ashlar import fileseries, reg  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--cycles", type=int, required=True)
    ap.add_argument("--grid", type=int, required=True)
    ap.add_argument("--overlap", type=float, required=True)
    ap.add_argument("--pixel-size", type=float, required=True)
    ap.add_argument("--max-shift", type=float, default=30.0, help="micrometres")
    ap.add_argument("--output")
    a = ap.parse_args()
    t = {}
    t0 = time.perf_counter()
    readers = [fileseries.FileSeriesReader(f"{a.folder}/cycle{k + 1}", pattern="img_{series:3}_w{channel:1}.tif",
                                           overlap=a.overlap, width=a.grid, height=a.grid, layout="snake",
                                           pixel_size=a.pixel_size) for k in range(a.cycles)]
    edge = reg.EdgeAligner(readers[0], channel=0, max_shift=a.max_shift, do_make_thumbnail=a.cycles > 1)
    edge.run()
    t["cycle 1"] = time.perf_counter() - t0
    positions = [edge.positions.tolist()]
    aligners = [edge]
    for k, r in enumerate(readers[1:], start=2):
        t1 = time.perf_counter()
        layer = reg.LayerAligner(r, edge, channel=0, max_shift=a.max_shift)
        layer.run()
        t[f"cycle {k}"] = time.perf_counter() - t1
        positions.append(layer.positions.tolist())
        aligners.append(layer)
    t["align"] = time.perf_counter() - t0
    if a.output:
        t1 = time.perf_counter()
        mosaics = [reg.Mosaic(al, edge.mosaic_shape) for al in aligners]
        edge.reader = edge.reader.reader
        reg.PyramidWriter(mosaics, a.output, tile_size=1024).run()
        t["write"] = time.perf_counter() - t1
    t["total"] = time.perf_counter() - t0
    print(json.dumps({"timings": t, "positions": positions}))


if __name__ == "__main__":
    main()
