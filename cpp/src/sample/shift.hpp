// The sample core's separable shift: 1-D interpolation taps for a constant
// shift along one axis (linear or Catmull-Rom, indices clamped: edge
// replicated) and the row combiners that apply them. Stack registration
// (CrossCorr.transform) shifts frames with these, axis by axis.
#pragma once

#include <cstddef>

namespace spectralign_fast::sample {

// out[x] = sum_j weight[j] * in[clamp(x + base + j)].
struct ShiftTaps {
    int base = 0;
    int count = 2;
    float weight[4] = {1, 0, 0, 0};
};

// Taps of a shift by `delta` (out[x] = in(x + delta)) along an axis of n
// samples: linear (1 - t, t) or Catmull-Rom (exactly (0, 1, 0, 0) at t = 0,
// so integer shifts copy pixels).
ShiftTaps shift_taps(double delta, int n, bool cubic);

// out = sum_j weight[j] * src[j], over taps.count rows of n floats.
void combine_rows(const float* const* src, const ShiftTaps& taps, float* out, std::size_t n);

// One row of n shifted along itself (indices clamped at the ends).
void shift_row(const float* row, const ShiftTaps& taps, int n, float* out);

}  // namespace spectralign_fast::sample
