#include "dae/dist/mpi.hpp"

#include <c10/util/Exception.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <thread>
#include <memory>
#include <vector>

#include "dae/core/error.hpp"

namespace dae {

void throw_mpi_error(int code, const char* call, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw Error(std::string("MPI: ") + call + " failed: " + text + " (" +
              source_location(file, line) + ")");
}

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  // Only the main thread calls MPI; LibTorch's worker threads never do.
  DAE_CHECK_MPI(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  if (provided < MPI_THREAD_FUNNELED) {
    MPI_Finalize();
    throw Error("the MPI library does not support MPI_THREAD_FUNNELED");
  }
  // Errors come back as codes that DAE_CHECK_MPI turns into exceptions with context.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

MpiComm::MpiComm(MPI_Comm parent) {
  DAE_CHECK_MPI(MPI_Comm_dup(parent, &comm_));
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  DAE_CHECK_MPI(MPI_Comm_rank(comm_, &rank_));
  DAE_CHECK_MPI(MPI_Comm_size(comm_, &size_));
  // Ranks that share memory share a node: that is how both mpirun and srun jobs find their
  // node-local rank without relying on launcher-specific environment variables.
  MPI_Comm node = MPI_COMM_NULL;
  DAE_CHECK_MPI(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
}

MpiComm::~MpiComm() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (comm_ != MPI_COMM_NULL && !finalized) MPI_Comm_free(&comm_);
}

MpiComm::MpiComm(MpiComm&& other) noexcept
    : comm_(other.comm_),
      rank_(other.rank_),
      size_(other.size_),
      local_rank_(other.local_rank_),
      local_size_(other.local_size_),
      timeout_s_(other.timeout_s_),
      program_(std::move(other.program_)) {
  other.comm_ = MPI_COMM_NULL;
}

MpiComm& MpiComm::operator=(MpiComm&& other) noexcept {
  if (this != &other) {
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
    comm_ = other.comm_;
    rank_ = other.rank_;
    size_ = other.size_;
    local_rank_ = other.local_rank_;
    local_size_ = other.local_size_;
    timeout_s_ = other.timeout_s_;
    program_ = std::move(other.program_);
    other.comm_ = MPI_COMM_NULL;
  }
  return *this;
}

void MpiComm::abort(int exit_code) const {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(comm_ == MPI_COMM_NULL ? MPI_COMM_WORLD : comm_, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return; this only satisfies [[noreturn]]
}

void MpiComm::wait(MPI_Request& request, const char* what) const {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  int done = 0;
  for (long polls = 0;; ++polls) {
    DAE_CHECK_MPI(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
    if (done) return;
    // A step's all-reduce completes within microseconds of the last rank's arrival: poll hot at
    // first, then sleep between polls so that a waiting rank leaves its core to the ranks it
    // waits for (several ranks often share a node's cores).
    if (polls > 2000)
      std::this_thread::sleep_for(std::chrono::microseconds(polls > 20000 ? 1000 : 50));
    if (timeout_s_ > 0 && (polls & 255) == 0) {
      const double waited = std::chrono::duration<double>(Clock::now() - start).count();
      if (waited > timeout_s_) {
        char seconds[32];
        std::snprintf(seconds, sizeof seconds, "%g", timeout_s_);
        // The request stays pending: the job is about to end, and MPI_Cancel cannot cancel a
        // collective.
        throw CollectiveTimeout(std::string("no progress from the other ranks for ") + seconds +
                                " s (waiting in " + what + "; --collective-timeout " + seconds +
                                "): a rank is stopped, dead or unreachable; ending the job");
      }
    }
  }
}

void MpiComm::all_reduce(void* data, int count, MPI_Datatype type, MPI_Op op,
                         const char* what) const {
  MPI_Request request = MPI_REQUEST_NULL;
  DAE_CHECK_MPI(MPI_Iallreduce(MPI_IN_PLACE, data, count, type, op, comm_, &request));
  wait(request, what);
}

void MpiComm::broadcast(void* data, int count, MPI_Datatype type, int root,
                        const char* what) const {
  MPI_Request request = MPI_REQUEST_NULL;
  DAE_CHECK_MPI(MPI_Ibcast(data, count, type, root, comm_, &request));
  wait(request, what);
}

void MpiComm::gather(const void* send, int count, MPI_Datatype type, void* receive, int root,
                     const char* what) const {
  MPI_Request request = MPI_REQUEST_NULL;
  DAE_CHECK_MPI(MPI_Igather(send, count, type, receive, count, type, root, comm_, &request));
  wait(request, what);
}

void MpiComm::all_gather(const void* send, int count, MPI_Datatype type, void* receive,
                         const char* what) const {
  MPI_Request request = MPI_REQUEST_NULL;
  DAE_CHECK_MPI(MPI_Iallgather(send, count, type, receive, count, type, comm_, &request));
  wait(request, what);
}

void MpiComm::barrier(const char* what) const {
  MPI_Request request = MPI_REQUEST_NULL;
  DAE_CHECK_MPI(MPI_Ibarrier(comm_, &request));
  wait(request, what);
}

std::string one_line(const std::exception& error) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&error)) {
    std::string message = torch_error->what_without_backtrace();
    const auto newline = message.find('\n');
    return newline == std::string::npos ? message : message.substr(0, newline);
  }
  return error.what();
}

int run_job(const std::string& program, int argc, char** argv,
            const std::function<int(MpiComm& world)>& job) {
  // Before MPI, and later NCCL, open the InfiniBand verbs library: memory registered for RDMA is
  // shared copy-on-write with a fork()ed child, and the parent's registered pages can be
  // corrupted unless verbs marks them MADV_DONTFORK, which these variables ask for. The job
  // forks after CUDA and NCCL set-up: h5.cpp probes each data or checkpoint file in a child
  // (resume and evaluation open files after ncclCommInitRank). A user's own setting is kept.
  setenv("RDMAV_FORK_SAFE", "1", 0);
  setenv("IBV_FORK_SAFE", "1", 0);
  std::unique_ptr<MpiSession> session;
  std::unique_ptr<MpiComm> world_comm;
  try {
    session = std::make_unique<MpiSession>(&argc, &argv);
    world_comm = std::make_unique<MpiComm>(MPI_COMM_WORLD);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s: MPI start-up failed: %s\n", program.c_str(), error.what());
    return 1;
  }
  MpiComm& world = *world_comm;
  world.set_program(program);
  try {
    return job(world);
  } catch (const ReportedError&) {
    return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s: rank %d: %s\n", program.c_str(), world.rank(),
                 one_line(error).c_str());
    world.abort(1);
  }
}

}  // namespace dae
