#include "dae/train/resume.hpp"

#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "dae/core/error.hpp"

namespace dae {

namespace {

// A resumed run may change any option, and changing the learning rate or the step count is
// routine; but the options that define what is being trained are worth a line each, so that a
// silent change (another data file, another noise) never goes unnoticed in the log.
void warn_about_changed_options(const Config& config, const std::string& saved_text,
                                const std::string& program) {
  if (saved_text.empty()) return;
  const auto saved = described_config_rows(saved_text);
  const auto now = described_config_rows(describe_config(config));
  for (const char* key :
       {"data", "batch-size", "global-batch-size", "lr", "lr-warmup", "lr-schedule", "lr-floor",
        "adam-eps", "adam-beta1", "adam-beta2", "clip-grad-norm", "recycle-dead-every",
        "recycle-dead-until", "noise", "noise-type", "seed", "model", "init", "init-bias",
        "output-activation", "kernels", "precision"}) {
    // In invariant mode batch-size is global-batch-size / ranks: another world size is no
    // change of the training.
    if (config.global_batch_size > 0 && std::string(key) == "batch-size") continue;
    const auto before = saved.find(key), after = now.find(key);
    if (before != saved.end() && after != now.end() && before->second != after->second)
      std::fprintf(stderr, "%s: warning: resume: %s changed from %s to %s\n", program.c_str(), key,
                   before->second.c_str(), after->second.c_str());
  }
}

}  // namespace

std::optional<CheckpointData> load_resume_checkpoint(const Config& config, const Communicator& comm,
                                                    Denoiser& model, torch::optim::Adam& optimizer) {
  const bool automatic = config.resume == "auto";
  // Rank 0 lists the directory and tells the others, so that all try the same files in the same
  // order even where a shared file system shows ranks different listings for a moment.
  std::string listing;
  if (comm.rank() == 0)
    for (const std::string& path : list_checkpoints(config.run_dir)) listing += path + "\n";
  comm.broadcast_text(listing, 0);
  std::vector<std::string> candidates{config.resume};
  if (automatic) {
    candidates.clear();
    std::istringstream lines(listing);
    for (std::string path; std::getline(lines, path);) candidates.push_back(path);
  }
  // A failed load can leave some tensors overwritten: keep the fresh start to fall back to.
  std::vector<torch::Tensor> initial;
  for (const auto& parameter : model.parameters()) initial.push_back(parameter.detach().clone());

  for (const std::string& path : candidates) {
    CheckpointData saved;
    std::string failure;
    optimizer.state().clear();  // no moments left over from a file that failed
    try {
      saved = load_checkpoint(path, model, optimizer);
    } catch (const std::exception& error) {
      failure = one_line(error);
    }
    if (!automatic) {
      comm.run_collectively([&] {
        if (!failure.empty()) throw Error("--resume: " + failure);
      });
    } else if (!comm.all_agree(failure.empty())) {
      if (comm.rank() == 0)
        std::fprintf(stderr, "%s: warning: skipping checkpoint %s: %s\n", comm.mpi().program().c_str(), path.c_str(),
                     failure.empty() ? "it did not load on every rank" : failure.c_str());
      continue;
    }
    if (comm.rank() == 0)
      std::printf("resumed from %s at step %lld\n", path.c_str(),
                  static_cast<long long>(saved.step));
    return saved;
  }
  torch::NoGradGuard no_grad;
  std::size_t i = 0;
  for (auto& parameter : model.parameters()) parameter.copy_(initial[i++]);
  optimizer.state().clear();
  if (comm.rank() == 0)
    std::printf("no usable checkpoint in %s/checkpoints\n", config.run_dir.c_str());
  return std::nullopt;
}

ResumeOutcome resume_training(const Config& config, const Communicator& comm, Denoiser& model,
                              Trainer& trainer) {
  if (config.resume.empty()) return ResumeOutcome::kFresh;
  const auto saved = load_resume_checkpoint(config, comm, model, trainer.optimizer());
  if (!saved) {
    if (comm.rank() == 0) std::printf("starting fresh\n");
    return ResumeOutcome::kFresh;
  }
  // Every rank read the same file; rank 0's view of the run dir decides for all (a vote of
  // every other rank's "yes"), so all leave here together.
  const bool summarised = comm.all_agree(
      comm.rank() != 0 ||
      std::filesystem::exists(std::filesystem::path(config.run_dir) / "summary.json"));
  if (saved->step >= config.steps && summarised) {
    if (comm.rank() == 0)
      std::printf("resume: the checkpoint is at step %lld, at or past --steps %ld: this run "
                  "is already finished; nothing to do (summary.json and eval/ are kept; "
                  "give a larger --steps to train on)\n",
                  static_cast<long long>(saved->step), config.steps);
    return ResumeOutcome::kFinished;
  }
  if (saved->step >= config.steps && comm.rank() == 0)
    std::printf("resume: the checkpoint is at step %lld, at or past --steps %ld, but the run "
                "has no summary.json (it ended during its final evaluation): evaluating\n",
                static_cast<long long>(saved->step), config.steps);
  comm.run_collectively([&] {
    if (comm.rank() != 0) return;
    warn_about_changed_options(config, saved->config_text, comm.mpi().program());
    const std::string aside = set_aside_later_checkpoints(config.run_dir, saved->step);
    if (!aside.empty())
      std::printf("resume: checkpoints after step %lld belong to the line this run leaves; "
                  "moved to %s (nothing deleted)\n",
                  static_cast<long long>(saved->step), aside.c_str());
  });
  bool exact = false;
  comm.run_collectively([&] { exact = trainer.resume_from(*saved); });
  if (!exact && comm.rank() == 0)
    std::fprintf(stderr,
                 "%s: warning: checkpoint was written by %lld ranks (this job has %d) or on "
                 "another kind of device: model and optimizer continue exactly, but the data "
                 "order and noise streams are re-derived and differ from the uninterrupted "
                 "run\n",
                 comm.mpi().program().c_str(), static_cast<long long>(saved->world_size),
                 comm.size());
  return ResumeOutcome::kResumed;
}

}  // namespace dae
