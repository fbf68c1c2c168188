// Which plane of a reference z-stack each frame shows: the peak of the
// whitened cross-correlation of the frame with every plane (suite2p's z-drift
// tracking). Frames and planes are 2-D, rows x cols, row-major float32.
#pragma once

#include <cstddef>
#include <vector>

namespace spectralign_fast {

struct ZStackOptions {
    float whiten = -1.0f;         // exponent of the cross-power magnitude: -1 phase correlation, 0 plain
    std::vector<int> max_shift;   // (rows, cols): largest in-plane shift searched; empty: a quarter of each side
    float taper = 0.125f;         // fraction of each side tapered to zero by a raised cosine
};

// The spectra of the reference planes, computed once (normalised, tapered).
class ZStackReference {
public:
    ZStackReference(const float* planes, int nplanes, int rows, int cols, ZStackOptions options);
    // corr[k * nplanes + z] = peak height of frame k against plane z, in [0, 1] for phase
    // correlation; NaN for a frame with a non-finite pixel, 0 for a constant frame.
    // Parallel over frames; identical for every thread count.
    void correlate(const float* frames, std::size_t nframes, int threads, float* corr) const;
    int planes() const { return nplanes_; }
    int rows() const { return rows_; }
    int cols() const { return cols_; }

private:
    void pad(const float* tile, float* padded) const;  // rows x cols into prows x pcols, zeros around
    int nplanes_, rows_, cols_;
    int prows_ = 0, pcols_ = 0;
    ZStackOptions options_;
    std::vector<float> window_;    // rows x cols taper
    std::vector<float> spectra_;   // nplanes x rows x (cols/2+1) complex, conjugated, interleaved
};

}  // namespace spectralign_fast
