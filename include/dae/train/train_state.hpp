// defines: dae::TrainState (all mutable state of a run on one rank)
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "dae/data/dataset.hpp"

namespace dae {

// Everything that changes while training, besides the model and optimizer tensors. Saving it
// whole is what makes a resumed run the run it would have been.
struct TrainState {
  std::int64_t step = 0;       // optimizer steps completed
  BatchCursor cursor;          // this rank's position in its shuffled data order
  torch::Tensor noise_state;   // this rank's noise generator state (uint8 bytes)
  // World-size invariant mode: V, and each of this rank's virtual shards' place in its order and
  // noise generator, in shard order (cursor and noise_state are then unused). 0: per-rank mode.
  std::int64_t virtual_shards = 0;
  std::vector<BatchCursor> shard_cursors;
  std::vector<torch::Tensor> shard_noise_states;
  double last_loss = 0;        // mean training loss over all ranks at `step`
  std::vector<std::pair<std::int64_t, double>> loss_history;  // (step, mean loss) at log points
};

}  // namespace dae
