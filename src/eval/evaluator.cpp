#include "dae/eval/evaluator.hpp"

#include <cstdio>

namespace dae {

std::vector<NoiseMetrics> Evaluator::evaluate(
    Denoiser& model, std::int64_t step,
    const std::vector<std::pair<std::int64_t, double>>& losses) {
  const TestSetResult result = evaluate_test_set(model, comm_, config_);
  comm_.run_collectively([&] {
    if (comm_.rank() != 0) return;
    if (total_dead(result.dead) > 0)
      std::fprintf(stderr,
                   "%s: warning: step %lld: dead ReLU channels on the clean test set (0 for "
                   "every image): %s\n",
                   comm_.mpi().program().c_str(), static_cast<long long>(step),
                   describe_dead(result.dead).c_str());
    report_.add(model, step, result, losses);
  });
  return result.metrics;
}

}  // namespace dae
