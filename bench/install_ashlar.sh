#!/usr/bin/env bash
# Install ASHLAR (labsyspharm/ashlar, PyPI `ashlar`) into a private venv for bench/bench_slides.py.
# Its file-series reader needs no Java. The venv is bench/.venv-ashlar (git-ignored); it never
# touches the project's .venv.   Usage: bash bench/install_ashlar.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${VENV:-$HERE/.venv-ashlar}"
PYTHON="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "ashlar==1.20.0"
"$VENV/bin/python" -c "import ashlar; print('ashlar', ashlar.__version__)"
