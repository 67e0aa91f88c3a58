// dae_prepare: converts the four MNIST-format IDX files of a directory into one HDF5 data file.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "dae/data/dataset.hpp"
#include "dae/core/error.hpp"
#include "dae/io/idx.hpp"

namespace {

constexpr const char* kUsage =
    "usage: dae_prepare --idx-dir DIR --out FILE.h5\n"
    "  DIR holds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and\n"
    "  t10k-labels-idx1-ubyte, each raw or .gz (MNIST or Fashion-MNIST).\n";

}  // namespace

int main(int argc, char** argv) {
  std::string idx_dir, out;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if ((arg == "--idx-dir" || arg == "--out") && i + 1 < argc) {
      (arg == "--idx-dir" ? idx_dir : out) = argv[++i];
    } else {
      std::fprintf(stderr, "dae_prepare: unknown or incomplete argument '%s'\n%s", arg.c_str(),
                   kUsage);
      return 2;
    }
  }
  if (idx_dir.empty() || out.empty()) {
    std::fprintf(stderr, "dae_prepare: --idx-dir and --out are both required\n%s", kUsage);
    return 2;
  }
  try {
    // Writing over an input would destroy it (the output is renamed into place at the end).
    namespace fs = std::filesystem;
    std::error_code ignored;
    for (const auto& entry : fs::directory_iterator(idx_dir, ignored))
      if (fs::equivalent(entry.path(), out, ignored))
        throw dae::Error("--out " + out + ": is one of the inputs in " + idx_dir);
    const dae::MnistSplit train = dae::read_mnist_split(idx_dir, "train");
    const dae::MnistSplit test = dae::read_mnist_split(idx_dir, "t10k");
    dae::write_data_file(out, train, test, idx_dir);
    std::printf("dae_prepare: wrote %s (%u train, %u test images from %s)\n", out.c_str(),
                train.count, test.count, idx_dir.c_str());
  } catch (const std::exception& error) {
    std::fprintf(stderr, "dae_prepare: %s\n", error.what());
    return 1;
  }
  return 0;
}
