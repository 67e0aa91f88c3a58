// A job in which the last rank fails after a few steps while the others keep calling
// collectives: run_job must end the whole job (MPI_Abort) instead of leaving them waiting.
#include <mpi.h>

#include "dae/error.hpp"
#include "dae/mpi.hpp"

int main(int argc, char** argv) {
  return dae::run_job("fault_probe", argc, argv, [](dae::MpiComm& world) {
    for (int step = 0;; ++step) {
      if (world.rank() == world.size() - 1 && step == 3)
        throw dae::Error("injected failure at step 3");
      double value = 1.0, sum = 0.0;
      DAE_CHECK_MPI(MPI_Allreduce(&value, &sum, 1, MPI_DOUBLE, MPI_SUM, world.get()));
    }
    return 0;
  });
}
