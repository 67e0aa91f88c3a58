#include "dae/dist/ordered_sum.hpp"

#include "dae/core/error.hpp"

namespace dae {

OrderedSum::OrderedSum(Communicator& comm, std::int64_t rows_per_rank, std::int64_t row_size,
                       torch::TensorOptions options)
    : comm_(comm), mine_(torch::zeros({rows_per_rank, row_size}, options)) {
  DAE_CHECK(rows_per_rank > 0 && row_size > 0, "OrderedSum: needs at least one row and column");
  gathered_ =
      comm.size() == 1 ? mine_ : torch::zeros({rows_per_rank * comm.size(), row_size}, options);
}

void OrderedSum::sum(torch::Tensor& out) {
  DAE_CHECK(out.numel() == mine_.size(1), "OrderedSum: the output needs one row's elements");
  if (comm_.size() > 1) comm_.all_gather(mine_, gathered_);
  // Element-wise adds, one row after the other: no reduction tree, no reassociation, the same
  // on the CPU and on a GPU (a sum() over dimension 0 would pick its own order).
  out.copy_(gathered_[0]);
  for (std::int64_t row = 1; row < gathered_.size(0); ++row) out.add_(gathered_[row]);
}

}  // namespace dae
