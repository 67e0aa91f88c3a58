// Fuzz target: the checkpoint loader, dae::load_checkpoint, on a model and Adam optimizer.
// The model is a two-layer miniature of ConvDae (same layer kinds and names): the loader is
// generic over named_parameters(), and small checkpoints keep the fuzzer's mutations on HDF5
// metadata and our checks rather than on 100 kB of float payload.
#include <torch/torch.h>

#include <cstdint>

#include "dae/train/checkpoint.hpp"
#include "fuzz_model.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static dae::fuzz::ScratchFile file("ckpt.h5");
  static dae::fuzz::TinyDae model;
  static torch::optim::Adam optimizer(model.parameters());
  file.write(data, size);
  dae::fuzz::expect_clean_rejection("load_checkpoint", [&] {
    dae::load_checkpoint(file.path(), model, optimizer);
  });
  return 0;
}
