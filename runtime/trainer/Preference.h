// Preference optimization on the embedded task: preference pairs sampled from the SFT model and
// labelled by the reward with Bradley-Terry noise, a policy trained from the SFT model with any
// compiled loss through the libtorch bridge, and its evaluation on held-out prompts.
//
// Training: reference log-probabilities precomputed; AdamW with linear warmup and cosine decay;
// gradient clipping; each step's batch drawn from a generator seeded by (seed, step), so a run
// resumed from a checkpoint continues exactly; a step whose loss or gradient is not finite is
// skipped and counted, and training stops after `maxBadSteps` such steps in a row; optionally
// data parallel over processes (each rank its shard of every global batch, gradients summed).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "EmbeddedTask.h"
#include "lossc/runtime.h"

namespace lossc::train {

class Communicator;

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

// What a preference loss sees of a batch: the inputs of the `pairwise`, `pairwise_lengths` and
// `reference_free` presets (completions all have the task's completion length).
struct PairBatch {
  torch::Tensor policyChosen, policyRejected, referenceChosen, referenceRejected; // [n]
  torch::Tensor chosenLengths, rejectedLengths;                                   // [n]
};
// Per-example losses [n], differentiable in the policy log-probabilities.
using PairLoss = std::function<torch::Tensor(const PairBatch &)>;

// A compiled loss through the bridge, its inputs bound by name; throws rt::Error if the loss
// has an input the trainer cannot supply.
PairLoss compiledPairLoss(std::shared_ptr<const rt::Loss> loss, std::vector<double> params);

struct TrainConfig {
  int64_t steps = 120, batch = 32; // batch: the global batch, over all ranks
  double lr = 3e-3, warmupFraction = 0.1, clipNorm = 1.0;
  uint64_t seed = 1;           // the order of batches
  int64_t maxBadSteps = 5;     // non-finite steps in a row before training stops
  std::string checkpointDir;   // "" for none
  int64_t checkpointEvery = 0; // steps; 0 for none
  std::string fingerprint;     // identifies the run; a checkpoint of another is refused
};

struct TrainStatus {
  int64_t step = 0, steps = 0; // steps done (of steps)
  double loss = 0;             // the last step's mean loss (NaN if it was skipped)
  int64_t skipped = 0;         // non-finite steps skipped so far
};

struct TrainResult {
  CausalLm policy{nullptr};
  int64_t stepsDone = 0, skipped = 0;
  int64_t resumedFrom = -1; // the step of the checkpoint resumed from; -1 if none
  bool stopped = false;     // by the non-finite guard
  bool interrupted = false; // by TrainHooks::interrupt (a checkpoint was written, if enabled)
  std::string message;      // why it stopped
  double lastLoss = 0;
};

struct TrainHooks {
  Communicator *comm = nullptr;                      // data parallel when set
  std::function<void(const TrainStatus &)> progress; // after every step
  // Polled every step (a signal handler sets it): training stops after the step, writes a
  // checkpoint when checkpoints are on, and returns with `interrupted`. With several processes
  // the ranks agree on the step (any rank's flag stops all).
  const std::atomic<bool> *interrupt = nullptr;
};

TrainResult trainPolicy(CausalLm &sft, const PreferencePairs &pairs, const PairLoss &loss,
                        const TrainConfig &config, const TrainHooks &hooks = {});

struct Evaluation {
  double meanReward; // of completions sampled from the model on held-out prompts
  double kl;         // KL(model || reference), nats per sequence: E_{y ~ model}[log p - log q]
  double accuracy;   // held-out pairs whose implicit reward margin prefers the chosen one
};

Evaluation evaluate(CausalLm &model, CausalLm &reference, const SyntheticLanguage &language,
                    const torch::Tensor &prompts, const PreferencePairs &heldOut,
                    torch::Generator &gen);

// A SHA-256 of the parameters' bytes, in order: equal weights, equal digest.
std::string weightsDigest(CausalLm &model);

} // namespace lossc::train
