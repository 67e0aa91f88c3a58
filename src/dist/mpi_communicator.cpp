#include "dae/dist/mpi_communicator.hpp"

#include "dae/core/error.hpp"

namespace dae {

namespace {

MPI_Datatype mpi_type_of(const torch::Tensor& tensor) {
  switch (tensor.scalar_type()) {
    case torch::kFloat32: return MPI_FLOAT;
    case torch::kFloat64: return MPI_DOUBLE;
    case torch::kInt64: return MPI_INT64_T;
    case torch::kUInt8: return MPI_UINT8_T;
    default: throw Error("MpiCommunicator: unsupported tensor type " +
                         std::string(c10::toString(tensor.scalar_type())));
  }
}

// MPI works on host memory: a GPU tensor is staged through a host copy and copied back (for
// nodes where NCCL cannot be used, e.g. several ranks sharing one GPU).
template <typename Operation>
void on_host(torch::Tensor& tensor, Operation operation) {
  DAE_CHECK(tensor.is_contiguous(), "MpiCommunicator: tensors must be contiguous");
  if (tensor.device().is_cpu()) {
    operation(tensor);
    return;
  }
  torch::Tensor host = tensor.to(torch::kCPU);
  operation(host);
  tensor.copy_(host);
}

}  // namespace

void MpiCommunicator::broadcast(torch::Tensor& tensor, int root) {
  on_host(tensor, [&](torch::Tensor& host) {
    mpi().broadcast(host.data_ptr(), static_cast<int>(host.numel()), mpi_type_of(host), root,
                    "a broadcast");
  });
}

void MpiCommunicator::all_reduce_sum(torch::Tensor& tensor) {
  on_host(tensor, [&](torch::Tensor& host) {
    mpi().all_reduce(host.data_ptr(), static_cast<int>(host.numel()), mpi_type_of(host), MPI_SUM,
                     "an all-reduce");
  });
}

void MpiCommunicator::all_gather(const torch::Tensor& mine, torch::Tensor& all) {
  DAE_CHECK(mine.is_contiguous() && all.numel() == mine.numel() * size() &&
                all.scalar_type() == mine.scalar_type(),
            "MpiCommunicator: all_gather needs a contiguous tensor and one of size() times its "
            "elements and of its type");
  const torch::Tensor send = mine.device().is_cpu() ? mine : mine.to(torch::kCPU);
  on_host(all, [&](torch::Tensor& host) {
    mpi().all_gather(send.data_ptr(), static_cast<int>(send.numel()), mpi_type_of(send),
                     host.data_ptr(), "an all-gather");
  });
}

void MpiCommunicator::all_reduce_mean(torch::Tensor& tensor) {
  all_reduce_sum(tensor);
  if (size() > 1) tensor.mul_(1.0 / size());
}

}  // namespace dae
