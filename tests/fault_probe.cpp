// A job in which the last rank fails after a few steps while the others keep calling
// collectives: run_job must end the whole job (MPI_Abort) instead of leaving them waiting.
// With --collective-teardown every rank also holds a resource whose normal release is
// collective (an MPI_Barrier, standing for ncclCommDestroy): the failing rank's unwinding must
// abort it, not wait in the barrier while the others wait in the all-reduce.
#include <mpi.h>

#include <cstring>
#include <memory>

#include "dae/core/error.hpp"
#include "dae/dist/mpi.hpp"
#include "dae/dist/teardown.hpp"

int main(int argc, char** argv) {
  const bool collective_teardown = argc > 1 && std::strcmp(argv[1], "--collective-teardown") == 0;
  return dae::run_job("fault_probe", argc, argv, [&](dae::MpiComm& world) {
    std::unique_ptr<dae::CollectiveTeardown> resource;
    if (collective_teardown)
      resource =
          std::make_unique<dae::CollectiveTeardown>([&world] { MPI_Barrier(world.get()); }, [] {});
    for (int step = 0;; ++step) {
      if (world.rank() == world.size() - 1 && step == 3)
        throw dae::Error("injected failure at step 3");
      double value = 1.0, sum = 0.0;
      DAE_CHECK_MPI(MPI_Allreduce(&value, &sum, 1, MPI_DOUBLE, MPI_SUM, world.get()));
    }
    return 0;
  });
}
