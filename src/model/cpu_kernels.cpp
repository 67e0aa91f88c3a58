#include "dae/model/cpu_kernels.hpp"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "dae/core/error.hpp"

#if defined(__x86_64__) || defined(__i386__)
#define DAE_X86 1
#include <immintrin.h>
#else
#define DAE_X86 0
#endif

namespace dae::kernels {

namespace {

// im2col and col2im go through one sample at a time in a copy with a zero border of 2 pixels
// (H + 4 by W + 4), where the 5 taps of a kernel row are 5 * channels contiguous floats: no bounds
// checks, and a fixed-size copy when the channel count is a template argument.
float* padded_scratch(std::size_t floats) {
  thread_local std::vector<float> scratch;  // grows to the largest layer once, then is reused
  if (scratch.size() < floats) scratch.resize(floats);
  return scratch.data();
}

// One sample's place in the zero-bordered copy, and the per-sample strides of both grids.
struct PaddedSample {
  PaddedSample(int fine_height, int fine_width, int channels)
      : channels(channels),
        width(fine_width + 4),
        coarse_height(fine_height / 2),
        coarse_width(fine_width / 2),
        floats(static_cast<std::size_t>(fine_height + 4) * width * channels),
        line(static_cast<std::int64_t>(fine_width) * channels),
        fine_floats(line * fine_height),
        data(padded_scratch(floats)) {}
  // Where fine row y starts in the copy.
  float* row(int y) const {
    return data + ((y + 2) * static_cast<std::int64_t>(width) + 2) * channels;
  }

