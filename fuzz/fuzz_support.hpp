// defines: dae::fuzz::ScratchFile (fuzz bytes as a file, for parsers that take a path),
//          dae::fuzz::expect_clean_rejection (the contract every input must meet)
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <typeinfo>

#include "dae/core/error.hpp"

namespace dae::fuzz {

// One file per process, rewritten for every input; in /dev/shm when it exists so that the many
// executions of a fuzzing run cost no disk traffic. Removed when the process ends normally.
class ScratchFile {
 public:
  explicit ScratchFile(const std::string& suffix) {
    const std::filesystem::path base =
        std::filesystem::is_directory("/dev/shm") ? "/dev/shm"
                                                  : std::filesystem::temp_directory_path();
    path_ = (base / ("dae_fuzz_" + std::to_string(::getpid()) + "." + suffix)).string();
  }
  ~ScratchFile() { std::remove(path_.c_str()); }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  const std::string& write(const std::uint8_t* data, std::size_t size) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    out.close();
    if (!out) {
      std::fprintf(stderr, "fuzz: cannot write %s\n", path_.c_str());
      std::abort();
    }
    return path_;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs `parse` on one input. Accepting it is fine; rejecting it is fine only as the tool rejects
// everything else: a dae::Error with one non-empty line. Any other exception (std::bad_alloc,
// std::out_of_range, c10::Error, ...) or a multi-line message is a finding: print it and abort,
// so that libFuzzer saves the input (and a replay run fails).
template <typename Parse>
void expect_clean_rejection(const char* what, Parse&& parse) {
  try {
    parse();
  } catch (const dae::Error& error) {
    const std::string message = error.what();
    if (!message.empty() && message.find('\n') == std::string::npos) return;
    std::fprintf(stderr, "fuzz: %s: dae::Error is not one line: [%s]\n", what, message.c_str());
    std::abort();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "fuzz: %s: escaped %s: %s\n", what, typeid(error).name(), error.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "fuzz: %s: escaped a non-std exception\n", what);
    std::abort();
  }
}

}  // namespace dae::fuzz
