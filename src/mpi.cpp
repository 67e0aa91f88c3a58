#include "dae/mpi.hpp"

#include <c10/util/Exception.h>

#include <cstdio>
#include <exception>
#include <memory>
#include <vector>

#include "dae/error.hpp"

namespace dae {

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
      local_size_(other.local_size_) {
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

std::string one_line(const std::exception& error) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&error)) {
    std::string message = torch_error->what_without_backtrace();
    const auto newline = message.find('\n');
    return newline == std::string::npos ? message : message.substr(0, newline);
  }
  return error.what();
}

void broadcast_string(const MpiComm& comm, std::string& text, int root) {
  int length = static_cast<int>(text.size());
  DAE_CHECK_MPI(MPI_Bcast(&length, 1, MPI_INT, root, comm.get()));
  DAE_CHECK(length >= 0, "broadcast_string: negative length");
  text.resize(static_cast<std::size_t>(length));
  DAE_CHECK_MPI(MPI_Bcast(text.data(), length, MPI_CHAR, root, comm.get()));
}

void run_collectively(const MpiComm& comm, const std::string& program,
                      const std::function<void()>& work) {
  std::string failure;
  try {
    work();
  } catch (const std::exception& error) {
    failure = one_line(error);
    if (failure.empty()) failure = "unknown error";
  }
  // The lowest failing rank speaks for the job: every rank learns who it is, then its message.
  const int mine = failure.empty() ? comm.size() : comm.rank();
  int first_failing = comm.size();
  DAE_CHECK_MPI(MPI_Allreduce(&mine, &first_failing, 1, MPI_INT, MPI_MIN, comm.get()));
  if (first_failing == comm.size()) return;

  broadcast_string(comm, failure, first_failing);
  if (comm.rank() == 0) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), failure.c_str());
    std::fflush(stderr);
  }
  throw ReportedError(failure);
}

bool all_ranks_agree(const MpiComm& comm, bool ok) {
  int mine = ok ? 1 : 0, all = 0;
  DAE_CHECK_MPI(MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, comm.get()));
  return all == 1;
}

int run_job(const std::string& program, int argc, char** argv,
            const std::function<int(MpiComm& world)>& job) {
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
