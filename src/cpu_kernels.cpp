#include "dae/cpu_kernels.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace dae::kernels {

namespace {

// im2col and col2im go through one sample at a time in a copy with a zero border of 2 pixels
// (side F + 4), where the 5 taps of a kernel row are 5 * channels contiguous floats: no bounds
// checks, and a fixed-size copy when the channel count is a template argument.
float* padded_scratch(std::size_t floats) {
  thread_local std::vector<float> scratch;  // grows to the largest layer once, then is reused
  if (scratch.size() < floats) scratch.resize(floats);
  return scratch.data();
}

// Channels: the layer's channel count when known at compile time (1, 16), else 0.
template <int Channels>
void im2col_padded(const float* padded, int padded_side, int coarse_side, int runtime_channels,
                   float* rows, std::int64_t row_stride) {
  const int channels = Channels > 0 ? Channels : runtime_channels;
  const int run = 5 * channels;  // one kernel row's taps
  for (int oy = 0; oy < coarse_side; ++oy)
    for (int ox = 0; ox < coarse_side; ++ox, rows += row_stride)
      for (int ky = 0; ky < 5; ++ky) {
        const float* in =
            padded + (static_cast<std::int64_t>(2 * oy + ky) * padded_side + 2 * ox) * channels;
        float* out = rows + ky * run;
        // An explicit loop, not std::copy: with a fixed `run` it compiles to a few vector moves
        // where std::copy calls memmove for every 20 bytes.
#pragma GCC unroll 80
        for (int i = 0; i < run; ++i) out[i] = in[i];
      }
}

template <int Channels>
void col2im_padded(const float* rows, std::int64_t row_stride, int padded_side, int coarse_side,
                   int runtime_channels, float* padded) {
  const int channels = Channels > 0 ? Channels : runtime_channels;
  const int run = 5 * channels;
  for (int oy = 0; oy < coarse_side; ++oy)
    for (int ox = 0; ox < coarse_side; ++ox, rows += row_stride)
      for (int ky = 0; ky < 5; ++ky) {
        float* out =
            padded + (static_cast<std::int64_t>(2 * oy + ky) * padded_side + 2 * ox) * channels;
        const float* in = rows + ky * run;
        for (int i = 0; i < run; ++i) out[i] += in[i];
      }
}

// One sample's place in the zero-bordered copy, and the per-sample strides of both grids.
struct PaddedSample {
  PaddedSample(int fine_side, int channels)
      : channels(channels),
        side(fine_side + 4),
        coarse_side(fine_side / 2),
        floats(static_cast<std::size_t>(side) * side * channels),
        line(static_cast<std::int64_t>(fine_side) * channels),
        fine_floats(line * fine_side),
        data(padded_scratch(floats)) {}
  // Where fine row y starts in the copy.
  float* row(int y) const {
    return data + ((y + 2) * static_cast<std::int64_t>(side) + 2) * channels;
  }

  int channels, side, coarse_side;
  std::size_t floats;
  std::int64_t line, fine_floats;
  float* data;
};

// Calls run(known) with known = std::integral_constant<int, channels> for the seed network's
// channel counts (1, 16), else with 0 (the count only known at run time).
template <typename Run>
void with_channels(int channels, Run&& run) {
  if (channels == 1)
    run(std::integral_constant<int, 1>{});
  else if (channels == 16)
    run(std::integral_constant<int, 16>{});
  else
    run(std::integral_constant<int, 0>{});
}

}  // namespace

