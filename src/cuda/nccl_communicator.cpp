// Part of the CUDA plugin libdae_cuda.so (dist/cuda_plugin.hpp), loaded only where GPUs may be used.
#include "dae/dist/nccl_communicator.hpp"

#include "dae/dist/cuda_plugin.hpp"
#include "dae/core/error.hpp"

#ifdef DAE_WITH_NCCL
#include <c10/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <nccl.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>

#include "dae/dist/teardown.hpp"

namespace dae {

namespace {

void check_nccl(ncclResult_t result, const char* call, int rank) {
  if (result != ncclSuccess)
    throw Error(std::string("NCCL: ") + call + " failed on rank " + std::to_string(rank) + ": " +
                ncclGetErrorString(result));
}

ncclDataType_t nccl_type_of(const torch::Tensor& tensor) {
  switch (tensor.scalar_type()) {
    case torch::kFloat32:
      return ncclFloat32;
    case torch::kFloat64:
      return ncclFloat64;
    case torch::kInt64:
      return ncclInt64;
    case torch::kUInt8:
      return ncclUint8;
    case torch::kBFloat16:
      return ncclBfloat16;
    default:
      throw Error("NcclCommunicator: unsupported tensor type " +
                  std::string(c10::toString(tensor.scalar_type())));
  }
}

// Ends the job from the watchdog thread: the main thread may be blocked in a CUDA call that
// never returns, so nothing can be thrown to it. MPI is initialised MPI_THREAD_FUNNELED, and
// MPI_Abort from this thread is outside that contract; it is the last MPI call this process
// makes, and should it not end the job, _Exit ends this rank and mpirun (or srun) the rest.
// The prefix is the program's name as run_job prints it.
[[noreturn]] void end_job(const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", program_invocation_short_name, message.c_str());
  std::fflush(stderr);
  std::fflush(stdout);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const MpiComm& mpi, torch::Device device, double collective_timeout_s)
      : Communicator(mpi), mpi_(mpi), device_(device), timeout_s_(collective_timeout_s) {
    ncclUniqueId id{};
    if (mpi.rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId", 0);
    mpi.broadcast(&id, sizeof id, MPI_BYTE, 0, "the broadcast of the NCCL id");
    const c10::cuda::CUDAGuard guard(device_);
    check_nccl(ncclCommInitRank(&comm_, mpi.size(), id, mpi.rank()), "ncclCommInitRank",
               mpi.rank());
    // Made after a successful init: from here on the communicator must be torn down, and how
    // depends on the path that destroys it.
    teardown_ = std::make_unique<CollectiveTeardown>([this] { ncclCommDestroy(comm_); },
                                                     [this] { ncclCommAbort(comm_); });
    watchdog_ = std::thread([this] { watch(); });
  }

  ~NcclCommunicator() override {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
    pending_.clear();   // CUDA events, destroyed before the communicator
    teardown_.reset();  // ncclCommDestroy, or ncclCommAbort while unwinding / after a failure
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  const char* name() const override { return "nccl"; }

  void broadcast(torch::Tensor& tensor, int root) override {
    check_device(tensor);
    run(ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), static_cast<size_t>(tensor.numel()),
                      nccl_type_of(tensor), root, comm_, stream()),
        "ncclBroadcast");
  }
  void all_reduce_mean(torch::Tensor& tensor) override { all_reduce(tensor, ncclAvg); }
  void all_reduce_sum(torch::Tensor& tensor) override { all_reduce(tensor, ncclSum); }
  void all_gather(const torch::Tensor& mine, torch::Tensor& all) override {
    check_device(mine);
    check_device(all);
    DAE_CHECK(all.numel() == mine.numel() * size() && all.scalar_type() == mine.scalar_type(),
              "NcclCommunicator: all_gather needs size() times the elements, of the same type");
    run(ncclAllGather(mine.data_ptr(), all.data_ptr(), static_cast<size_t>(mine.numel()),
                      nccl_type_of(mine), comm_, stream()),
        "ncclAllGather");
  }

