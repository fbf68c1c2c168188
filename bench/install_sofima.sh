#!/usr/bin/env bash
# Install SOFIMA (google-research/sofima) into a private venv for bench/bench_sections.py.
#
# The PyPI package `sofima` 0.1 installs no modules (its wheel holds only metadata), so SOFIMA is
# installed from a source tree: a normal checkout (git clone https://github.com/google-research/sofima)
# or a bare git mirror of it. The repository root is the package; its modules are copied into the
# venv's site-packages as `sofima`. JAX runs on the CPU.
#
# The venv is bench/.venv-sofima (git-ignored) and never touches the project's .venv.
#
# Usage:  bash bench/install_sofima.sh /path/to/sofima          # checkout or bare mirror
# Idempotent: re-running reuses the venv and re-copies the sources.
set -euo pipefail

SRC="${1:?usage: install_sofima.sh /path/to/sofima-checkout-or-bare-mirror}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${VENV:-$HERE/.venv-sofima}"
PYTHON="${PYTHON:-python3}"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/sofima"
if [ -f "$SRC/mesh.py" ] && [ -f "$SRC/flow_field.py" ]; then
    cp -r "$SRC"/*.py "$SRC/decorators" "$SRC/processor" "$SRC/pipeline" "$TMP/sofima/" 2>/dev/null || true
    REV="$(git -C "$SRC" rev-parse HEAD 2>/dev/null || echo unknown)"
elif git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
    for f in $(git -C "$SRC" ls-tree -r HEAD --name-only | grep '\.py$'); do
        mkdir -p "$TMP/sofima/$(dirname "$f")"
        git -C "$SRC" show "HEAD:$f" > "$TMP/sofima/$f"
    done
    REV="$(git -C "$SRC" rev-parse HEAD)"
else
    echo "error: $SRC is neither a SOFIMA checkout nor a git dir holding it" >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q "jax[cpu]" connectomics "dataclasses-json>=0.5.6" absl-py edt \
    opencv-python-headless scipy scikit-image numpy
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
rm -rf "$SITE/sofima"
cp -r "$TMP/sofima" "$SITE/sofima"
echo "SOFIMA $REV" > "$SITE/sofima/REVISION"

"$VENV/bin/python" -c 'from sofima import flow_field, mesh, map_utils; import jax; print("SOFIMA OK (jax", jax.__version__ + ")")'
