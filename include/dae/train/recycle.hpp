// defines: dae::recycle_dead_channels (dead ReLU channels given fresh weights, as ReDo recycles
//          dormant neurons: Sokar et al., "The Dormant Neuron Phenomenon in Deep RL", 2023)
#pragma once

#include <torch/torch.h>

#include <vector>

#include "dae/model/model.hpp"

namespace dae {

// Every channel whose entry in `peaks` (channel_peaks' order, reduced over the batches looked at)
// is 0 gets the incoming weights and bias of the same channel of `fresh` (a model made as
// `model` was, e.g. by make_seeded_model) and zero outgoing weights; in every slice it touches,
// Adam's first moment starts again from zero and its second moment takes the mean of its
// parameter's, so the first updates have the usual size. On the images the channel was dead for, the network
// computes exactly what it did before (the dead channel gave 0, the fresh one is read by
// nothing yet), and the channel has a gradient again: its outgoing weights learn first, then it.
// (A dead ReLU output has no outgoing weights: it restarts, and the output moves from 0.)
// Returns the channels recycled per layer.
std::vector<DeadChannels> recycle_dead_channels(Denoiser& model, Denoiser& fresh,
                                                torch::optim::Adam& optimizer,
                                                const torch::Tensor& peaks);

}  // namespace dae
