// defines: dae::Error, dae::ReportedError, DAE_CHECK, DAE_CHECK_MPI, DAE_CHECK_H5
#pragma once

#include <stdexcept>
#include <string>

namespace dae {

// Every failure the tool reports is a dae::Error whose message is one line that names the thing
// (file, option, rank) and the problem. main() prints it and ends the whole job.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Thrown on every rank after a collective check has already printed the failing rank's message,
// so that main() exits without printing it again.
class ReportedError : public Error {
 public:
  explicit ReportedError(const std::string& message) : Error(message) {}
};

[[noreturn]] void throw_mpi_error(int code, const char* call, const char* file, int line);
[[noreturn]] void throw_h5_error(const char* call, const char* file, int line);

}  // namespace dae

#define DAE_CHECK(condition, message)                      \
  do {                                                     \
    if (!(condition)) throw ::dae::Error(message);         \
  } while (0)

#define DAE_CHECK_MPI(call)                                                   \
  do {                                                                        \
    const int dae_mpi_rc_ = (call);                                           \
    if (dae_mpi_rc_ != 0) ::dae::throw_mpi_error(dae_mpi_rc_, #call, __FILE__, __LINE__); \
  } while (0)

// HDF5 calls return a negative value (herr_t or hid_t) on failure.
#define DAE_CHECK_H5(call)                                                  \
  do {                                                                      \
    if ((call) < 0) ::dae::throw_h5_error(#call, __FILE__, __LINE__);       \
  } while (0)
