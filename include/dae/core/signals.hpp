// defines: dae::install_stop_handlers, dae::stop_requested, dae::kExitPreempted
#pragma once

namespace dae {

// EX_TEMPFAIL: "stopped on request, checkpoint written, run me again with --resume auto".
inline constexpr int kExitPreempted = 75;

// SIGUSR1 (Slurm's --signal) and SIGTERM set a flag; the trainer acts on it at the next step
// boundary, agreed across ranks. A second signal only sets the flag again.
void install_stop_handlers();
bool stop_requested();

}  // namespace dae
