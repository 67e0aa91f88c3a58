#include "dae/mpi_communicator.hpp"

#include "dae/error.hpp"

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

void check_host_contiguous(const torch::Tensor& tensor) {
  DAE_CHECK(tensor.is_contiguous() && tensor.device().is_cpu(),
            "MpiCommunicator: tensors must be contiguous and on the CPU");
}

}  // namespace

void MpiCommunicator::broadcast(torch::Tensor& tensor, int root) {
  check_host_contiguous(tensor);
  DAE_CHECK_MPI(MPI_Bcast(tensor.data_ptr(), static_cast<int>(tensor.numel()),
                          mpi_type_of(tensor), root, comm_.get()));
}

void MpiCommunicator::all_reduce_sum(torch::Tensor& tensor) {
  check_host_contiguous(tensor);
  DAE_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, tensor.data_ptr(), static_cast<int>(tensor.numel()),
                              mpi_type_of(tensor), MPI_SUM, comm_.get()));
}

void MpiCommunicator::all_reduce_mean(torch::Tensor& tensor) {
  all_reduce_sum(tensor);
  if (size() > 1) tensor.mul_(1.0 / size());
}

void MpiCommunicator::barrier() { DAE_CHECK_MPI(MPI_Barrier(comm_.get())); }

}  // namespace dae
