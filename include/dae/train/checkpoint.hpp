// defines: dae::Checkpointer (atomic HDF5 checkpoints of model, Adam and TrainState, and the
//          record of a stop, dae::kStoppedFile), dae::load_checkpoint, dae::list_checkpoints
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

#include "dae/dist/communicator.hpp"
#include "dae/train/train_state.hpp"

namespace dae {

inline constexpr std::int64_t kCheckpointFormatVersion = 1;

// File layout (every dataset chunked with a Fletcher32 checksum that HDF5 verifies on read):
//   /model/<parameter>                   float32, the parameter's shape (e.g. encoder1.weight)
//   /optimizer/<parameter>/exp_avg       float32, Adam's first moment
//   /optimizer/<parameter>/exp_avg_sq    float32, Adam's second moment
//   /optimizer/<parameter>/step          int64 [1], Adam's step count for the parameter
//   /optimizer attributes                lr, beta1, beta2, eps, weight_decay
//   /state/step, /state/world_size       int64 [1]
//   /state/epoch, /state/position        int64 [world]: each rank's place in its data order
//   /state/noise_rng                     uint8 [world, bytes]: each rank's noise generator
//   /state/virtual_shards                int64 [1], world-size invariant mode only: V; the three
//                                        above then hold [V] entries, one per virtual shard
//   /state/last_loss                     float64 [1]
//   /state/loss_history                  float64 [n, 2]: (step, mean loss) at each log point
//   / attributes                         format_version, libtorch_version, config, complete
struct CheckpointData {
  std::int64_t step = 0;
  std::int64_t world_size = 0;
  std::int64_t virtual_shards = 0;          // V in world-size invariant mode, else 0
  std::vector<BatchCursor> cursors;         // one per saved rank (per virtual shard with V)
  std::vector<torch::Tensor> noise_states;  // one per saved rank (per virtual shard with V)
  double last_loss = 0;
  std::vector<std::pair<std::int64_t, double>> loss_history;
  std::string config_text;  // describe_config() of the run that wrote it ("" if absent)
};

// RUN_DIR/stopped.json: how a training run that a stop signal ended left the run dir, for the
// scripts that launched it (launch/job_control.sh), whatever the launcher's own exit code says.
// One key per line:
//   {
//     "step": 40,
//     "checkpoint": "/abs/run/checkpoints/ckpt_00000040.h5",
//     "exit_code": 75
//   }
// exit_code is dae::kExitPreempted, what every rank then exits with. Only the latest training
// run in the run dir has one: the next one removes it as it starts (Checkpointer methods below).
inline constexpr const char* kStoppedFile = "stopped.json";

// Saves on rank 0 after gathering every rank's TrainState; writes RUN_DIR/checkpoints/
// ckpt_<step, 8 digits>.h5 with write_file_durably, then prunes the oldest
// beyond `keep`. Collective: a failure (disk full) is reported on every rank.
class Checkpointer {
 public:
  Checkpointer(const Communicator& comm, std::string run_dir, long keep, std::string config_text);
  // Returns the path written.
  std::string save(torch::nn::Module& model, torch::optim::Adam& optimizer,
                   const TrainState& state);
  // Writes RUN_DIR/stopped.json for a stop at `step` whose checkpoint save() wrote to
  // `checkpoint`, durably. Collective.
  void record_stop(std::int64_t step, const std::string& checkpoint);
  // Removes an earlier run's RUN_DIR/stopped.json, if any. Collective.
  void clear_stop_record();

 private:
  const Communicator& comm_;
  std::string run_dir_;
  std::string directory_;  // RUN_DIR/checkpoints
  long keep_;
  std::string config_text_;
};

// The checkpoint file's bytes for `data` (every rank's state), built in memory; `name` labels
// errors. Checkpointer::save writes them atomically.
std::vector<std::uint8_t> checkpoint_image(const std::string& name, torch::nn::Module& model,
                                           torch::optim::Adam& optimizer,
                                           const CheckpointData& data,
                                           const std::string& config_text);
// Writes checkpoint_image() to `path` with write_file_durably (for tools and tests).
void write_checkpoint_file(const std::string& path, torch::nn::Module& model,
                           torch::optim::Adam& optimizer, const CheckpointData& data,
                           const std::string& config_text);

// Reads a checkpoint into `model` and `optimizer` (its moments and step counts; the learning rate
// and the other hyper-parameters stay the run's own) after checking that it is complete, of our
// format version, and that every parameter's name and shape match; throws dae::Error naming the
// file and the first mismatch. Returns the training state of every saved rank.
CheckpointData load_checkpoint(const std::string& path, torch::nn::Module& model,
                               torch::optim::Adam& optimizer);

// The config attribute of a checkpoint ("" if it has none), without loading anything else;
// throws dae::Error naming the file if it does not open as HDF5.
std::string read_checkpoint_config(const std::string& path);

// Moves the checkpoints of steps after `step` (a timeline abandoned by resuming from an older
// checkpoint; they would shadow it at the next `--resume auto`) into RUN_DIR/checkpoints/
// abandoned-<step>/, never deleting them. Returns that folder, or "" if there were none.
std::string set_aside_later_checkpoints(const std::string& run_dir, std::int64_t step);

// The checkpoints in RUN_DIR/checkpoints/, newest first (`--resume auto` tries them in order).
std::vector<std::string> list_checkpoints(const std::string& run_dir);

}  // namespace dae
