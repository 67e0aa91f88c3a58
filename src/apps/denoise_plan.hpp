// defines: dae::InputKind, dae::input_kind, dae::DenoisePlan, dae::make_denoise_plan (which file
//          each of dae_denoise's inputs becomes, decided before anything is read or written)
#pragma once

#include <string>
#include <vector>

namespace dae {

// What an input file holds, told from its first bytes (never from its name).
enum class InputKind { kImage, kIdx, kHdf5 };
// Throws dae::Error naming `path` when it is not a regular file or none of the kinds.
InputKind input_kind(const std::string& path);

struct DenoisePlan {
  InputKind kind = InputKind::kImage;
  std::vector<std::string> inputs, outputs;  // one output per input, in the inputs' order

  // As text and back: rank 0 makes the plan, every rank follows the same one.
  std::string text() const;
  static DenoisePlan from_text(const std::string& text);
};

// Image files map to `out`/<file name>, folders' images to `out`/<path inside the folder>, an
// IDX or HDF5 input (alone; HDF5 with a `dataset`) to `out` itself. Refuses, with one line: no
// input, a mix of images and arrays, an output that exists (unless `overwrite`), that is an
// input or lies inside an input folder, and two inputs that would share an output.
DenoisePlan make_denoise_plan(const std::vector<std::string>& inputs, const std::string& out,
                              const std::string& dataset, bool overwrite);

}  // namespace dae
