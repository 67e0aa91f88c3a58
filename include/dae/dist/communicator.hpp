// defines: dae::Communicator (the one object every exchange between ranks goes through: the data
//          plane of tensors on the backend's device, and the control plane of small host values)
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dae/dist/mpi.hpp"

namespace dae {

// One group of ranks, two planes:
// - the data plane (virtual): broadcast and all-reduce of contiguous tensors on the backend's
//   device. Backends: MpiCommunicator (host buffers, the reference) and, with GPUs, NCCL's
//   (dist/nccl_communicator.hpp), tested against it.
// - the control plane (not virtual): votes, broadcasts of small values, gathers to rank 0 and
//   collective error handling, always over the MpiComm every backend is built on, whatever the
//   data plane runs on. Every call is collective, in the same order on every rank, and waits at
//   most the collective timeout (CollectiveTimeout).
class Communicator {
 public:
  explicit Communicator(const MpiComm& control) : control_(control) {}
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return control_.rank(); }
  int size() const { return control_.size(); }
  int local_rank() const { return control_.local_rank(); }  // among this node's ranks
  int local_size() const { return control_.local_size(); }  // ranks on this node
  const MpiComm& mpi() const { return control_; }  // for backends and device planning
  virtual const char* name() const = 0;

  // Data plane.
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

  // Control plane.
  // True on every rank when `ok` is true on every rank.
  bool all_agree(bool ok) const;
  // The largest of every rank's `value`, on every rank.
  double max(double value) const;
  // Replaces `text` on every rank with root's (any length).
  void broadcast_text(std::string& text, int root) const;
  // Every rank's `mine` (all of the same length), concatenated in rank order on rank 0; empty on
  // the other ranks.
  std::vector<std::int64_t> gather_to_root(const std::vector<std::int64_t>& mine) const;
  std::vector<std::uint8_t> gather_to_root(const std::vector<std::uint8_t>& mine) const;
  // Runs `work` on every rank, then agrees on the outcome: if any rank threw, rank 0 prints the
  // lowest failing rank's message (one line, "dae_dist: ...") and every rank throws
  // ReportedError, so all of them leave together and nobody waits in a later collective.
  void run_collectively(const std::function<void()>& work) const;
  void barrier() const;

 private:
  const MpiComm& control_;
};

}  // namespace dae