void im2col(const float* fine, int samples, int fine_side, int channels, float* rows,
            std::int64_t row_stride) {
  const PaddedSample padded(fine_side, channels);
  const std::int64_t rows_per_sample =
      static_cast<std::int64_t>(padded.coarse_side) * padded.coarse_side;
  for (int s = 0; s < samples; ++s, fine += padded.fine_floats) {
    std::fill(padded.data, padded.data + padded.floats, 0.0f);
    for (int y = 0; y < fine_side; ++y)
      std::copy(fine + y * padded.line, fine + (y + 1) * padded.line, padded.row(y));
    float* sample_rows = rows + s * rows_per_sample * row_stride;
    with_channels(channels, [&](auto known) {
      im2col_padded<decltype(known)::value>(padded.data, padded.side, padded.coarse_side, channels,
                                            sample_rows, row_stride);
    });
    if (row_stride > kTaps * channels)
      for (std::int64_t r = 0; r < rows_per_sample; ++r)
        std::fill(sample_rows + r * row_stride + kTaps * channels,
                  sample_rows + (r + 1) * row_stride, 0.0f);
  }
}

void col2im(const float* rows, int samples, int fine_side, int channels, std::int64_t row_stride,
            float* fine) {
  const PaddedSample padded(fine_side, channels);
  const std::int64_t rows_per_sample =
      static_cast<std::int64_t>(padded.coarse_side) * padded.coarse_side;
  for (int s = 0; s < samples; ++s, fine += padded.fine_floats) {
    std::fill(padded.data, padded.data + padded.floats, 0.0f);
    with_channels(channels, [&](auto known) {
      col2im_padded<decltype(known)::value>(rows + s * rows_per_sample * row_stride, row_stride,
                                            padded.side, padded.coarse_side, channels,
                                            padded.data);
    });
    for (int y = 0; y < fine_side; ++y)
      std::copy(padded.row(y), padded.row(y) + padded.line, fine + y * padded.line);
  }
}

void add_bias_relu(float* x, std::int64_t rows, int channels, const float* bias) {
  for (std::int64_t r = 0; r < rows; ++r, x += channels)
    for (int c = 0; c < channels; ++c) x[c] = std::max(0.0f, x[c] + bias[c]);
}

void relu(float* x, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) x[i] = std::max(0.0f, x[i]);
}

void relu_backward(float* grad, const float* activation, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) grad[i] = activation[i] > 0.0f ? grad[i] : 0.0f;
}

void column_sums(const float* x, std::int64_t rows, int channels, float* sums) {
  std::fill(sums, sums + channels, 0.0f);
  for (std::int64_t r = 0; r < rows; ++r, x += channels)
    for (int c = 0; c < channels; ++c) sums[c] += x[c];
}

#if defined(__AVX512F__)

const char* isa() { return "avx512"; }

