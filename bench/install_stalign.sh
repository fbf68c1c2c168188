#!/usr/bin/env bash
# Install STalign (JEFworks-Lab/STalign) into a private venv for bench/bench_lddmm.py.
#
# STalign is NOT on PyPI: it is installed from a source tree, either a normal checkout
# (git clone https://github.com/JEFworks-Lab/STalign) or a bare git mirror of it. Only
# STalign/STalign.py is used; it is copied into the venv's site-packages as the package
# `STalign`, so that `from STalign import STalign` works as in STalign's tutorials.
#
# The venv is bench/.venv-stalign (git-ignored) and never touches the project's .venv.
# Its dependencies are torch (CPU build, 2.13.0 unless TORCH_SPEC says otherwise) plus what
# STalign.py imports at module level: numpy, matplotlib, pandas, requests, pynrrd (`nrrd`),
# tornado, plotly; scipy and scikit-image are for the benchmark's inputs; psutil is optional.
#
# Usage:  bash bench/install_stalign.sh /path/to/STalign          # checkout or bare mirror
#         PYTHON=python3.11 VENV=/some/where bash bench/install_stalign.sh /path/to/STalign
# Idempotent: re-running reuses the venv, lets pip skip what is installed, and re-copies
# STalign.py (so pointing it at a newer checkout updates it).
set -euo pipefail

SRC="${1:?usage: install_stalign.sh /path/to/STalign-checkout-or-bare-mirror}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${VENV:-$HERE/.venv-stalign}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

# 1. find STalign.py (plain checkout, or bare git dir / checkout via `git show`)
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
if [ -f "$SRC/STalign/STalign.py" ]; then
    cp "$SRC/STalign/STalign.py" "$TMP/STalign.py"
    REV="$(git -C "$SRC" rev-parse HEAD 2>/dev/null || echo unknown)"
elif git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$SRC" show HEAD:STalign/STalign.py > "$TMP/STalign.py"
    REV="$(git -C "$SRC" rev-parse HEAD)"
else
    echo "error: $SRC is neither an STalign checkout nor a git dir holding STalign/STalign.py" >&2
    exit 1
fi

# 2. the venv and its packages
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# The CPU build of torch: pip finds it through this machine's pip configuration; elsewhere point
# pip at an index that has the CPU wheels (PIP_EXTRA_INDEX_URL) before running this.
"$VENV/bin/python" -m pip install -q "$TORCH_SPEC"
"$VENV/bin/python" -m pip install -q numpy matplotlib scipy scikit-image pandas \
    pynrrd plotly tornado requests psutil

# 3. STalign as a package in site-packages
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
mkdir -p "$SITE/STalign"
cp "$TMP/STalign.py" "$SITE/STalign/STalign.py"
printf '"""STalign %s, copied by bench/install_stalign.sh (not on PyPI)."""\n' "$REV" \
    > "$SITE/STalign/__init__.py"

# 4. check
MPLBACKEND=Agg "$VENV/bin/python" -c \
    'from STalign import STalign; import torch; print("STalign OK (torch", torch.__version__ + ")")'
