// defines: dae::Communicator (the one interface every gradient and metric exchange goes through)
#pragma once

#include <torch/torch.h>

namespace dae {

// Data-parallel collectives over one group of ranks. Backends: MpiCommunicator (host buffers,
// the reference) and, with GPUs, an NCCL one. Tensors are contiguous and live on the backend's
// device; calls are collective, in the same order on every rank.
class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;  // rank among this node's ranks, picks the GPU
  virtual const char* name() const = 0;

  // Replaces `tensor` on every rank with root's values.
  virtual void broadcast(torch::Tensor& tensor, int root) = 0;
  // Replaces `tensor` on every rank with the element-wise mean over ranks (float32).
  virtual void all_reduce_mean(torch::Tensor& tensor) = 0;
  // Replaces `tensor` on every rank with the element-wise sum over ranks (float64 or float32).
  virtual void all_reduce_sum(torch::Tensor& tensor) = 0;
  // Fills `all` (size() times as many elements, same type) on every rank with every rank's
  // `mine`, in rank order. Moves bytes only, so no backend's algorithm can change a value (the
  // world-size invariant reduction, ordered_sum.hpp, relies on that).
  virtual void all_gather(const torch::Tensor& mine, torch::Tensor& all) = 0;
  virtual void barrier() = 0;
};

}  // namespace dae