namespace {

// One tile of c: `Rows` rows by `Vectors` x 16 columns, kept in registers over the whole depth;
// the last vector's columns are cut to `last_mask`. Each step of k loads `Vectors` vectors of b
// and broadcasts `Rows` scalars of a: Rows x Vectors FMAs.
template <int Rows, int Vectors>
void tile(std::int64_t depth, const float* a, std::int64_t a_row_step, std::int64_t a_depth_step,
          const float* b, std::int64_t ldb, float* c, std::int64_t ldc, __mmask16 last_mask,
          bool accumulate) {
  // Fully unrolled loops over fixed-size arrays keep every accumulator in a register (a
  // conditional start value or a helper lambda makes GCC spill them to the stack).
  __m512 sum[Rows][Vectors];
#pragma GCC unroll 32
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < Vectors; ++v) sum[r][v] = _mm512_setzero_ps();
  for (std::int64_t k = 0; k < depth; ++k) {
    const float* a_k = a + k * a_depth_step;
    const float* b_k = b + k * ldb;
    __m512 b_vec[Vectors];
#pragma GCC unroll 2
    for (int v = 0; v < Vectors; ++v)
      b_vec[v] = v == Vectors - 1 ? _mm512_maskz_loadu_ps(last_mask, b_k + 16 * v)
                                  : _mm512_loadu_ps(b_k + 16 * v);
#pragma GCC unroll 32
    for (int r = 0; r < Rows; ++r) {
      const __m512 a_vec = _mm512_set1_ps(a_k[r * a_row_step]);
#pragma GCC unroll 2
      for (int v = 0; v < Vectors; ++v) sum[r][v] = _mm512_fmadd_ps(a_vec, b_vec[v], sum[r][v]);
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < Vectors; ++v) {
      const __mmask16 mask = v == Vectors - 1 ? last_mask : static_cast<__mmask16>(0xFFFF);
      float* out = c + r * ldc + 16 * v;
      const __m512 total =
          accumulate ? _mm512_add_ps(sum[r][v], _mm512_maskz_loadu_ps(mask, out)) : sum[r][v];
      _mm512_mask_storeu_ps(out, mask, total);
    }
}

using TileFn = void (*)(std::int64_t, const float*, std::int64_t, std::int64_t, const float*,
                        std::int64_t, float*, std::int64_t, __mmask16, bool);

// Register budget (32 zmm): Rows x Vectors accumulators + Vectors of b + one broadcast.
template <int Vectors>
constexpr int kMaxRows = Vectors == 2 ? 12 : 24;

template <int Vectors, std::size_t... Index>
constexpr std::array<TileFn, sizeof...(Index)> tile_table(std::index_sequence<Index...>) {
  return {&tile<static_cast<int>(Index) + 1, Vectors>...};
}

template <int Vectors>
void tiles_over_rows(std::int64_t rows, std::int64_t depth, const float* a, std::int64_t a_row_step,
                     std::int64_t a_depth_step, const float* b, std::int64_t ldb, float* c,
                     std::int64_t ldc, __mmask16 last_mask, bool accumulate) {
  static constexpr auto kTiles = tile_table<Vectors>(std::make_index_sequence<kMaxRows<Vectors>>{});
  // Equal tiles: 25 rows run as 13 + 12, not 24 + 1 (a tile streams all of b whatever its rows).
  const std::int64_t tile_count = (rows + kMaxRows<Vectors> - 1) / kMaxRows<Vectors>;
  std::int64_t m = 0;
  for (std::int64_t t = 0; t < tile_count; ++t) {
    const std::int64_t height = (rows - m) / (tile_count - t);
    kTiles[static_cast<std::size_t>(height - 1)](depth, a + m * a_row_step, a_row_step,
                                                  a_depth_step, b, ldb, c + m * ldc, ldc,
                                                  last_mask, accumulate);
    m += height;
  }
}

}  // namespace

void gemm(std::int64_t rows, int cols, std::int64_t depth, const float* a, std::int64_t a_row_step,
          std::int64_t a_depth_step, const float* b, std::int64_t ldb, float* c, std::int64_t ldc,
          bool accumulate) {
  for (int n = 0; n < cols; n += 32) {
    const int width = std::min(32, cols - n);
    if (width > 16) {
      const auto mask = static_cast<__mmask16>((1u << (width - 16)) - 1);
      tiles_over_rows<2>(rows, depth, a, a_row_step, a_depth_step, b + n, ldb, c + n, ldc, mask,
                         accumulate);
    } else {
      const auto mask = static_cast<__mmask16>((1u << width) - 1);
      tiles_over_rows<1>(rows, depth, a, a_row_step, a_depth_step, b + n, ldb, c + n, ldc, mask,
                         accumulate);
    }
  }
}

#else  // no AVX-512: plain loops the compiler vectorises for whatever the target has

const char* isa() { return "portable"; }

void gemm(std::int64_t rows, int cols, std::int64_t depth, const float* a, std::int64_t a_row_step,
          std::int64_t a_depth_step, const float* b, std::int64_t ldb, float* c, std::int64_t ldc,
          bool accumulate) {
  for (std::int64_t m = 0; m < rows; ++m) {
    float* c_row = c + m * ldc;
    if (!accumulate) std::fill(c_row, c_row + cols, 0.0f);
    for (std::int64_t k = 0; k < depth; ++k) {
      const float a_value = a[m * a_row_step + k * a_depth_step];
      const float* b_row = b + k * ldb;
      for (int n = 0; n < cols; ++n) c_row[n] += a_value * b_row[n];
    }
  }
}

#endif

}  // namespace dae::kernels
