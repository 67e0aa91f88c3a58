#include "dae/train/trained_model.hpp"

#include "dae/core/error.hpp"
#include "dae/train/checkpoint.hpp"

namespace dae {

TrainedModel load_trained_model(const std::string& checkpoint) {
  TrainedModel trained;
  trained.path = checkpoint;
  // The config attribute is read first, alone: it decides which network the parameters must fit.
  // load_checkpoint then reads it again with everything else; both read the same file.
  try {
    trained.options = config_from_description(read_checkpoint_config(checkpoint)).model;
  } catch (const Error& error) {
    throw Error(checkpoint + ": its configuration: " + error.what());
  }
  trained.model = make_model(trained.options);
  torch::optim::Adam moments(trained.model->parameters());  // read and dropped
  const CheckpointData data = load_checkpoint(checkpoint, *trained.model, moments);
  trained.step = data.step;
  trained.config_text = data.config_text;
  trained.model->eval();
  for (auto& parameter : trained.model->parameters()) parameter.set_requires_grad(false);
  return trained;
}

std::string newest_checkpoint(const std::string& run_dir) {
  const std::vector<std::string> checkpoints = list_checkpoints(run_dir);
  if (checkpoints.empty())
    throw Error("run-dir " + run_dir + ": no checkpoint in " + run_dir + "/checkpoints");
  return checkpoints.front();
}

}  // namespace dae
