// The embedded task: the Markov source, the reward, the causal transformer, sampling and SFT.
#include "EmbeddedTask.h"

#include <dlfcn.h>

#include <cmath>

namespace lossc::train {

namespace {
torch::Generator seeded(uint64_t seed) {
  torch::Generator g = at::detail::createCPUGenerator(seed);
  return g;
}

// Dirichlet(alpha) rows as normalised Gamma(alpha) draws.
torch::Tensor dirichletRows(int64_t rows, int64_t cols, double alpha, torch::Generator &gen) {
  torch::Tensor g = at::_standard_gamma(torch::full({rows, cols}, alpha, torch::kFloat64), gen);
  g = g + 1e-12;
  return g / g.sum(1, true);
}
} // namespace

SyntheticLanguage::SyntheticLanguage(const TaskConfig &config) : config_(config) {
  torch::Generator gen = seeded(config.seed);
  int64_t v = config.vocab;
  transitions_ = dirichletRows(v * v, v, config.concentration, gen).reshape({v, v, v});
  tokenWeight_ = torch::randn({v}, gen, torch::kFloat64);
}

torch::Tensor SyntheticLanguage::sample(int64_t n, int64_t length, torch::Generator &gen) const {
  int64_t v = config_.vocab;
  torch::Tensor out = torch::empty({n, length}, torch::kInt64);
  out.select(1, 0).copy_(torch::randint(v, {n}, gen));
  if (length > 1) out.select(1, 1).copy_(torch::randint(v, {n}, gen));
  for (int64_t t = 2; t < length; ++t) {
    torch::Tensor probs = transitions_.index({out.select(1, t - 2), out.select(1, t - 1)});
    out.select(1, t).copy_(torch::multinomial(probs, 1, true, gen).squeeze(1));
  }
  return out;
}

torch::Tensor SyntheticLanguage::logProb(const torch::Tensor &tokens) const {
  int64_t length = tokens.size(1);
  torch::Tensor lp = torch::zeros({tokens.size(0)}, torch::kFloat64);
  for (int64_t t = 2; t < length; ++t) {
    torch::Tensor p =
        transitions_.index({tokens.select(1, t - 2), tokens.select(1, t - 1), tokens.select(1, t)});
    lp += torch::log(p);
  }
  return lp;
}

torch::Tensor SyntheticLanguage::reward(const torch::Tensor &completions) const {
  torch::Tensor w = tokenWeight_.index({completions}); // [n, C]
  return torch::sigmoid(3.0 * w.mean(1));
}

CausalLmImpl::CausalLmImpl(const ModelConfig &config) : config_(config) {
  token_ = register_module("token", torch::nn::Embedding(config.vocab, config.dim));
  position_ = register_module("position", torch::nn::Embedding(config.context, config.dim));
  for (int64_t l = 0; l < config.layers; ++l) {
    std::string s = std::to_string(l);
    norm1_.push_back(register_module(
        "norm1_" + s, torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.dim}))));
    norm2_.push_back(register_module(
        "norm2_" + s, torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.dim}))));
    qkv_.push_back(register_module("qkv_" + s, torch::nn::Linear(config.dim, 3 * config.dim)));
    proj_.push_back(register_module("proj_" + s, torch::nn::Linear(config.dim, config.dim)));
    up_.push_back(register_module("up_" + s, torch::nn::Linear(config.dim, 4 * config.dim)));
    down_.push_back(register_module("down_" + s, torch::nn::Linear(4 * config.dim, config.dim)));
  }
  final_ =
      register_module("final", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.dim})));
  head_ = register_module("head", torch::nn::Linear(config.dim, config.vocab));
}

torch::Tensor CausalLmImpl::forward(const torch::Tensor &tokens) {
  int64_t n = tokens.size(0), len = tokens.size(1), d = config_.dim, h = config_.heads;
  TORCH_CHECK(len <= config_.context, "sequence longer than the model's context");
  torch::Tensor pos = torch::arange(len, torch::kInt64);
  torch::Tensor x = token_(tokens) + position_(pos).unsqueeze(0);
  torch::Tensor mask = torch::ones({len, len}, torch::kBool).triu(1); // true above the diagonal
  for (int64_t l = 0; l < config_.layers; ++l) {
    torch::Tensor qkv = qkv_[l](norm1_[l](x)).view({n, len, 3, h, d / h}).permute({2, 0, 3, 1, 4});
    torch::Tensor q = qkv[0], k = qkv[1], v = qkv[2]; // [n, h, len, d/h]
    torch::Tensor att = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(d / h));
    att = torch::softmax(att.masked_fill(mask, -1e9), -1);
    torch::Tensor y = torch::matmul(att, v).permute({0, 2, 1, 3}).reshape({n, len, d});
    x = x + proj_[l](y);
    x = x + down_[l](torch::gelu(up_[l](norm2_[l](x))));
  }
  return head_(final_(x));
}

torch::Tensor completionLogProb(CausalLm &model, const torch::Tensor &prompts,
                                const torch::Tensor &completions) {
  torch::Tensor tokens = torch::cat({prompts, completions}, 1);
  int64_t p = prompts.size(1), c = completions.size(1);
  // Position t predicts token t + 1: the completion's tokens are predicted from p - 1 .. p + c - 2.
  torch::Tensor logits = model->forward(tokens.slice(1, 0, p + c - 1)).slice(1, p - 1, p + c - 1);
  torch::Tensor lp = torch::log_softmax(logits, -1).gather(2, completions.unsqueeze(2)).squeeze(2);
  return lp.sum(1);
}

torch::Tensor sampleCompletions(CausalLm &model, const torch::Tensor &prompts, int64_t length,
                                torch::Generator &gen) {
  torch::NoGradGuard noGrad;
  torch::Tensor tokens = prompts.clone();
  for (int64_t t = 0; t < length; ++t) {
    torch::Tensor logits = model->forward(tokens).select(1, tokens.size(1) - 1);
    torch::Tensor next =
        torch::multinomial(torch::softmax(logits.to(torch::kFloat64), -1), 1, true, gen);
    tokens = torch::cat({tokens, next}, 1);
  }
  return tokens.slice(1, prompts.size(1));
}

double pretrain(CausalLm &model, const SyntheticLanguage &language, int64_t steps, int64_t batch,
                double lr, torch::Generator &gen,
                const std::function<void(int64_t, int64_t)> &progress) {
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(lr).weight_decay(0.01));
  int64_t len = language.config().promptLength + language.config().completionLength;
  double recent = 0;
  int64_t counted = 0;
  for (int64_t step = 0; step < steps; ++step) {
    torch::Tensor seq = language.sample(batch, len, gen);
    torch::Tensor logits = model->forward(seq.slice(1, 0, len - 1));
    torch::Tensor loss = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(2)}),
                                                              seq.slice(1, 1, len).reshape({-1}));
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (step >= steps - 20) recent += loss.item<double>(), ++counted;
    if (progress) progress(step + 1, steps);
  }
  return recent / std::max<int64_t>(counted, 1);
}

void setComputeThreads(int n) {
  at::set_num_threads(n);
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    set(n);
}

} // namespace lossc::train
