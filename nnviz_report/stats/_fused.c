/* Fused reductions for the capture: what stats/moments.py and stats/layout.py compute with about
 * ten torch passes per activation (extremes, sum, squared deviations, exact zeros, the zero-aligned
 * power-of-two histogram, per-(sample, channel) means, per-channel maxima) in one pass over a
 * contiguous float32 buffer, and a gradient's sum of squares and largest magnitude in another.
 *
 * Plain C over caller-owned buffers, no Python API: nnviz_report/stats/fused.py loads it with
 * ctypes, checks every input, and keeps the torch path for everything this does not take (other
 * dtypes and devices, non-contiguous tensors, batches with NaN or ±inf, which show up here as a
 * non-finite sum and are then redone by torch). Single-threaded; every sum runs in a fixed order
 * over a fixed number of lanes, so the result does not depend on the machine's vector width. */

#include <stdint.h>

/* Independent accumulators per quantity: the compiler turns each lane loop into vector
 * instructions without reassociating floating-point sums (no -ffast-math). */
#define LANES 16
/* Sums restart every CHUNK values (a blocked summation: error ~ (CHUNK/LANES + n/CHUNK) ulp of
 * double instead of n), and the histogram's bin indices are staged per chunk. */
#define CHUNK 4096
/* Histogram window, out-of-window slots included; fused.py never asks for more. */
#define MAX_SLOTS 258
#define COPIES 8 /* sub-histograms, so that runs of one bin (a ReLU's zeros) do not serialise */

#if defined(__GNUC__) && defined(__x86_64__) && defined(__gnu_linux__) && defined(__has_attribute)
#if __has_attribute(target_clones)
/* One build for every x86-64 machine: the loader picks the AVX2 copy where the CPU has it. */
#define MULTIVERSION __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef MULTIVERSION
#define MULTIVERSION
#endif

/* fused.py refuses a library whose version differs from its KERNEL_VERSION: bump both when an
 * argument or an output changes, so that a stale build is never called with the new layout. */
int nnviz_fused_version(void) { return 1; }

/* Bin indices of p[0 .. n) (n <= CHUNK) into the window's slots, then the counts. */
static inline __attribute__((always_inline)) void count_bins(const float *p, int64_t n, float scale, int32_t below,
                                                             float low_edge, float high_edge, int32_t *index,
                                                             uint32_t copies[COPIES][MAX_SLOTS]) {
    for (int64_t i = 0; i < n; i++) {
        const float v = p[i];
        float f = v * scale; /* exact: a power of two (at worst rounding to a subnormal or ±0.0) */
        /* A negative value belongs in bin -1 or below even where f rounded to -0.0; -0.5 floors
         * to -1 like every f in (-1, 0). */
        f = v < 0.0f ? (f < -0.5f ? f : -0.5f) : f;
        /* Clamped into [below, above] first (NaN goes to the low edge), so the conversion is
         * always defined and out-of-window values land in the two outer slots. */
        f = f > low_edge ? f : low_edge;
        f = f < high_edge ? f : high_edge;
        int32_t bin = (int32_t)f;
        bin -= (float)bin > f; /* truncation → floor for negative values */
        index[i] = bin - below;
    }
    int64_t i = 0;
    for (; i + COPIES <= n; i += COPIES)
        for (int c = 0; c < COPIES; c++) copies[c][index[i + c]]++;
    for (; i < n; i++) copies[0][index[i]]++;
}

/* One activation batch, viewed as `rows` contiguous rows of `row_len` values (rows = N·C for an
 * (N, C, H·W) feature map, else 1).
 *
 * out[0] min, out[1] max, out[2] sum, out[3] sum of (x - shift)², out[4] exact zeros (±0.0).
 * NaN or ±inf anywhere makes out[2] non-finite; the other outputs are then meaningless.
 *
 * Histogram (when bins > 0): value x goes to bin floor(x·scale), scale a power of two; bins
 * start .. start+bins-1 are counted in counts[1 .. bins], those below in counts[0] and those above
 * in counts[bins + 1]. Negative values never land in bin 0 (a tiny negative times a small scale
 * can round to -0.0), as in moments.py. The caller guarantees that every bin edge in the window
 * is an integer float32 holds exactly (|start|, |start + bins| < 2**24) and bins + 2 <= MAX_SLOTS.
 *
 * row_means (rows values, may be NULL): each row's mean, from its double sum.
 * channel_max (channels values, may be NULL): the maximum of rows r with r % channels == c. */
