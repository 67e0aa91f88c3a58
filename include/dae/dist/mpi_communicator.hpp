// defines: dae::MpiCommunicator (Communicator over MPI; GPU tensors staged through host memory)
#pragma once

#include "dae/dist/communicator.hpp"
#include "dae/dist/mpi.hpp"

namespace dae {

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const MpiComm& comm) : Communicator(comm) {}

  const char* name() const override { return "mpi"; }
  void broadcast(torch::Tensor& tensor, int root) override;
  void all_reduce_mean(torch::Tensor& tensor) override;
  void all_reduce_sum(torch::Tensor& tensor) override;
  void all_gather(const torch::Tensor& mine, torch::Tensor& all) override;
};

}  // namespace dae