  int channels, width, coarse_height, coarse_width;
  std::size_t floats;
  std::int64_t line, fine_floats;
  float* data;
};

// What one variant provides: the public functions of cpu_kernels.hpp, compiled for its ISA.
struct KernelTable {
  decltype(&kernels::im2col) im2col;
  decltype(&kernels::col2im) col2im;
  decltype(&kernels::gemm) gemm;
  decltype(&kernels::add_bias_relu) add_bias_relu;
  decltype(&kernels::relu) relu;
  decltype(&kernels::relu_backward) relu_backward;
  decltype(&kernels::add_column_sums) add_column_sums;
};

}  // namespace

// The variants: the same source (cpu_kernels_isa.inc) three times, each in its namespace.
namespace generic {
namespace {
#define DAE_ISA_TARGET
#define DAE_ISA_SIMD 0
#include "cpu_kernels_isa.inc"
#undef DAE_ISA_SIMD
#undef DAE_ISA_TARGET
}  // namespace
}  // namespace generic

#if DAE_X86
// AVX-512F only (masked loads and stores, FMA on zmm): every AVX-512 CPU has it; the Skylake-X
// era "avx512bw/dq/vl" extensions are not needed by this code, so it is not asked for.
#define DAE_ISA_TARGET __attribute__((target("avx512f,avx2,fma")))
namespace avx512 {
namespace {
// 32 zmm registers: Rows x Vectors accumulators + Vectors of b + one broadcast of a.
struct Simd {
  using Vec = __m512;
  using Mask = __mmask16;
  static constexpr int kWidth = 16;
  template <int Vectors>
  static constexpr int max_rows() { return Vectors == 2 ? 12 : 24; }
  DAE_ISA_TARGET static Mask mask(int columns) {  // columns 1..16
    return static_cast<Mask>((1u << columns) - 1);
  }
  DAE_ISA_TARGET static Vec zero() { return _mm512_setzero_ps(); }
  DAE_ISA_TARGET static Vec load(const float* p) { return _mm512_loadu_ps(p); }
  DAE_ISA_TARGET static Vec load(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  DAE_ISA_TARGET static void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
  DAE_ISA_TARGET static void store(Mask m, float* p, Vec v) { _mm512_mask_storeu_ps(p, m, v); }
  DAE_ISA_TARGET static Vec broadcast(float x) { return _mm512_set1_ps(x); }
  DAE_ISA_TARGET static Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  DAE_ISA_TARGET static Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
};
#define DAE_ISA_SIMD 1
#include "cpu_kernels_isa.inc"
#undef DAE_ISA_SIMD
}  // namespace
}  // namespace avx512
#undef DAE_ISA_TARGET

#define DAE_ISA_TARGET __attribute__((target("avx2,fma")))
namespace avx2 {
namespace {
// 16 ymm registers: a 6 x 16 tile (12 accumulators + 2 of b + 1 broadcast), Haswell's classic
// shape, or 12 x 8 with one vector of b.
struct Simd {
  using Vec = __m256;
  using Mask = __m256i;
  static constexpr int kWidth = 8;
  template <int Vectors>
  static constexpr int max_rows() { return Vectors == 2 ? 6 : 12; }
  DAE_ISA_TARGET static Mask mask(int columns) {  // columns 1..8: lanes below `columns` set
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(columns), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  DAE_ISA_TARGET static Vec zero() { return _mm256_setzero_ps(); }
  DAE_ISA_TARGET static Vec load(const float* p) { return _mm256_loadu_ps(p); }
  DAE_ISA_TARGET static Vec load(Mask m, const float* p) { return _mm256_maskload_ps(p, m); }
  DAE_ISA_TARGET static void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
  DAE_ISA_TARGET static void store(Mask m, float* p, Vec v) { _mm256_maskstore_ps(p, m, v); }
  DAE_ISA_TARGET static Vec broadcast(float x) { return _mm256_set1_ps(x); }
  DAE_ISA_TARGET static Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
  DAE_ISA_TARGET static Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
};
#define DAE_ISA_SIMD 1
#include "cpu_kernels_isa.inc"
#undef DAE_ISA_SIMD
}  // namespace
}  // namespace avx2
#undef DAE_ISA_TARGET
#endif  // DAE_X86

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    case Isa::kGeneric: break;
  }
  return "generic";
}

Isa best_isa() {
#if DAE_X86
  // libgcc's (and compiler-rt's) CPU model also checks that the OS saves the wider registers.
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kGeneric;
}

Isa choose_isa(const char* requested, Isa best) {
  if (requested == nullptr || *requested == '\0') return best;
  const std::string name = requested;
  Isa wanted = Isa::kGeneric;
  if (name == "avx512")
    wanted = Isa::kAvx512;
  else if (name == "avx2")
    wanted = Isa::kAvx2;
  else if (name != "generic")
    throw Error("DAE_CPU_ISA=" + name + ": not one of avx512, avx2, generic");
  if (static_cast<int>(wanted) > static_cast<int>(best))
    throw Error("DAE_CPU_ISA=" + name + ": this CPU runs at most " + isa_name(best) +
                " (a lower one can be forced, never a higher one)");
  return wanted;
}

namespace {

// Chosen once, at the first call (FusedConvDaeStep's constructor asks for isa()); a refused
// DAE_CPU_ISA throws from there, and again from every later call.
Isa active_isa() {
  static const Isa isa = choose_isa(std::getenv("DAE_CPU_ISA"), best_isa());
  return isa;
}

const KernelTable& active() {
  static const KernelTable& table = [] () -> const KernelTable& {
    switch (active_isa()) {
#if DAE_X86
      case Isa::kAvx512: return avx512::kTable;
      case Isa::kAvx2: return avx2::kTable;
#endif
      default: return generic::kTable;
    }
  }();
  return table;
}

}  // namespace

Isa current_isa() { return active_isa(); }
const char* isa() { return isa_name(active_isa()); }

void im2col(const float* fine, int samples, int fine_height, int fine_width, int channels,
            float* rows, std::int64_t row_stride) {
  active().im2col(fine, samples, fine_height, fine_width, channels, rows, row_stride);
}

void col2im(const float* rows, int samples, int fine_height, int fine_width, int channels,
            std::int64_t row_stride, float* fine) {
  active().col2im(rows, samples, fine_height, fine_width, channels, row_stride, fine);
}

void gemm(std::int64_t rows, int cols, std::int64_t depth, const float* a, std::int64_t a_row_step,
          std::int64_t a_depth_step, const float* b, std::int64_t ldb, float* c, std::int64_t ldc,
          bool accumulate) {
  active().gemm(rows, cols, depth, a, a_row_step, a_depth_step, b, ldb, c, ldc, accumulate);
}

void add_bias_relu(float* x, std::int64_t rows, int channels, const float* bias) {
  active().add_bias_relu(x, rows, channels, bias);
}

void relu(float* x, std::int64_t count) { active().relu(x, count); }

void relu_backward(float* grad, const float* activation, std::int64_t count) {
  active().relu_backward(grad, activation, count);
}

void add_column_sums(const float* x, std::int64_t rows, int channels, float* sums) {
  active().add_column_sums(x, rows, channels, sums);
}

}  // namespace dae::kernels
