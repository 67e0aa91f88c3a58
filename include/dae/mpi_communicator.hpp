// defines: dae::MpiCommunicator (Communicator over MPI; GPU tensors staged through host memory)
#pragma once

#include "dae/communicator.hpp"
#include "dae/mpi.hpp"

namespace dae {

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const MpiComm& comm) : comm_(comm) {}

  int rank() const override { return comm_.rank(); }
  int size() const override { return comm_.size(); }
  int local_rank() const override { return comm_.local_rank(); }
  const char* name() const override { return "mpi"; }

  void broadcast(torch::Tensor& tensor, int root) override;
  void all_reduce_mean(torch::Tensor& tensor) override;
  void all_reduce_sum(torch::Tensor& tensor) override;
  void all_gather(const torch::Tensor& mine, torch::Tensor& all) override;
  void barrier() override;

 private:
  const MpiComm& comm_;
};

}  // namespace dae
