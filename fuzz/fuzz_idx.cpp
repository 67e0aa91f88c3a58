// Fuzz target: the IDX reader. The same bytes go through dae::parse_idx (in memory) and
// dae::read_idx (as a file: raw, or gzip when they start with gzip's magic, as the seeds' .gz
// files do), and an accepted array is then checked as the images or labels of an MNIST split.
#include <cstdint>

#include "dae/io/idx.hpp"
#include "fuzz_support.hpp"

namespace {

void check_as_split(const dae::IdxArray& array) {
  // Pair the array with a valid counterpart so that make_mnist_split's own checks are reached.
  if (array.dims.size() == 1) {
    dae::IdxArray images{{array.dims[0], dae::kImageSide, dae::kImageSide}, {}};
    images.data.resize(array.data.size() * dae::kImageSide * dae::kImageSide);
    dae::make_mnist_split(images, array, "images", "fuzz.idx");
  } else if (!array.dims.empty()) {
    dae::IdxArray labels{{array.dims[0]}, std::vector<std::uint8_t>(array.dims[0], 0)};
    dae::make_mnist_split(array, labels, "fuzz.idx", "labels");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  dae::fuzz::expect_clean_rejection("parse_idx", [&] {
    const dae::IdxArray array = dae::parse_idx(data, size, "fuzz.idx");
    // The counterpart holds dims[0] rows, and an array with a 0 among its other dims claims any
    // dims[0] with no data: stay within a fuzzer's memory.
    if (!array.dims.empty() && array.dims[0] <= 4096) check_as_split(array);
  });
  static dae::fuzz::ScratchFile file("idx");
  file.write(data, size);
  dae::fuzz::expect_clean_rejection("read_idx", [&] { dae::read_idx(file.path()); });
  return 0;
}
