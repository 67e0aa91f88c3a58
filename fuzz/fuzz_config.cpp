// Fuzz target: the INI configuration parser, as `dae_dist --config FILE` reads it (the fuzz
// bytes are FILE), followed by the validation of every value.
#include <cstdint>

#include "dae/core/config.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static dae::fuzz::ScratchFile file("ini");
  file.write(data, size);
  const char* argv[] = {"dae_dist", "--config", file.path().c_str()};
  dae::fuzz::expect_clean_rejection("parse_config", [&] { dae::parse_config(3, argv); });
  return 0;
}
