#!/usr/bin/env bash
# Installs the Debian packages the build prefers, when this user may.
#   libfftw3-dev: FFTW with SIMD codelets (its FFTs measured 4x faster than the PyPI fallback)
#   libeigen3-dev, pkg-config, g++: the rest of the C++ build
#   libsuitesparse-dev, libopenblas-dev: CHOLMOD's supernodal Cholesky for
#     large placements (optional for the build; with OpenBLAS, not the
#     reference BLAS, behind it)
#   python3-venv, python3-dev: only when building against Debian's own python3
# Without root (or apt), it says what it would install and carries on: the
# build then falls back to the PyPI packages pylib-fftw3f and cmeel-eigen.
set -euo pipefail
python=${1:-python3}

need=()
for pkg in libfftw3-dev libeigen3-dev libsuitesparse-dev libopenblas-dev pkg-config g++; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
pyexe=$(command -v "$python" || true)
case "$(readlink -f "${pyexe:-/nonexistent}")" in
  /usr/bin/python3*)
    "$python" -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
    "$python" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
      || need+=(python3-dev)
    ;;
esac

[ ${#need[@]} -eq 0 ] && exit 0
command -v apt-get >/dev/null 2>&1 || { echo "note: no apt-get; not installing ${need[*]}" >&2; exit 0; }
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "note: not root; not installing ${need[*]} (the build falls back to PyPI's FFTW and Eigen, and to Eigen's placement solver)" >&2
  exit 0
fi
echo "installing system packages: ${need[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
