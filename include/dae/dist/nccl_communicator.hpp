// defines: dae::make_nccl_communicator (Communicator over NCCL on this rank's GPU)
#pragma once

#include <memory>

#include "dae/dist/communicator.hpp"
#include "dae/dist/mpi.hpp"

namespace dae {

// Rank 0 creates the ncclUniqueId, MPI_Bcast hands it to every rank, each calls ncclCommInitRank
// on `device`. Collectives run on the current CUDA stream of `device` (the one LibTorch's kernels
// run on), so they are ordered after the backward pass without a device-wide synchronisation.
// Throws dae::Error when this build has no NCCL (see nccl_built()), when CUDA support is not
// loaded (load_cuda_support in dist/cuda_plugin.hpp) or when NCCL fails. Defined in dae_distributed (cuda_plugin.cpp); the
// communicator itself comes from the CUDA plugin.
//
// NCCL reports a failed peer or network only asynchronously, and a collective whose peer has
// stopped never completes: the host would block in the next read of a GPU result for ever. So a
// watchdog thread polls ncclCommGetAsyncError and the completion of each collective; on an
// asynchronous error, or a collective not done after `collective_timeout_s` seconds (0: no
// limit), it aborts the communicator (ncclCommAbort), prints "program: rank r: NCCL: ..." and
// ends the job (MPI_Abort). Collectives replayed inside a CUDA graph are covered by the error
// poll only: the communicator does not see their launches.
// Destroyed normally, the communicator is destroyed collectively (ncclCommDestroy); destroyed
// while an exception unwinds the stack, or after a failed call, it is aborted instead: a rank
// that fails alone must not wait in a collective teardown its peers never join.
std::unique_ptr<Communicator> make_nccl_communicator(const MpiComm& mpi, torch::Device device,
                                                     double collective_timeout_s);

}  // namespace dae
