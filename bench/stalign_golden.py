"""Writes tests/data/stalign_golden.npz: STalign's own LDDMM result on a small case, which
tests/test_lddmm.py compares the compatibility layer against (it must agree to float32 FFT
precision). Run in the STalign environment (bench/install_stalign.sh) from the repository root:

    bench/.venv-stalign/bin/python bench/stalign_golden.py

The inputs come from spectralign_fast.synthetic_tissue in the project's environment (written to
the same file first by ``--inputs``), so both sides see identical arrays.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "stalign_golden.npz"
PARAMS = dict(a=16.0, p=2.0, expand=2.0, nt=3, diffeo_start=0, epL=2e-8, epT=2e-4, epV=0.2,
              sigmaM=0.2, sigmaB=0.2, sigmaA=0.3, sigmaR=1e3, sigmaP=20.0)
NITER = 60  # past iteration 50, where the mixture weights start to move


def make_inputs() -> None:
    from spectralign_fast import stalign, synthetic_tissue

    pair = synthetic_tissue.fluorescence_pair(downsample=4)
    pI, pJ = pair.landmarks(4, 1.0, seed=1)
    L, T = stalign.L_T_from_points(pI, pJ)
    OUT.parent.mkdir(exist_ok=True)
    np.savez_compressed(OUT, I=pair.I, J=pair.J, xI0=pair.xI[0], xI1=pair.xI[1], xJ0=pair.xJ[0],
                        xJ1=pair.xJ[1], pointsI=pI, pointsJ=pJ, L=L, T=T)


def main() -> None:
    if "--inputs" in sys.argv:
        make_inputs()
        return
    root = Path(__file__).resolve().parents[1]
    subprocess.run([str(root / ".venv" / "bin" / "python"), __file__, "--inputs"], check=True)
    import matplotlib

    matplotlib.use("Agg")
    from STalign import STalign

    d = dict(np.load(OUT))
    out = STalign.LDDMM([d["xI0"], d["xI1"]], d["I"], [d["xJ0"], d["xJ1"]], d["J"], pointsI=d["pointsI"],
                        pointsJ=d["pointsJ"], L=d["L"], T=d["T"], niter=NITER, **PARAMS)
    d.update(A_stalign=out["A"].numpy(), v_stalign=out["v"].numpy(), WM_stalign=out["WM"].numpy(),
             niter=NITER, **{f"param_{k}": v for k, v in PARAMS.items()})
    np.savez_compressed(OUT, **d)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
