// defines: dae::make_nccl_communicator (Communicator over NCCL on this rank's GPU)
#pragma once

#include <memory>

#include "dae/communicator.hpp"
#include "dae/mpi.hpp"

namespace dae {

// Rank 0 creates the ncclUniqueId, MPI_Bcast hands it to every rank, each calls ncclCommInitRank
// on `device`. Collectives run on the current CUDA stream of `device` (the one LibTorch's kernels
// run on), so they are ordered after the backward pass without a device-wide synchronisation.
// Throws dae::Error when this build has no NCCL (see nccl_built()), when CUDA support is not
// loaded (load_cuda_support in cuda_support.hpp) or when NCCL fails. Defined in dae_core; the
// communicator itself comes from the CUDA plugin.
std::unique_ptr<Communicator> make_nccl_communicator(const MpiComm& mpi, torch::Device device);

}  // namespace dae
