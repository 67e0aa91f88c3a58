// defines: dae::load_resume_checkpoint, dae::resume_training (the resume policy: which checkpoint,
//          what a finished run does, what an abandoned timeline becomes, what changed)
#pragma once

#include <optional>

#include "dae/core/config.hpp"
#include "dae/dist/communicator.hpp"
#include "dae/model/model.hpp"
#include "dae/train/checkpoint.hpp"
#include "dae/train/trainer.hpp"

namespace dae {

// `--resume auto|PATH`: loads the model and Adam's state and returns the saved training state;
// nothing when auto finds no usable checkpoint (the model is then left as it was). With auto, a
// checkpoint that does not load on every rank is skipped with a warning and the next older one
// tried; with a path, that file must load. Every rank takes the same decision. Collective.
std::optional<CheckpointData> load_resume_checkpoint(const Config& config,
                                                     const Communicator& comm, Denoiser& model,
                                                     torch::optim::Adam& optimizer);

enum class ResumeOutcome {
  kFresh,     // nothing to resume (no --resume, or auto found no usable checkpoint)
  kResumed,   // the trainer continues from the checkpoint
  kFinished,  // the run is already trained and summarised: nothing to do
};

// With config.resume set: loads the checkpoint into `trainer` (its model and optimizer), warns of
// changed options, moves checkpoints of a later, abandoned timeline aside, and says whether the
// run is already finished (a checkpoint at or past --steps and a summary.json: a resubmitted
// finished job must not redo or rewrite anything). Collective.
ResumeOutcome resume_training(const Config& config, const Communicator& comm, Denoiser& model,
                              Trainer& trainer);

}  // namespace dae
