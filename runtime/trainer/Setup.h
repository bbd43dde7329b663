// Everything a training run starts from, made once and cached: the synthetic language, the SFT
// model pre-trained on it (also the reference), the training and held-out preference pairs and
// the evaluation prompts. Deterministic in its config; the cache file is keyed by the config.
#pragma once

#include <functional>
#include <string>

#include "EmbeddedTask.h"
#include "Preference.h"

namespace lossc::train {

class Communicator;

struct SetupConfig {
  TaskConfig task;
  ModelConfig model;
  int64_t sftSteps = 400, sftBatch = 64;
  double sftLr = 3e-3;
  int64_t trainPairs = 512, heldOutPairs = 256, evalPrompts = 512;
  double labelSharpness = 20; // Bradley-Terry: P(first chosen) = sigmoid(s (r1 - r2))
  uint64_t seed = 11;
};

// A one-line description of everything the setup depends on (also the cache key).
std::string describe(const SetupConfig &config);

struct Setup {
  SyntheticLanguage language;
  CausalLm sft{nullptr};
  PreferencePairs train, heldOut;
  torch::Tensor evalPrompts;
  double sftLoss = 0; // next-token cross-entropy at the end of pre-training, nats
  bool fromCache = false;
};

// Builds the setup, or loads it from cachePath when that file was made with the same config
// (cachePath "" for no cache). With a communicator, rank 0's SFT model and pairs are broadcast
// so that every rank starts from identical tensors. progress(done, total) during pre-training.
Setup prepareSetup(const SetupConfig &config, const std::string &cachePath,
                   Communicator *comm = nullptr,
                   const std::function<void(int64_t, int64_t)> &progress = {});

} // namespace lossc::train
