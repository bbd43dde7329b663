// Pairs, the training loop through rt::apply, evaluation.
#include "Preference.h"

#include <cmath>

#include "lossc/torch.h"

namespace lossc::train {

PreferencePairs samplePairs(CausalLm &sft, const SyntheticLanguage &language, int64_t n,
                            double sharpness, torch::Generator &gen) {
  const TaskConfig &tc = language.config();
  PreferencePairs p;
  p.prompts = language.sample(n, tc.promptLength, gen);
  torch::Tensor y1 = sampleCompletions(sft, p.prompts, tc.completionLength, gen);
  torch::Tensor y2 = sampleCompletions(sft, p.prompts, tc.completionLength, gen);
  torch::Tensor r1 = language.reward(y1), r2 = language.reward(y2);
  torch::Tensor firstWins =
      torch::rand({n}, gen, torch::kFloat64) < torch::sigmoid(sharpness * (r1 - r2));
  torch::Tensor w = firstWins.unsqueeze(1);
  p.chosen = torch::where(w, y1, y2);
  p.rejected = torch::where(w, y2, y1);
  p.chosenReward = torch::where(firstWins, r1, r2);
  p.rejectedReward = torch::where(firstWins, r2, r1);
  return p;
}

CausalLm copyModel(CausalLm &model) {
  CausalLm copy(model->config());
  torch::NoGradGuard g;
  auto src = model->named_parameters();
  for (auto &p : copy->named_parameters())
    p.value().copy_(src[p.key()]);
  return copy;
}

CausalLm trainPolicy(CausalLm &sft, const PreferencePairs &pairs,
                     const std::shared_ptr<const rt::Loss> &loss, const std::vector<double> &params,
                     const TrainConfig &config, torch::Generator &gen) {
  CausalLm policy = copyModel(sft);
  torch::Tensor refChosen, refRejected;
  {
    torch::NoGradGuard g;
    refChosen = completionLogProb(sft, pairs.prompts, pairs.chosen).to(torch::kFloat32);
    refRejected = completionLogProb(sft, pairs.prompts, pairs.rejected).to(torch::kFloat32);
  }
  torch::optim::AdamW opt(policy->parameters(),
                          torch::optim::AdamWOptions(config.lr).weight_decay(0.0));
  int64_t n = pairs.prompts.size(0);
  int64_t warmup = std::max<int64_t>(1, int64_t(config.warmupFraction * config.steps));
  for (int64_t step = 0; step < config.steps; ++step) {
    double scale = step < warmup
                       ? double(step + 1) / warmup
                       : 0.5 * (1 + std::cos(M_PI * (step - warmup) /
                                             std::max<int64_t>(1, config.steps - warmup)));
    for (auto &group : opt.param_groups())
      static_cast<torch::optim::AdamWOptions &>(group.options()).lr(config.lr * scale);
    torch::Tensor idx = torch::randint(n, {config.batch}, gen);
    torch::Tensor prompts = pairs.prompts.index({idx});
    torch::Tensor aw = completionLogProb(policy, prompts, pairs.chosen.index({idx}));
    torch::Tensor al = completionLogProb(policy, prompts, pairs.rejected.index({idx}));
    torch::Tensor losses = rt::apply(loss,
                                     {{"policy_chosen_logps", aw},
                                      {"policy_rejected_logps", al},
                                      {"reference_chosen_logps", refChosen.index({idx})},
                                      {"reference_rejected_logps", refRejected.index({idx})}},
                                     params);
    opt.zero_grad();
    losses.mean().backward();
    torch::nn::utils::clip_grad_norm_(policy->parameters(), config.clipNorm);
    opt.step();
  }
  return policy;
}

Evaluation evaluate(CausalLm &model, CausalLm &reference, const SyntheticLanguage &language,
                    const torch::Tensor &prompts, const PreferencePairs &heldOut,
                    torch::Generator &gen) {
  torch::NoGradGuard g;
  Evaluation e;
  torch::Tensor y = sampleCompletions(model, prompts, language.config().completionLength, gen);
  e.meanReward = language.reward(y).mean().item<double>();
  e.kl = (completionLogProb(model, prompts, y) - completionLogProb(reference, prompts, y))
             .mean()
             .item<double>();
  torch::Tensor margin = (completionLogProb(model, heldOut.prompts, heldOut.chosen) -
                          completionLogProb(reference, heldOut.prompts, heldOut.chosen)) -
                         (completionLogProb(model, heldOut.prompts, heldOut.rejected) -
                          completionLogProb(reference, heldOut.prompts, heldOut.rejected));
  e.accuracy = (margin > 0).to(torch::kFloat64).mean().item<double>();
  return e;
}

} // namespace lossc::train