 private:
  // How often the watchdog looks: an error is reported within this, and the poll costs one
  // ncclCommGetAsyncError and one cudaEventQuery per pending collective.
  static constexpr std::chrono::milliseconds kPollInterval{200};

  struct Pending {
    c10::cuda::CUDAEvent done{cudaEventDisableTiming};  // recorded after the collective
    std::chrono::steady_clock::time_point queued;
    const char* call;
  };

  c10::cuda::CUDAStream stream() const { return c10::cuda::getCurrentCUDAStream(device_.index()); }
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
    if (result != ncclSuccess) teardown_->mark_failed();
    check_nccl(result, call, mpi_.rank());
    // Inside a graph capture the collective only becomes a node of the graph: nothing to wait for.
    if (c10::cuda::isStreamCapturingMayInitCtx(stream().stream())) return;
    Pending pending;
    pending.done.record(stream());
    pending.queued = std::chrono::steady_clock::now();
    pending.call = call;
    const std::lock_guard<std::mutex> lock(mutex_);
    pending_.push_back(std::move(pending));
  }

  // The watchdog: the first failure it sees ends the job.
  void watch() {
    // CUDA calls from a new thread would use (and create a context on) cuda:0, another GPU.
    c10::cuda::set_device(device_.index());
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      wake_.wait_for(lock, kPollInterval, [this] { return stopping_; });
      if (stopping_) break;
      const std::string failure = look();
      if (failure.empty()) continue;
      ncclCommAbort(comm_);  // lets the kernels of the stuck collective return
      end_job(failure);
    }
  }

  // "" while all is well, else the job's last line. Called with mutex_ held.
  std::string look() {
    const std::string me = "rank " + std::to_string(mpi_.rank()) + ": NCCL: ";
    ncclResult_t state = ncclSuccess;
    const ncclResult_t polled = ncclCommGetAsyncError(comm_, &state);
    if (polled != ncclSuccess) state = polled;
    if (state != ncclSuccess && state != ncclInProgress) {
      const char* detail = ncclGetLastError(comm_);
      return me + "asynchronous error: " + ncclGetErrorString(state) +
             (detail != nullptr && *detail != '\0' ? std::string(": ") + detail : "");
    }
    try {
      while (!pending_.empty() && pending_.front().done.query()) pending_.pop_front();
    } catch (const std::exception& error) {
      return me + "waiting for " + pending_.front().call + ": " + one_line(error);
    }
    if (pending_.empty() || timeout_s_ <= 0) return "";
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - pending_.front().queued)
            .count();
    if (waited < timeout_s_) return "";
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%g", timeout_s_);
    // The wording of the MPI backend's collective timeout, with what NCCL was doing.
    return "rank " + std::to_string(mpi_.rank()) + ": no progress from the other ranks for " +
           seconds + " s (NCCL: " + pending_.front().call + " not complete; collective-timeout)";
  }

  const MpiComm& mpi_;
  torch::Device device_;
  double timeout_s_;  // 0: no limit
  ncclComm_t comm_ = nullptr;
  std::unique_ptr<CollectiveTeardown> teardown_;
  std::mutex mutex_;  // guards pending_ and stopping_
  std::condition_variable wake_;
  std::deque<Pending> pending_;  // collectives queued on the GPU, oldest first
  bool stopping_ = false;
  std::thread watchdog_;
};

std::unique_ptr<Communicator> make_nccl(const MpiComm& mpi, torch::Device device,
                                        double collective_timeout_s) {
  DAE_CHECK(device.is_cuda(), "backend: nccl needs a CUDA device");
  return std::make_unique<NcclCommunicator>(mpi, device, collective_timeout_s);
}

// Runs when the plugin is loaded: from then on make_nccl_communicator builds NcclCommunicators.
[[maybe_unused]] const bool registered = (register_nccl_factory(&make_nccl), true);

}  // namespace

}  // namespace dae

#endif  // DAE_WITH_NCCL
