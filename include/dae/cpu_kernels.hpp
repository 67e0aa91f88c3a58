// defines: dae::kernels::im2col, col2im, gemm, the element-wise ReLU/bias helpers, isa —
//          the CPU building blocks of the seed network's 5x5, stride-2, 'SAME' layers (NHWC)
#pragma once

#include <cstdint>

// Every layer of the seed network has the same geometry: a 5x5 kernel at stride 2 with padding 2
// between a fine grid of side F and a coarse grid of side F/2. A convolution reads the fine grid
// and writes the coarse one; its transpose (output_padding 1) goes back. In NHWC, both become one
// matrix product with a gather (im2col) or a scatter-add (col2im) next to it:
//   conv:            coarse = im2col(fine) @ P                     P = [25*Cin, Cout]
//   transposed conv: fine   = col2im(coarse @ Q)                   Q = [Cin, 25*Cout]
// and the backward passes use the same three functions (see fused_conv_dae.cpp).
// The functions take raw pointers so that this file builds without LibTorch's headers, with the
// machine's own instruction set (CMake option DAE_NATIVE_KERNELS).
namespace dae::kernels {

inline constexpr int kTaps = 25;  // 5x5

// For `samples` images fine[s][y][x][c] of side `fine_side`, writes
// rows[(s * coarse_side + oy) * coarse_side + ox][tap * channels + c] = fine[s][2oy-2+ky][2ox-2+kx][c]
// (0 outside the image), tap = 5ky + kx, coarse_side = fine_side / 2; `row_stride` >= 25*channels.
void im2col(const float* fine, int samples, int fine_side, int channels, float* rows,
            std::int64_t row_stride);

// The adjoint of im2col: fine (overwritten) = the sum of every rows entry im2col would have read
// from that pixel.
void col2im(const float* rows, int samples, int fine_side, int channels, std::int64_t row_stride,
            float* fine);

// c[m][n] = (accumulate ? c[m][n] : 0) + sum_k a(m, k) * b[k][n]   for m < rows, n < cols, k < depth
// where a(m, k) = a[m * a_row_step + k * a_depth_step] (so a row-major matrix and a transposed one
// are both one call), b is row-major with stride ldb, c with stride ldc.
void gemm(std::int64_t rows, int cols, std::int64_t depth, const float* a, std::int64_t a_row_step,
          std::int64_t a_depth_step, const float* b, std::int64_t ldb, float* c, std::int64_t ldc,
          bool accumulate);

// x[r][c] = max(0, x[r][c] + bias[c]) for r < rows, c < channels.
void add_bias_relu(float* x, std::int64_t rows, int channels, const float* bias);
// x = max(0, x).
void relu(float* x, std::int64_t count);
// grad[i] = 0 where activation[i] <= 0 (activation: a ReLU's output).
void relu_backward(float* grad, const float* activation, std::int64_t count);
// sums[c] = sum over r of x[r][c].
void column_sums(const float* x, std::int64_t rows, int channels, float* sums);

// The instruction set gemm was built for: "avx512" (register-blocked FMA microkernel) or "portable".
const char* isa();

}  // namespace dae::kernels
