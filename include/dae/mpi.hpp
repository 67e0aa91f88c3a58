// defines: dae::MpiSession, dae::MpiComm, dae::run_collectively, dae::broadcast_string,
//          dae::all_ranks_agree, dae::one_line, dae::run_job
#pragma once

#include <mpi.h>

#include <exception>
#include <functional>
#include <string>

namespace dae {

// MPI_Init_thread on construction, MPI_Finalize on destruction (unless MPI was already finalized).
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
};

// Owns a duplicate of a communicator (so the library's traffic never mixes with a caller's) and
// knows this rank's place in the job and on its node.
class MpiComm {
 public:
  explicit MpiComm(MPI_Comm parent = MPI_COMM_WORLD);
  ~MpiComm();
  MpiComm(MpiComm&& other) noexcept;
  MpiComm& operator=(MpiComm&& other) noexcept;
  MpiComm(const MpiComm&) = delete;
  MpiComm& operator=(const MpiComm&) = delete;

  MPI_Comm get() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }  // rank among the ranks sharing this node
  int local_size() const { return local_size_; }  // ranks on this node

  // Ends every rank of the job; for failures that only this rank has seen.
  [[noreturn]] void abort(int exit_code) const;

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
};

// Runs `work` on every rank, then agrees on the outcome. If any rank threw, rank 0 prints the
// message of the lowest failing rank (one line, prefixed by `program`) and every rank throws
// ReportedError, so all of them leave together and nobody waits in a later collective.
void run_collectively(const MpiComm& comm, const std::string& program,
                      const std::function<void()>& work);

// The first line of an exception's message (LibTorch's errors carry a backtrace after it).
std::string one_line(const std::exception& error);

// Replaces `text` on every rank with root's (any length).
void broadcast_string(const MpiComm& comm, std::string& text, int root);

// True on every rank when `ok` is true on every rank (a collective vote).
bool all_ranks_agree(const MpiComm& comm, bool ok);

// The body of every MPI main: sets up MPI, runs `job`, and turns failures into exit codes.
// A ReportedError exits with 1 (already printed); any other error is printed as
// "program: rank r: message" and ends the whole job with MPI_Abort, so no rank is left hanging.
// `job` returns the process exit code.
int run_job(const std::string& program, int argc, char** argv,
            const std::function<int(MpiComm& world)>& job);

}  // namespace dae
