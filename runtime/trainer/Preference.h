// Preference optimization on the embedded task: preference pairs sampled from the SFT model and
// labelled by the reward with Bradley-Terry noise, a policy trained from the SFT model with any
// compiled loss through the libtorch bridge (reference log-probabilities precomputed; AdamW with
// linear warmup and cosine decay; gradient clipping), and its evaluation on held-out prompts.
#pragma once

#include <memory>
#include <vector>

#include "EmbeddedTask.h"
#include "lossc/runtime.h"

namespace lossc::train {

struct PreferencePairs {
  torch::Tensor prompts, chosen, rejected;    // int64 [n, P], [n, C], [n, C]
  torch::Tensor chosenReward, rejectedReward; // [n]
};

// Two completions per prompt from the model; the first is chosen with probability
// sigmoid(sharpness * (r1 - r2)), as noisy human labels would.
PreferencePairs samplePairs(CausalLm &sft, const SyntheticLanguage &language, int64_t n,
                            double sharpness, torch::Generator &gen);

// A copy of a model's parameters in a fresh model of the same shape.
CausalLm copyModel(CausalLm &model);

struct TrainConfig {
  int64_t steps = 120, batch = 32;
  double lr = 1e-3, warmupFraction = 0.1, clipNorm = 1.0;
};

struct Evaluation {
  double meanReward; // of completions sampled from the model on held-out prompts
  double kl;         // KL(model || reference), nats per sequence: E_{y ~ model}[log p - log q]
  double accuracy;   // held-out pairs whose implicit reward margin prefers the chosen one
};

// Trains a policy initialised from `sft` with `loss` (its inputs: the four pairwise log-prob
// inputs, by name) at `params`; returns the policy.
CausalLm trainPolicy(CausalLm &sft, const PreferencePairs &pairs,
                     const std::shared_ptr<const rt::Loss> &loss, const std::vector<double> &params,
                     const TrainConfig &config, torch::Generator &gen);

Evaluation evaluate(CausalLm &model, CausalLm &reference, const SyntheticLanguage &language,
                    const torch::Tensor &prompts, const PreferencePairs &heldOut,
                    torch::Generator &gen);

} // namespace lossc::train
