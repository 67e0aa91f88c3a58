// defines: dae::Error, dae::ReportedError, dae::source_location, DAE_CHECK
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

// "file.cpp:42" for __FILE__ and __LINE__: where a failed library call was made (the
// DAE_CHECK_MPI and DAE_CHECK_H5 messages).
std::string source_location(const char* file, int line);

}  // namespace dae

#define DAE_CHECK(condition, message)                      \
  do {                                                     \
    if (!(condition)) throw ::dae::Error(message);         \
  } while (0)
