// defines: dae::kernels::im2col, col2im, gemm, the element-wise ReLU/bias helpers — the CPU
//          building blocks of the seed network's 5x5, stride-2, 'SAME' layers (NHWC) — and
//          dae::kernels::Isa, isa, best_isa, choose_isa (which compiled variant runs them)
#pragma once

#include <cstdint>

// Every layer of the seed network has the same geometry: a 5x5 kernel at stride 2 with padding 2
// between a fine grid of H x W and a coarse grid of H/2 x W/2 (28x28 and 14x14 in training; any
// even sides in inference, model/inference.hpp). A convolution reads the fine grid
// and writes the coarse one; its transpose (output_padding 1) goes back. In NHWC, both become one
// matrix product with a gather (im2col) or a scatter-add (col2im) next to it:
//   conv:            coarse = im2col(fine) @ P                     P = [25*Cin, Cout]
//   transposed conv: fine   = col2im(coarse @ Q)                   Q = [Cin, 25*Cout]
// and the backward passes use the same three functions (see fused_conv_dae.cpp).
// The functions take raw pointers so that cpu_kernels.cpp builds without LibTorch's headers.
// It holds three variants of all of them, one binary for every x86-64 CPU: AVX-512 and AVX2+FMA
// (a register-blocked FMA microkernel for gemm) and generic (baseline x86-64 or any other CPU:
// plain loops). The best one the CPU has is chosen once, at the first call; the environment
// variable DAE_CPU_ISA=avx2|generic forces a lower one (tests and benchmarks run each variant on
// one machine), and a higher one than the CPU has is refused with a dae::Error.
namespace dae::kernels {

inline constexpr int kTaps = 25;  // 5x5

// For `samples` images fine[s][y][x][c] of `fine_height` x `fine_width` (both even), writes
// rows[(s * coarse_height + oy) * coarse_width + ox][tap * channels + c] =
//     fine[s][2oy-2+ky][2ox-2+kx][c]
// (0 outside the image), tap = 5ky + kx, coarse = fine / 2 on each side; `row_stride` >= 25*channels.
void im2col(const float* fine, int samples, int fine_height, int fine_width, int channels,
            float* rows, std::int64_t row_stride);

// The adjoint of im2col: fine (overwritten) = the sum of every rows entry im2col would have read
// from that pixel.
void col2im(const float* rows, int samples, int fine_height, int fine_width, int channels,
            std::int64_t row_stride, float* fine);

// c[m][n] = (accumulate ? c[m][n] : 0) + sum_k a(m, k) * b[k][n]   for m < rows, n < cols, k < depth
// where a(m, k) = a[m * a_row_step + k * a_depth_step] (so a row-major matrix and a transposed one
// are both one call), b is row-major with stride ldb, c with stride ldc. Each c[m][n] is one
// chain of multiply-adds over k in order, started from c[m][n] when accumulating: a depth split
// into consecutive calls (the later ones accumulating) gives the same bits as one call.
void gemm(std::int64_t rows, int cols, std::int64_t depth, const float* a, std::int64_t a_row_step,
          std::int64_t a_depth_step, const float* b, std::int64_t ldb, float* c, std::int64_t ldc,
          bool accumulate);

// x[r][c] = max(0, x[r][c] + bias[c]) for r < rows, c < channels.
void add_bias_relu(float* x, std::int64_t rows, int channels, const float* bias);
// x = max(0, x).
void relu(float* x, std::int64_t count);
// grad[i] = 0 where activation[i] <= 0 (activation: a ReLU's output).
void relu_backward(float* grad, const float* activation, std::int64_t count);
// sums[c] += x[r][c] for r = 0, 1, ... in order (so consecutive calls over the rows in pieces
// give the bits of one call).
void add_column_sums(const float* x, std::int64_t rows, int channels, float* sums);

// Kernel variants, in increasing order of what they need from the CPU.
enum class Isa { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

const char* isa_name(Isa isa);  // "generic", "avx2", "avx512"
// The best variant this CPU (and its OS) can run.
Isa best_isa();
// The variant to run on a CPU whose best is `best`, given DAE_CPU_ISA's value `requested` (null or
// empty: `best`). Throws dae::Error (one line) for an unknown name or one above `best`.
Isa choose_isa(const char* requested, Isa best);
// The variant the functions above run (chosen at the first call; throws as choose_isa does).
Isa current_isa();
const char* isa();  // isa_name(current_isa())

}  // namespace dae::kernels
