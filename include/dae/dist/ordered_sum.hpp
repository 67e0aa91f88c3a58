// defines: dae::OrderedSum (a sum over every rank's contributions whose float result does not
//          depend on the world size or on the backend's reduction algorithm)
#pragma once

#include <torch/torch.h>

#include "dae/dist/communicator.hpp"

namespace dae {

// A float all-reduce adds in an order that depends on the world size and on the MPI or NCCL
// algorithm, so its last bits do too. Here every rank contributes the same number k of rows
// [k, n], rank r's being rows r k ... r k + k - 1 of all K = k W; they are all-gathered (bytes
// only) and every rank adds the K rows one at a time in that global order: the same bits on
// every rank and at every W, the sum one rank alone would compute. README ("World-size invariant
// training") measures what the K-fold traffic costs against one all-reduce.
class OrderedSum {
 public:
  OrderedSum(Communicator& comm, std::int64_t rows_per_rank, std::int64_t row_size,
             torch::TensorOptions options);

  // This rank's contributions [rows_per_rank, row_size]: fill them, then call sum().
  torch::Tensor& mine() { return mine_; }
  // Collective. Writes rows 0 + 1 + ... + K-1 into `out` [row_size] on every rank.
  void sum(torch::Tensor& out);

 private:
  Communicator& comm_;
  torch::Tensor mine_;      // [k, n]
  torch::Tensor gathered_;  // [K, n]; with one rank, mine_ itself
};

}  // namespace dae
