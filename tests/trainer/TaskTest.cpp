// The trainer's embedded task: the synthetic language is reproducible and scored, the causal
// transformer is causal, and pre-training brings it near the source's own entropy.
#include <torch/torch.h>
// doctest after torch: glog's CHECK would otherwise replace doctest's.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "EmbeddedTask.h"
#include "Preference.h"
#include "lossc/jit.h"

using namespace lossc::train;

TEST_CASE(
    "the synthetic language: reproducible samples, finite log-probabilities, rewards in (0, 1)") {
  SyntheticLanguage lang(TaskConfig{});
  torch::Generator g1 = at::detail::createCPUGenerator(5), g2 = at::detail::createCPUGenerator(5);
  torch::Tensor a = lang.sample(64, 24, g1), b = lang.sample(64, 24, g2);
  CHECK(torch::equal(a, b));
  CHECK(a.min().item<int64_t>() >= 0);
  CHECK(a.max().item<int64_t>() < 16);
  torch::Tensor lp = lang.logProb(a);
  CHECK(torch::isfinite(lp).all().item<bool>());
  CHECK((lp < 0).all().item<bool>());
  torch::Tensor r = lang.reward(a.slice(1, 8));
  CHECK(((r > 0) & (r < 1)).all().item<bool>());
  CHECK(r.std().item<double>() > 0.05); // completions differ in reward
}

TEST_CASE("the model is causal: a later token does not change earlier logits") {
  torch::manual_seed(0);
  CausalLm model(ModelConfig{});
  torch::Tensor t = torch::randint(16, {2, 20});
  torch::Tensor u = t.clone();
  u.index_put_({torch::indexing::Slice(), 15}, (t.index({torch::indexing::Slice(), 15}) + 1) % 16);
  torch::NoGradGuard g;
  torch::Tensor lt = model->forward(t), lu = model->forward(u);
  CHECK(lt.sizes() == std::vector<int64_t>{2, 20, 16});
  CHECK(torch::allclose(lt.slice(1, 0, 15), lu.slice(1, 0, 15)));
  CHECK_FALSE(torch::allclose(lt.slice(1, 15), lu.slice(1, 15)));
}

TEST_CASE("pre-training brings the model near the source's entropy; log-probs add up") {
  torch::manual_seed(0);
  TaskConfig tc;
  SyntheticLanguage lang(tc);
  torch::Generator gen = at::detail::createCPUGenerator(7);
  // The source's entropy per predicted token (tokens after the first two).
  torch::Tensor probe = lang.sample(2000, 24, gen);
  double entropy = -lang.logProb(probe).mean().item<double>() / 22;
  CausalLm model(ModelConfig{});
  double loss = pretrain(model, lang, 400, 64, 3e-3, gen);
  MESSAGE("source entropy " << entropy << " nats/token; SFT loss " << loss
                            << " (uniform: " << std::log(16.0) << ")");
  CHECK(loss < std::log(16.0) - 0.5);
  CHECK(loss < entropy + 0.35); // the first two tokens of each sequence are unpredictable
  // completionLogProb equals the sum of the per-token log-softmax it is defined by.
  torch::Tensor prompts = probe.slice(0, 0, 4).slice(1, 0, 8);
  torch::Tensor completions = probe.slice(0, 0, 4).slice(1, 8, 24);
  torch::NoGradGuard g;
  torch::Tensor lp = completionLogProb(model, prompts, completions);
  torch::Tensor logits = model->forward(probe.slice(0, 0, 4).slice(1, 0, 23));
  torch::Tensor all = torch::log_softmax(logits, -1);
  double manual = 0;
  for (int64_t t = 8; t < 24; ++t)
    manual += all.index({0, t - 1, probe.index({0, t}).item<int64_t>()}).item<double>();
  CHECK(lp[0].item<double>() == doctest::Approx(manual).epsilon(1e-5));
  torch::Tensor sampled = sampleCompletions(model, prompts, 16, gen);
  CHECK(sampled.sizes() == std::vector<int64_t>{4, 16});
}

// Preference optimization on the embedded task: pairs from the SFT model labelled by the reward
// with Bradley-Terry noise, a policy trained from SFT through the bridge, evaluated on held-out
// prompts (reward of sampled completions, KL to the SFT model, implicit-reward accuracy).
TEST_CASE("dpo and lrml at beta 0.05 raise the mean reward above the SFT model") {
  torch::manual_seed(0);
  SyntheticLanguage lang(TaskConfig{});
  torch::Generator gen = at::detail::createCPUGenerator(11);
  CausalLm sft(ModelConfig{});
  pretrain(sft, lang, 400, 64, 3e-3, gen);
  PreferencePairs train = samplePairs(sft, lang, 512, 20, gen);
  PreferencePairs heldOut = samplePairs(sft, lang, 256, 20, gen);
  torch::Tensor prompts = lang.sample(512, lang.config().promptLength, gen);
  // The labels follow the reward, with noise.
  double agree =
      (train.chosenReward > train.rejectedReward).to(torch::kFloat64).mean().item<double>();
  CHECK(agree > 0.6);
  CHECK(agree < 0.95);
  torch::Generator evalGen = at::detail::createCPUGenerator(99);
  Evaluation base = evaluate(sft, sft, lang, prompts, heldOut, evalGen);
  CHECK(base.kl == doctest::Approx(0).epsilon(1e-9));
  for (std::string name : {"dpo", "lrml"}) {
    CAPTURE(name);
    lossc::rt::CompileOptions options;
    options.stdlibDir = LOSSC_SOURCE_DIR "/stdlib";
    auto loss = lossc::rt::compile(LOSSC_SOURCE_DIR "/stdlib/" + name + ".loss", options);
    std::vector<double> params = loss->bindParams({{"beta", 0.05}});
    // At lr 1e-3 lrml stays in the basin of its negative-margin minimum (this run: reward
    // 0.34 -> 0.25, held-out accuracy 29%); at 3e-3 the margins leave it and it trains like dpo.
    TrainConfig tc;
    tc.lr = 3e-3;
    TrainResult r = trainPolicy(sft, train, compiledPairLoss(loss, params), tc);
    CHECK(r.stepsDone == tc.steps);
    CHECK(r.skipped == 0);
    CausalLm &policy = r.policy;
    torch::Generator g = at::detail::createCPUGenerator(99);
    Evaluation e = evaluate(policy, sft, lang, prompts, heldOut, g);
    MESSAGE(name << ": reward " << base.meanReward << " -> " << e.meanReward << ", KL " << e.kl
                 << ", held-out accuracy " << e.accuracy);
    CHECK(e.meanReward > base.meanReward + 0.02);
    CHECK(e.kl > 0);
  }
}

int main(int argc, char **argv) {
  at::set_num_threads(1);
  doctest::Context context(argc, argv);
  return context.run();
}