MULTIVERSION
void nnviz_activation_pass(const float *x, int64_t rows, int64_t row_len, int64_t channels, double shift,
                           float scale, int64_t start, int64_t bins, int64_t *counts, float *row_means,
                           float *channel_max, double *out) {
    uint32_t copies[COPIES][MAX_SLOTS];
    int32_t index[CHUNK];
    const int64_t slots = bins > 0 ? bins + 2 : 0;
    const int32_t below = (int32_t)(start - 1);
    const float low_edge = (float)(start - 1), high_edge = (float)(start + bins);
    double total = 0.0, squares = 0.0;
    int64_t zeros = 0;
    float lo = x[0], hi = x[0];
    const float *pending = x; /* start of the values not yet counted in the histogram */

    for (int c = 0; c < COPIES; c++)
        for (int64_t s = 0; s < slots; s++) copies[c][s] = 0;
    if (channel_max != 0)
        for (int64_t c = 0; c < channels; c++) channel_max[c] = x[c * row_len];

    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * row_len;
        double row_sum = 0.0;
        float row_max = row[0];
        for (int64_t offset = 0; offset < row_len; offset += CHUNK) {
            const float *p = row + offset;
            const int64_t n = row_len - offset < CHUNK ? row_len - offset : CHUNK;
            const int64_t whole = n - n % LANES;
            float lane_lo[LANES], lane_hi[LANES];
            double lane_sum[LANES], lane_squares[LANES];
            int32_t lane_zeros[LANES];
            for (int k = 0; k < LANES; k++) {
                lane_lo[k] = p[0];
                lane_hi[k] = p[0];
                lane_sum[k] = 0.0;
                lane_squares[k] = 0.0;
                lane_zeros[k] = 0;
            }
            for (int64_t i = 0; i < whole; i += LANES) {
                for (int k = 0; k < LANES; k++) {
                    const float v = p[i + k];
                    const double d = (double)v - shift;
                    lane_lo[k] = v < lane_lo[k] ? v : lane_lo[k];
                    lane_hi[k] = v > lane_hi[k] ? v : lane_hi[k];
                    lane_sum[k] += (double)v;
                    lane_squares[k] += d * d;
                    lane_zeros[k] += v == 0.0f;
                }
            }
            for (int64_t i = whole; i < n; i++) {
                const float v = p[i];
                const double d = (double)v - shift;
                lane_lo[0] = v < lane_lo[0] ? v : lane_lo[0];
                lane_hi[0] = v > lane_hi[0] ? v : lane_hi[0];
                lane_sum[0] += (double)v;
                lane_squares[0] += d * d;
                lane_zeros[0] += v == 0.0f;
            }
            double chunk_sum = 0.0, chunk_squares = 0.0;
            for (int k = 0; k < LANES; k++) {
                lo = lane_lo[k] < lo ? lane_lo[k] : lo;
                hi = lane_hi[k] > hi ? lane_hi[k] : hi;
                row_max = lane_hi[k] > row_max ? lane_hi[k] : row_max;
                chunk_sum += lane_sum[k];
                chunk_squares += lane_squares[k];
                zeros += lane_zeros[k];
            }
            row_sum += chunk_sum;
            squares += chunk_squares;
            /* The histogram runs over spans of whole rows (short rows would leave it mostly
             * loop overhead), at most CHUNK values at a time. */
            if (slots > 0 && p + n - pending > CHUNK) {
                count_bins(pending, p - pending, scale, below, low_edge, high_edge, index, copies);
                pending = p;
            }
        }
        total += row_sum;
        if (row_means != 0) row_means[r] = (float)(row_sum / (double)row_len);
        if (channel_max != 0) {
            float *slot = channel_max + r % channels;
            *slot = row_max > *slot ? row_max : *slot;
        }
    }
    if (slots > 0) count_bins(pending, x + rows * row_len - pending, scale, below, low_edge, high_edge, index, copies);
    for (int64_t s = 0; s < slots; s++) {
        int64_t sum = 0;
        for (int c = 0; c < COPIES; c++) sum += copies[c][s];
        counts[s] = sum;
    }
    out[0] = lo;
    out[1] = hi;
    out[2] = total;
    out[3] = squares;
    out[4] = (double)zeros;
}

/* A gradient: out[0] sum of squares, out[1] largest magnitude. A NaN or ±inf makes out[0]
 * non-finite (a finite float32's square never overflows double). */
MULTIVERSION
void nnviz_gradient_pass(const float *x, int64_t n, double *out) {
    double squares = 0.0;
    float lo = x[0], hi = x[0];
    for (int64_t offset = 0; offset < n; offset += CHUNK) {
        const float *p = x + offset;
        const int64_t m = n - offset < CHUNK ? n - offset : CHUNK;
        const int64_t whole = m - m % LANES;
        double lane_squares[LANES];
        float lane_lo[LANES], lane_hi[LANES];
        for (int k = 0; k < LANES; k++) {
            lane_squares[k] = 0.0;
            lane_lo[k] = p[0];
            lane_hi[k] = p[0];
        }
        for (int64_t i = 0; i < whole; i += LANES) {
#pragma GCC unroll 1
            for (int k = 0; k < LANES; k++) {
                const float v = p[i + k];
                lane_squares[k] += (double)v * (double)v;
                lane_lo[k] = v < lane_lo[k] ? v : lane_lo[k];
                lane_hi[k] = v > lane_hi[k] ? v : lane_hi[k];
            }
        }
        for (int64_t i = whole; i < m; i++) {
            const float v = p[i];
            lane_squares[0] += (double)v * (double)v;
            lane_lo[0] = v < lane_lo[0] ? v : lane_lo[0];
            lane_hi[0] = v > lane_hi[0] ? v : lane_hi[0];
        }
        double chunk_squares = 0.0;
        for (int k = 0; k < LANES; k++) {
            chunk_squares += lane_squares[k];
            lo = lane_lo[k] < lo ? lane_lo[k] : lo;
            hi = lane_hi[k] > hi ? lane_hi[k] : hi;
        }
        squares += chunk_squares;
    }
    out[0] = squares;
    out[1] = -lo > hi ? -lo : hi;
}
