// The trainer's built-in task, which needs no download (SPEC.md, "The trainer and the embedded
// task"), mirroring the DiscoPOP paper's IMDb setup: a synthetic language (a random
// second-order Markov source over a small vocabulary) stands in for movie reviews, a small
// causal transformer pre-trained on it is the SFT and reference model, and a fixed scorer of a
// completion's tokens returning a probability plays the sentiment classifier. Preference pairs
// are two completions sampled from the SFT model per prompt, labelled by the reward with
// Bradley-Terry noise. Everything is seeded and reproducible.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace lossc::train {

struct TaskConfig {
  int64_t vocab = 16;
  int64_t promptLength = 8, completionLength = 16;
  double concentration = 0.3; // Dirichlet concentration of the source's transition rows
  uint64_t seed = 1;
};

// The synthetic language and the reward.
class SyntheticLanguage {
public:
  explicit SyntheticLanguage(const TaskConfig &config);

  const TaskConfig &config() const { return config_; }
  // n sequences of `length` tokens drawn from the source, int64 [n, length].
  torch::Tensor sample(int64_t n, int64_t length, torch::Generator &gen) const;
  // The source's own log-probability of each sequence's tokens after the first two, [n].
  torch::Tensor logProb(const torch::Tensor &tokens) const;
  // The reward of completions [n, completionLength]: a probability in (0, 1), the "classifier":
  // sigmoid of the mean of fixed per-token weights (some tokens read as positive), scaled.
  torch::Tensor reward(const torch::Tensor &completions) const;

private:
  TaskConfig config_;
  torch::Tensor transitions_; // [V, V, V]: P(x_t | x_{t-2}, x_{t-1})
  torch::Tensor tokenWeight_; // [V]
};

struct ModelConfig {
  int64_t vocab = 16, context = 32, dim = 48, heads = 4, layers = 2;
};

// A small causal transformer language model (pre-norm blocks, learned positions).
class CausalLmImpl : public torch::nn::Module {
public:
  explicit CausalLmImpl(const ModelConfig &config);
  // Logits [n, length, vocab] for tokens [n, length] (length <= context).
  torch::Tensor forward(const torch::Tensor &tokens);
  const ModelConfig &config() const { return config_; }

private:
  ModelConfig config_;
  torch::nn::Embedding token_{nullptr}, position_{nullptr};
  std::vector<torch::nn::LayerNorm> norm1_, norm2_;
  std::vector<torch::nn::Linear> qkv_, proj_, up_, down_;
  torch::nn::LayerNorm final_{nullptr};
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(CausalLm);

// The summed log-probability of each completion given its prompt, [n]; differentiable in the
// model's parameters. prompts [n, P], completions [n, C].
torch::Tensor completionLogProb(CausalLm &model, const torch::Tensor &prompts,
                                const torch::Tensor &completions);

// Samples completions [n, length] after the prompts at temperature 1.
torch::Tensor sampleCompletions(CausalLm &model, const torch::Tensor &prompts, int64_t length,
                                torch::Generator &gen);

// The threads libtorch computes with: its intra-op pool, and OpenBLAS's own pool when OpenBLAS
// is the BLAS (whose threads otherwise spin beside libtorch's: 40% slower on 2 cores).
void setComputeThreads(int n);

// Supervised pre-training on the source's sequences (AdamW, cross-entropy); returns the mean
// next-token loss of the last steps.
double pretrain(CausalLm &model, const SyntheticLanguage &language, int64_t steps, int64_t batch,
                double lr, torch::Generator &gen,
                const std::function<void(int64_t, int64_t)> &progress = {});

} // namespace lossc::train
