// The mean of registered frames (CrossCorr's mean reference) without writing
// the registered frames: every frame shifted row by row, exactly as
// shift_frames' linear path does it, and added to a float64 sum.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/parallel.hpp"
#include "core/simd_clones.hpp"
#include "frame_checks.hpp"
#include "sample/shift.hpp"
#include "spectralign_fast/stackreg/stackreg.hpp"

namespace spectralign_fast {

namespace {

// Rows of output summed together: their float64 sums (8 KB per 1024
// columns each) stay in cache while every frame is added.
constexpr int kRowsPerItem = 8;

SPECTRALIGN_CLONES void add_row(const float* row, double* sum, std::size_t n) {
#pragma omp simd
    for (std::size_t x = 0; x < n; ++x) sum[x] += static_cast<double>(row[x]);
}

struct MeanWorkspace {
    explicit MeanWorkspace(int cols) : zrows{std::vector<float>(cols), std::vector<float>(cols)}, row(cols), out(cols) {}
    std::vector<float> zrows[2];  // 3-D: the plane rows combined along z
    std::vector<float> row, out;
};

}  // namespace

void accumulate_shifted(const float* frames, std::size_t n, const std::vector<int>& shape, const double* deltas,
                        int threads, double* sum) {
    stackreg_detail::check_frame_shape(shape);
    resolve_threads(threads);  // validates
    const std::size_t rank = shape.size();
    const bool volume = rank == 3;
    const int nz = volume ? shape[0] : 1, rows = shape[rank - 2], cols = shape[rank - 1];
    const std::size_t plane = static_cast<std::size_t>(rows) * cols;
    const std::size_t frame = plane * static_cast<std::size_t>(nz);
    std::vector<char> usable(n);
    for (std::size_t k = 0; k < n; ++k) usable[k] = stackreg_detail::finite_shift(deltas + k * rank, rank);
    const std::size_t all_rows = static_cast<std::size_t>(nz) * rows;
    const std::size_t items = (all_rows + kRowsPerItem - 1) / kRowsPerItem;
    parallel_for(
        items, threads, [&]() { return MeanWorkspace(cols); },
        [&](MeanWorkspace& ws, std::size_t item) {
            const std::size_t first = item * kRowsPerItem, last = std::min(all_rows, first + kRowsPerItem);
            for (std::size_t k = 0; k < n; ++k) {
                if (!usable[k]) continue;
                const double* d = deltas + k * rank;
                const float* in = frames + k * frame;
                const sample::ShiftTaps tz = sample::shift_taps(volume ? d[0] : 0.0, nz, false);
                const sample::ShiftTaps ty = sample::shift_taps(d[rank - 2], rows, false);
                const sample::ShiftTaps tx = sample::shift_taps(d[rank - 1], cols, false);
                for (std::size_t r = first; r < last; ++r) {
                    const int z = static_cast<int>(r / rows), y = static_cast<int>(r % rows);
                    const float* src[2];
                    for (int j = 0; j < ty.count; ++j) {
                        const std::size_t yy = static_cast<std::size_t>(std::clamp(y + ty.base + j, 0, rows - 1));
                        if (!volume) {
                            src[j] = in + yy * cols;
                            continue;
                        }
                        // As shift_frames: the plane combined along z first, then along y.
                        const float* zs[2];
                        for (int i = 0; i < tz.count; ++i)
                            zs[i] = in + static_cast<std::size_t>(std::clamp(z + tz.base + i, 0, nz - 1)) * plane +
                                    yy * cols;
                        sample::combine_rows(zs, tz, ws.zrows[j].data(), static_cast<std::size_t>(cols));
                        src[j] = ws.zrows[j].data();
                    }
                    sample::combine_rows(src, ty, ws.row.data(), static_cast<std::size_t>(cols));
                    sample::shift_row(ws.row.data(), tx, cols, ws.out.data());
                    add_row(ws.out.data(), sum + r * cols, static_cast<std::size_t>(cols));
                }
            }
        });
}

}  // namespace spectralign_fast
