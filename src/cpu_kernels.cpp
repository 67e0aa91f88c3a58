#include "dae/cpu_kernels.hpp"

#include <algorithm>
#include <array>
#include <cstring>
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
        const float* in = padded + (static_cast<std::int64_t>(2 * oy + ky) * padded_side + 2 * ox) * channels;
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
        float* out = padded + (static_cast<std::int64_t>(2 * oy + ky) * padded_side + 2 * ox) * channels;
        const float* in = rows + ky * run;
        for (int i = 0; i < run; ++i) out[i] += in[i];
      }
}

}  // namespace

void im2col(const float* fine, int samples, int fine_side, int channels, float* rows,
            std::int64_t row_stride) {
  const int padded_side = fine_side + 4, coarse_side = fine_side / 2;
  const std::size_t padded_floats = static_cast<std::size_t>(padded_side) * padded_side * channels;
  float* padded = padded_scratch(padded_floats);
  const std::int64_t sample_floats = static_cast<std::int64_t>(fine_side) * fine_side * channels;
  const std::int64_t line = static_cast<std::int64_t>(fine_side) * channels;
  for (int s = 0; s < samples; ++s, fine += sample_floats) {
    std::fill(padded, padded + padded_floats, 0.0f);
    for (int y = 0; y < fine_side; ++y)
      std::copy(fine + y * line, fine + (y + 1) * line,
                padded + ((y + 2) * static_cast<std::int64_t>(padded_side) + 2) * channels);
    float* sample_rows = rows + static_cast<std::int64_t>(s) * coarse_side * coarse_side * row_stride;
    if (channels == 1)
      im2col_padded<1>(padded, padded_side, coarse_side, 1, sample_rows, row_stride);
    else if (channels == 16)
      im2col_padded<16>(padded, padded_side, coarse_side, 16, sample_rows, row_stride);
    else
      im2col_padded<0>(padded, padded_side, coarse_side, channels, sample_rows, row_stride);
    if (row_stride > kTaps * channels)
      for (int r = 0; r < coarse_side * coarse_side; ++r)
        std::fill(sample_rows + r * row_stride + kTaps * channels, sample_rows + (r + 1) * row_stride,
                  0.0f);
  }
}

void col2im(const float* rows, int samples, int fine_side, int channels, std::int64_t row_stride,
            float* fine) {
  const int padded_side = fine_side + 4, coarse_side = fine_side / 2;
  const std::size_t padded_floats = static_cast<std::size_t>(padded_side) * padded_side * channels;
  float* padded = padded_scratch(padded_floats);
  const std::int64_t sample_floats = static_cast<std::int64_t>(fine_side) * fine_side * channels;
  const std::int64_t line = static_cast<std::int64_t>(fine_side) * channels;
  for (int s = 0; s < samples; ++s, fine += sample_floats) {
    std::fill(padded, padded + padded_floats, 0.0f);
    const float* sample_rows =
        rows + static_cast<std::int64_t>(s) * coarse_side * coarse_side * row_stride;
    if (channels == 1)
      col2im_padded<1>(sample_rows, row_stride, padded_side, coarse_side, 1, padded);
    else if (channels == 16)
      col2im_padded<16>(sample_rows, row_stride, padded_side, coarse_side, 16, padded);
    else
      col2im_padded<0>(sample_rows, row_stride, padded_side, coarse_side, channels, padded);
    for (int y = 0; y < fine_side; ++y) {
      const float* in = padded + ((y + 2) * static_cast<std::int64_t>(padded_side) + 2) * channels;
      std::copy(in, in + line, fine + y * line);
    }
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
