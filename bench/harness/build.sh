#!/bin/bash
# Builds the stand-alone harness into ${OUT:-/tmp/wrh} with the package's flags (no LTO).
set -e
cd "$(dirname "$0")/../.."
SRC="cpp/src/core/threads.cpp cpp/src/core/interrupt.cpp cpp/src/render/blocks.cpp cpp/src/render/render.cpp cpp/src/sample/prefilter.cpp cpp/src/sample/rows_cubic.cpp
     cpp/src/sample/rows_linear.cpp cpp/src/sample/rows_nearest.cpp cpp/src/sample/warp.cpp"
OBJ=${OBJ:-/tmp/wrh_obj}
mkdir -p "$OBJ"
FLAGS="-O3 -std=c++17 -march=x86-64 -fopenmp-simd -fno-trapping-math -fno-math-errno -g -Icpp/include -Icpp/src -pthread"
objs=""
for s in $SRC bench/harness/warp_render_harness.cpp; do
  o="$OBJ/$(echo "$s" | tr / _).o"
  if [ ! -f "$o" ] || [ "$s" -nt "$o" ] || [ -n "$(find cpp/src -name '*.hpp' -newer "$o")" ]; then
    g++ $FLAGS -c "$s" -o "$o" &
  fi
  objs="$objs $o"
done
wait
g++ $FLAGS $objs -o "${OUT:-/tmp/wrh}"
