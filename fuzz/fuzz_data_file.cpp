// Fuzz target: validation and reading of the HDF5 data file that dae_prepare writes and every
// rank of dae_dist opens: dae::count_rows (layout checks) and dae::Shard::read (hyperslab reads
// through HDF5's chunk index and its shuffle + deflate filters) for both splits.
#include <algorithm>
#include <cstdint>

#include "dae/data/dataset.hpp"
#include "fuzz_support.hpp"

namespace {
// Rows read per shard: enough to span chunk boundaries of the seeds, small enough that a header
// claiming billions of rows does not turn into an allocation the fuzzer would call a leak/OOM.
constexpr std::uint64_t kRowsRead = 16;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static dae::fuzz::ScratchFile file("h5");
  file.write(data, size);
  for (const char* split : {"train", "test"}) {
    dae::fuzz::expect_clean_rejection("data file", [&] {
      const std::uint64_t rows = dae::count_rows(file.path(), split);
      const std::uint64_t count = std::min(rows, kRowsRead);
      dae::Shard::read(file.path(), split, 0, count);                 // first rows
      if (rows > count) dae::Shard::read(file.path(), split, rows - count, count);  // last rows
    });
  }
  return 0;
}
