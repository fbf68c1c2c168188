// Stand-alone C++ timing harness for the warp core and the Renderer (no
// Python, no LTO): builds in seconds, so kernel changes can be measured side
// by side quickly. Not part of the package build.
//
//   bench/harness/build.sh && /tmp/wrh [what] [reps]
//   what: all | w3 | w2 | render   (WRH_REUSE=1: reuse output buffers; WRH_CPU=1: CPU time;
//   WRH_BITS=1: coverage as a bit mask)
// Prints medians and an FNV-1a hash of every output (bit-exactness check).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>
#include <sys/mman.h>
#include <time.h>

#include "spectralign_fast/render/render.hpp"
#include "spectralign_fast/sample/warp.hpp"

using namespace spectralign_fast;
using clk = std::chrono::steady_clock;

// An output buffer as numpy makes one: fresh pages, MADV_HUGEPAGE, not zeroed.
struct Fresh {
    void* p = nullptr;
    std::size_t n = 0;
    explicit Fresh(std::size_t bytes) : n(bytes) {
        // WRH_REUSE=1: the same (faulted-in) buffers every call.
        if (std::getenv("WRH_REUSE")) {
            for (int k = 0; k < 4; ++k) {
                if (keep_n[k] == bytes && keep[k]) { p = keep[k]; keep[k] = nullptr; owned = false; return; }
            }
        }
        p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        madvise(p, n, MADV_HUGEPAGE);
    }
    bool owned = true;
    ~Fresh() {
        if (std::getenv("WRH_REUSE")) {
            for (int k = 0; k < 4; ++k)
                if (!keep[k] && (keep_n[k] == n || keep_n[k] == 0)) { keep[k] = p; keep_n[k] = n; return; }
        }
        munmap(p, n);
    }
    static inline void* keep[4] = {};
    static inline std::size_t keep_n[4] = {};
    Fresh(const Fresh&) = delete;
    Fresh& operator=(const Fresh&) = delete;
};

static std::uint64_t fnv(const void* p, std::size_t n) {
    const unsigned char* b = static_cast<const unsigned char*>(p);
    std::uint64_t h = 1469598103934665603ull;
    for (std::size_t k = 0; k < n; ++k) h = (h ^ b[k]) * 1099511628211ull;
    return h;
}

// WRH_CPU=1: CPU time of the process instead of wall time (steadier on a
// shared, loaded host; the same as wall time for one thread when it is not
// waiting).
static double now_s() {
    static const bool cpu = std::getenv("WRH_CPU") != nullptr;
    if (cpu) {
        timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return ts.tv_sec + ts.tv_nsec * 1e-9;
    }
    return std::chrono::duration<double>(clk::now().time_since_epoch()).count();
}

template <class F>
static double median_time(F f, int reps) {
    f();
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) {
        const double t0 = now_s();
        f();
        t.push_back(now_s() - t0);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

static void rot3(double deg, double c, const double sh[3], double M[16]) {
    const double a = deg * M_PI / 180, k = 1 / std::sqrt(3.0);
    double K[3][3] = {{0, -k, k}, {k, 0, -k}, {-k, k, 0}}, KK[3][3], R[3][3];
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
            KK[i][j] = 0;
            for (int l = 0; l < 3; ++l) KK[i][j] += K[i][l] * K[l][j];
        }
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) R[i][j] = (i == j) + std::sin(a) * K[i][j] + (1 - std::cos(a)) * KK[i][j];
    std::fill(M, M + 16, 0.0);
    for (int i = 0; i < 3; ++i) {
        double t = c + sh[i];
        for (int j = 0; j < 3; ++j) {
            M[i * 4 + j] = R[i][j];
            t -= R[i][j] * c;
        }
        M[i * 4 + 3] = t;
    }
    M[15] = 1;
}

static void rot2(double deg, double c, double s0, double s1, double M[9]) {
    const double a = deg * M_PI / 180, C = std::cos(a), S = std::sin(a);
    M[0] = C; M[1] = -S; M[2] = c - (C * c - S * c) + s0;
    M[3] = S; M[4] = C;  M[5] = c - (S * c + C * c) + s1;
    M[6] = 0; M[7] = 0; M[8] = 1;
}

