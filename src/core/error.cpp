#include "dae/core/error.hpp"

namespace dae {

std::string source_location(const char* file, int line) {
  const std::string path(file);
  const auto slash = path.find_last_of('/');
  return path.substr(slash == std::string::npos ? 0 : slash + 1) + ":" + std::to_string(line);
}

}  // namespace dae
