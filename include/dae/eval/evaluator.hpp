// defines: dae::Evaluator (one evaluation of the run: the collective test-set sweep, then rank 0's
//          report)
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "dae/core/config.hpp"
#include "dae/dist/communicator.hpp"
#include "dae/eval/report.hpp"
#include "dae/eval/sweep.hpp"
#include "dae/model/model.hpp"

namespace dae {

class Evaluator {
 public:
  // `continue_history`: keep the report rows of an earlier part of this run (a resumed run).
  Evaluator(const Config& config, Communicator& comm, bool continue_history)
      : config_(config), comm_(comm), report_(config, continue_history) {}
  // Collective: the sweep on every rank, the report written by rank 0; a failure there (disk
  // full) ends every rank alike. Returns this evaluation's metrics.
  std::vector<NoiseMetrics> evaluate(Denoiser& model, std::int64_t step,
                                     const std::vector<std::pair<std::int64_t, double>>& losses);
  // Rank 0: each evaluation also goes to TensorBoard.
  void set_tensorboard(TensorBoardWriter* writer) { report_.set_tensorboard(writer); }

 private:
  const Config& config_;
  Communicator& comm_;
  EvalReport report_;  // used on rank 0 only
};

}  // namespace dae
