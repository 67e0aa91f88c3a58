// defines: dae::TrainedModel, dae::load_trained_model, dae::newest_checkpoint (a checkpoint's
//          network for inference and export: no optimizer, no training state)
#pragma once

#include <cstdint>
#include <string>

#include "dae/core/config.hpp"
#include "dae/model/model.hpp"

namespace dae {

struct TrainedModel {
  ModelPtr model;           // float32 on the CPU, in eval mode, gradients off
  ModelOptions options;     // the network the run that wrote it trained (its config attribute)
  std::int64_t step = 0;    // the optimizer steps behind it
  std::string config_text;  // describe_config() of that run ("" in a checkpoint without it)
  std::string path;         // the checkpoint file
};

// Builds the network named by the checkpoint's configuration (model, output-activation; the
// defaults where it has none) and loads its parameters, with every check load_checkpoint makes
// (complete, format version, every parameter's name and shape, checksums). Throws dae::Error
// naming the file and the problem.
TrainedModel load_trained_model(const std::string& checkpoint);

// The newest checkpoint in RUN_DIR/checkpoints; throws dae::Error naming the run dir if none.
std::string newest_checkpoint(const std::string& run_dir);

}  // namespace dae
