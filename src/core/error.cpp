#include "dae/core/error.hpp"

#include <H5Epublic.h>
#include <mpi.h>

#include <string>

namespace dae {

namespace {
std::string where(const char* file, int line) {
  std::string path(file);
  const auto slash = path.find_last_of('/');
  return path.substr(slash == std::string::npos ? 0 : slash + 1) + ":" + std::to_string(line);
}
}  // namespace

void throw_mpi_error(int code, const char* call, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw Error(std::string("MPI: ") + call + " failed: " + text + " (" + where(file, line) + ")");
}

void throw_h5_error(const char* call, const char* file, int line) {
  throw Error(std::string("HDF5: ") + call + " failed (" + where(file, line) + ")");
}

}  // namespace dae
