// Part of the CUDA plugin libdae_cuda.so (cuda_support.hpp), loaded only where GPUs may be used.
#include "dae/nccl_communicator.hpp"

#include "dae/cuda_support.hpp"
#include "dae/error.hpp"

#ifdef DAE_WITH_NCCL
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <nccl.h>

namespace dae {

namespace {

void check_nccl(ncclResult_t result, const char* call, int rank) {
  if (result != ncclSuccess)
    throw Error(std::string("NCCL: ") + call + " failed on rank " + std::to_string(rank) + ": " +
                ncclGetErrorString(result));
}

ncclDataType_t nccl_type_of(const torch::Tensor& tensor) {
  switch (tensor.scalar_type()) {
    case torch::kFloat32: return ncclFloat32;
    case torch::kFloat64: return ncclFloat64;
    case torch::kInt64: return ncclInt64;
    case torch::kUInt8: return ncclUint8;
    case torch::kBFloat16: return ncclBfloat16;
    default:
      throw Error("NcclCommunicator: unsupported tensor type " +
                  std::string(c10::toString(tensor.scalar_type())));
  }
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const MpiComm& mpi, torch::Device device) : mpi_(mpi), device_(device) {
    ncclUniqueId id{};
    if (mpi.rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId", 0);
    DAE_CHECK_MPI(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, mpi.get()));
    const c10::cuda::CUDAGuard guard(device_);
    check_nccl(ncclCommInitRank(&comm_, mpi.size(), id, mpi.rank()), "ncclCommInitRank",
               mpi.rank());
  }

  // Destroyed exactly once; after a failed collective the communicator may hold work that will
  // never complete, so it is aborted rather than destroyed.
  ~NcclCommunicator() override {
    if (comm_ == nullptr) return;
    if (failed_)
      ncclCommAbort(comm_);
    else
      ncclCommDestroy(comm_);
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return mpi_.rank(); }
  int size() const override { return mpi_.size(); }
  int local_rank() const override { return mpi_.local_rank(); }
  const char* name() const override { return "nccl"; }

  void broadcast(torch::Tensor& tensor, int root) override {
    check_device(tensor);
    run(ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), static_cast<size_t>(tensor.numel()),
                      nccl_type_of(tensor), root, comm_, stream()),
        "ncclBroadcast");
  }
  void all_reduce_mean(torch::Tensor& tensor) override { all_reduce(tensor, ncclAvg); }
  void all_reduce_sum(torch::Tensor& tensor) override { all_reduce(tensor, ncclSum); }
  void barrier() override {
    c10::cuda::getCurrentCUDAStream(device_.index()).synchronize();
    DAE_CHECK_MPI(MPI_Barrier(mpi_.get()));
  }

 private:
  cudaStream_t stream() const { return c10::cuda::getCurrentCUDAStream(device_.index()).stream(); }
  void check_device(const torch::Tensor& tensor) const {
    DAE_CHECK(tensor.device() == device_ && tensor.is_contiguous(),
              "NcclCommunicator: tensors must be contiguous and on " + device_.str());
  }
  void all_reduce(torch::Tensor& tensor, ncclRedOp_t op) {
    check_device(tensor);
    run(ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), static_cast<size_t>(tensor.numel()),
                      nccl_type_of(tensor), op, comm_, stream()),
        "ncclAllReduce");
  }
  void run(ncclResult_t result, const char* call) {
    if (result != ncclSuccess) failed_ = true;
    check_nccl(result, call, mpi_.rank());
  }

  const MpiComm& mpi_;
  torch::Device device_;
  ncclComm_t comm_ = nullptr;
  bool failed_ = false;
};

std::unique_ptr<Communicator> make_nccl(const MpiComm& mpi, torch::Device device) {
  DAE_CHECK(device.is_cuda(), "backend: nccl needs a CUDA device");
  return std::make_unique<NcclCommunicator>(mpi, device);
}

// Runs when the plugin is loaded: from then on make_nccl_communicator builds NcclCommunicators.
[[maybe_unused]] const bool registered = (register_nccl_factory(&make_nccl), true);

}  // namespace

}  // namespace dae

#endif  // DAE_WITH_NCCL
