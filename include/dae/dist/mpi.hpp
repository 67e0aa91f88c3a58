// defines: dae::MpiSession, dae::MpiComm (the MPI handle, with the collective timeout),
//          dae::CollectiveTimeout, dae::one_line, dae::run_job, DAE_CHECK_MPI
#pragma once

#include <mpi.h>

#include <exception>
#include <functional>
#include <string>
#include <utility>

#include "dae/core/error.hpp"

namespace dae {

// A collective that waited longer than the collective timeout: the other ranks are stopped,
// dead or cut off. Never voted on (a vote is a collective too); run_job ends the job.
class CollectiveTimeout : public Error {
 public:
  explicit CollectiveTimeout(const std::string& message) : Error(message) {}
};

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

  // The collectives every part of the job uses (in place where it says so). Each is started
  // non-blocking and waited for at most the collective timeout; past it, CollectiveTimeout names
  // `what` was waited for. Blocking MPI calls would wait forever for a stopped or dead peer.
  void all_reduce(void* data, int count, MPI_Datatype type, MPI_Op op, const char* what) const;
  void broadcast(void* data, int count, MPI_Datatype type, int root, const char* what) const;
  void gather(const void* send, int count, MPI_Datatype type, void* receive, int root,
              const char* what) const;
  // `count` elements from every rank into `receive` (size() * count), in rank order.
  void all_gather(const void* send, int count, MPI_Datatype type, void* receive,
                  const char* what) const;
  void barrier(const char* what) const;
  // Seconds a collective may wait for the other ranks (0: forever).
  void set_collective_timeout(double seconds) { timeout_s_ = seconds; }
  double collective_timeout() const { return timeout_s_; }
  // The program's name, which prefixes the job's messages ("dae_dist: ..."); set by run_job.
  void set_program(std::string name) { program_ = std::move(name); }
  const std::string& program() const { return program_; }

 private:
  void wait(MPI_Request& request, const char* what) const;

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  double timeout_s_ = 0;
  std::string program_ = "dae";
};

// The first line of an exception's message (LibTorch's errors carry a backtrace after it).
std::string one_line(const std::exception& error);

// The body of every MPI main: sets up MPI, runs `job`, and turns failures into exit codes.
// A ReportedError exits with 1 (already printed); any other error is printed as
// "program: rank r: message" and ends the whole job with MPI_Abort, so no rank is left hanging.
// `job` returns the process exit code.
int run_job(const std::string& program, int argc, char** argv,
            const std::function<int(MpiComm& world)>& job);

// What DAE_CHECK_MPI throws: "MPI: <call> failed: <MPI's text for code> (<file>:<line>)".
[[noreturn]] void throw_mpi_error(int code, const char* call, const char* file, int line);

}  // namespace dae

// An MPI call that returns anything but MPI_SUCCESS throws a dae::Error naming the call, MPI's
// text for the code and where the call was made.
#define DAE_CHECK_MPI(call)                                                              \
  do {                                                                                   \
    const int dae_mpi_rc_ = (call);                                                      \
    if (dae_mpi_rc_ != MPI_SUCCESS)                                                      \
      ::dae::throw_mpi_error(dae_mpi_rc_, #call, __FILE__, __LINE__);                    \
  } while (0)