int main(int argc, char** argv) {
    const std::string what = argc > 1 ? argv[1] : "all";
    const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
    const int threads = argc > 3 ? std::atoi(argv[3]) : 1;
    std::minstd_rand rng(1);
    std::uniform_real_distribution<float> U(0, 1000);
    double w2rate = 0;
    if (what == "all" || what == "w2" || what == "render") {
        const int n = 2048;
        std::vector<float> img(static_cast<std::size_t>(n) * n), out(img.size());
        for (auto& v : img) v = U(rng);
        double M[9];
        rot2(3.0, (n - 1) / 2.0, 0.37, -0.21, M);
        sample::Grid g{img.data(), sample::Dtype::F32, 2, {n, n, 1}};
        sample::WarpOptions o;
        o.threads = threads;
        const std::int64_t os[3] = {n, n, 1};
        const double t = median_time([&] { Fresh f(out.size() * 4); sample::warp_affine(g, M, os, f.p, o); }, reps);
        sample::warp_affine(g, M, os, out.data(), o);
        w2rate = n * double(n) / t;
        std::printf("w2  2048^2 f32 linear rot3: %.1f ms  %.0f Mpx/s  hash %016llx\n", t * 1e3,
                    w2rate / 1e6, (unsigned long long)fnv(out.data(), out.size() * 4));
    }
    if (what == "all" || what == "w3") {
        const int n = 256;
        std::vector<float> vol(static_cast<std::size_t>(n) * n * n), out(vol.size());
        for (auto& v : vol) v = U(rng);
        double M[16];
        const double sh[3] = {0.31, -0.17, 0.23};
        rot3(3.0, (n - 1) / 2.0, sh, M);
        sample::Grid g{vol.data(), sample::Dtype::F32, 3, {n, n, n}};
        sample::WarpOptions o;
        o.threads = threads;
        const std::int64_t os[3] = {n, n, n};
        const double t = median_time([&] { Fresh f(out.size() * 4); sample::warp_affine(g, M, os, f.p, o); }, reps);
        sample::warp_affine(g, M, os, out.data(), o);
        std::printf("w3  256^3 f32 linear rot3:  %.1f ms  %.0f Mpx/s  hash %016llx\n", t * 1e3,
                    n * double(n) * n / t / 1e6, (unsigned long long)fnv(out.data(), out.size() * 4));
    }
    if (what == "all" || what == "render") {
        const int tile = 2048, N = 5;
        const int step = static_cast<int>(std::lround(tile * 0.9));
        std::uniform_real_distribution<double> J(-3, 3), A(-1, 1), S(0.99, 1.01);
        std::vector<std::vector<float>> imgs(N * N);
        std::vector<RenderTile> tiles(N * N);
        double bx0 = 1e300, by0 = 1e300, bx1 = -1e300, by1 = -1e300;
        for (int r = 0; r < N; ++r)
            for (int c = 0; c < N; ++c) {
                auto& im = imgs[r * N + c];
                im.resize(static_cast<std::size_t>(tile) * tile);
                for (auto& v : im) v = U(rng);
                const double x = c * step + J(rng), y = r * step + J(rng);
                const double a = A(rng) * M_PI / 180, s = S(rng);
                RenderTile& t = tiles[r * N + c];
                t.data = im.data();
                t.row_stride = tile;
                t.width = t.height = tile;
                const double f[6] = {s * std::cos(a), -s * std::sin(a), x, s * std::sin(a), s * std::cos(a), y};
                std::copy(f, f + 6, t.fwd);
                for (double u : {-0.5, tile - 0.5})
                    for (double v : {-0.5, tile - 0.5}) {
                        const double X = f[0] * u + f[1] * v + f[2], Y = f[3] * u + f[4] * v + f[5];
                        bx0 = std::min(bx0, X); bx1 = std::max(bx1, X);
                        by0 = std::min(by0, Y); by1 = std::max(by1, Y);
                    }
            }
        Canvas cv;
        cv.x0 = std::floor(bx0);
        cv.y0 = std::floor(by0);
        cv.width = static_cast<long long>(std::ceil(bx1) - cv.x0);
        cv.height = static_cast<long long>(std::ceil(by1) - cv.y0);
        RenderOptions opt;
        opt.blend = 10;
        opt.threads = threads;
        const std::size_t npx = static_cast<std::size_t>(cv.width) * cv.height;
        // Fresh output every call, as the Python binding allocates it.
        // WRH_BITS=1: coverage as a bit mask (as Renderer.render_all asks for it).
        const bool bits = std::getenv("WRH_BITS") != nullptr;
        const std::size_t ncov = bits ? static_cast<std::size_t>((cv.width + 7) / 8) * cv.height : npx;
        const Window whole{0, 0, cv.height, cv.width};
        const double t = median_time([&] {
            Fresh out(npx * 4), cov(ncov);
            render_window(tiles, PixelType::F32, cv, whole, opt, out.p, cv.width,
                          static_cast<std::uint8_t*>(cov.p), bits);
        }, reps);
        Fresh out(npx * 4), cov(ncov);
        render_window(tiles, PixelType::F32, cv, whole, opt, out.p, cv.width, static_cast<std::uint8_t*>(cov.p), bits);
        const std::uint64_t h1 = fnv(out.p, npx * 4), h2 = fnv(cov.p, ncov);
        const double rate = npx / t;
        std::printf("render 5x5x2048 affine f32: %.1f ms  %.0f Mpx/s  (%.2fx w2)  hash %016llx %016llx\n",
                    t * 1e3, rate / 1e6, w2rate > 0 ? rate / w2rate : 0.0,
                    (unsigned long long)h1, (unsigned long long)h2);
    }
    return 0;
}
