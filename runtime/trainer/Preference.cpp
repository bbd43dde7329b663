// Pairs, the training loop through rt::apply (checkpoints, the non-finite guard, data
// parallelism), evaluation.
#include "Preference.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <regex>

#include "Distributed.h"
#include "Files.h"
#include "lossc/sha256.h"
#include "lossc/torch.h"

namespace lossc::train {

namespace fs = std::filesystem;

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

PairLoss compiledPairLoss(std::shared_ptr<const rt::Loss> loss, std::vector<double> params) {
  static const char *kKnown[] = {"policy_chosen_logps",    "policy_rejected_logps",
                                 "reference_chosen_logps", "reference_rejected_logps",
                                 "chosen_lengths",         "rejected_lengths"};
  std::vector<int> slot;
  for (const rt::InputInfo &in : loss->inputs()) {
    auto it = std::find(std::begin(kKnown), std::end(kKnown), in.name);
    if (it == std::end(kKnown))
      throw rt::Error("loss '" + loss->name() + "' has an input '" + in.name +
                      "' that the trainer cannot supply (it supplies policy_chosen_logps, "
                      "policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, "
                      "chosen_lengths, rejected_lengths)");
    slot.push_back(int(it - std::begin(kKnown)));
  }
  return [loss = std::move(loss), params = std::move(params), slot](const PairBatch &b) {
    const torch::Tensor *all[] = {&b.policyChosen,      &b.policyRejected, &b.referenceChosen,
                                  &b.referenceRejected, &b.chosenLengths,  &b.rejectedLengths};
    std::vector<torch::Tensor> inputs;
    for (int s : slot)
      inputs.push_back(*all[s]);
    return rt::apply(loss, inputs, params);
  };
}

namespace {

// ---- checkpoints: DIR/step-00000040.pt, written atomically by rank 0, the last two kept ----

std::string checkpointPath(const std::string &dir, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld.pt", static_cast<long long>(step));
  return (fs::path(dir) / name).string();
}

// The checkpoints in dir by step, newest first; removes temporary files a kill left behind.
std::vector<std::pair<int64_t, std::string>> listCheckpoints(const std::string &dir,
                                                             bool removeTemporaries) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return found;
  static const std::regex kName(R"(step-(\d{8})\.pt)"), kTemp(R"(step-\d{8}\.pt\.tmp-\d+)");
  for (const auto &entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    std::smatch m;
    if (std::regex_match(name, m, kName))
      found.emplace_back(std::stoll(m[1]), entry.path().string());
    else if (removeTemporaries && std::regex_match(name, kTemp))
      fs::remove(entry.path(), ec);
  }
  std::sort(found.begin(), found.end(), std::greater<>());
  return found;
}

struct Counters {
  int64_t step = 0, skipped = 0, badRun = 0;
};

void saveCheckpoint(const std::string &dir, CausalLm &policy, torch::optim::AdamW &opt,
                    const Counters &c, const std::string &fingerprint) {
  fs::create_directories(dir);
  writeAtomically(checkpointPath(dir, c.step), [&](const std::string &tmp) {
    torch::serialize::OutputArchive archive, model, optimizer;
    policy->save(model);
    opt.save(optimizer);
    archive.write("policy", model);
    archive.write("optimizer", optimizer);
    archive.write("counters", torch::tensor({c.step, c.skipped, c.badRun}, torch::kInt64));
    archive.write("fingerprint", c10::IValue(fingerprint));
    archive.save_to(tmp);
  });
  auto all = listCheckpoints(dir, false);
  for (size_t i = 2; i < all.size(); ++i)
    fs::remove(all[i].second);
}

// Loads the newest readable checkpoint; returns false if there is none. A checkpoint of another
// run (a different fingerprint) is an error, not something to silently train on.
bool loadCheckpoint(const std::string &dir, CausalLm &policy, torch::optim::AdamW &opt, Counters &c,
                    const std::string &fingerprint) {
  for (const auto &[step, path] : listCheckpoints(dir, true)) {
    torch::serialize::InputArchive archive, model, optimizer;
    c10::IValue stored;
    try {
      archive.load_from(path);
      archive.read("fingerprint", stored);
    } catch (const c10::Error &) {
      continue; // unreadable: fall back to the one before
    }
    if (stored.toStringRef() != fingerprint)
      throw std::runtime_error("the checkpoint '" + path +
                               "' belongs to a different run (another loss, parameter or "
                               "setting); use a fresh checkpoint directory to start anew");
    archive.read("policy", model);
    archive.read("optimizer", optimizer);
    policy->load(model);
    opt.load(optimizer);
    torch::Tensor counters;
    archive.read("counters", counters);
    c.step = counters[0].item<int64_t>();
    c.skipped = counters[1].item<int64_t>();
    c.badRun = counters[2].item<int64_t>();
    return true;
  }
  return false;
}

double learningRateScale(int64_t step, int64_t steps, double warmupFraction) {
  int64_t warmup = std::max<int64_t>(1, int64_t(warmupFraction * steps));
  if (step < warmup) return double(step + 1) / warmup;
  return 0.5 * (1 + std::cos(M_PI * (step - warmup) / std::max<int64_t>(1, steps - warmup)));
}

} // namespace

TrainResult trainPolicy(CausalLm &sft, const PreferencePairs &pairs, const PairLoss &loss,
                        const TrainConfig &config, const TrainHooks &hooks) {
  Communicator *comm = hooks.comm;
  int rank = comm ? comm->rank() : 0, world = comm ? comm->size() : 1;
  if (config.batch < world || config.batch % world != 0)
    throw std::invalid_argument("the global batch (" + std::to_string(config.batch) +
                                ") must be a multiple of the number of processes (" +
                                std::to_string(world) + ")");
  TrainResult result;
  result.policy = copyModel(sft);
  CausalLm &policy = result.policy;
  std::vector<torch::Tensor> params = policy->parameters();

  torch::Tensor refChosen, refRejected;
  {
    torch::NoGradGuard g;
    refChosen = completionLogProb(sft, pairs.prompts, pairs.chosen).to(torch::kFloat32);
    refRejected = completionLogProb(sft, pairs.prompts, pairs.rejected).to(torch::kFloat32);
  }
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(config.lr).weight_decay(0.0));

  Counters c;
  bool checkpoints = !config.checkpointDir.empty();
  if (checkpoints && loadCheckpoint(config.checkpointDir, policy, opt, c, config.fingerprint))
    result.resumedFrom = c.step;
  if (comm) {
    // Every rank must continue from the same step: the directory is shared, or copied alike.
    torch::Tensor lo = torch::tensor({-c.step}, torch::kInt64), hi = torch::tensor({c.step});
    comm->allReduceMax(lo);
    comm->allReduceMax(hi);
    if (-lo.item<int64_t>() != hi.item<int64_t>())
      throw std::runtime_error("the ranks resumed from different steps (" +
                               std::to_string(-lo.item<int64_t>()) + " to " +
                               std::to_string(hi.item<int64_t>()) +
                               "): every rank must see the same checkpoint directory");
  }

  int64_t n = pairs.prompts.size(0), local = config.batch / world;
  int64_t completion = pairs.chosen.size(1);
  torch::Tensor lengths = torch::full({local}, double(completion), torch::kFloat32);
  int64_t numel = 0;
  for (const torch::Tensor &p : params)
    numel += p.numel();

  while (c.step < config.steps) {
    double scale = learningRateScale(c.step, config.steps, config.warmupFraction);
    for (auto &group : opt.param_groups())
      static_cast<torch::optim::AdamWOptions &>(group.options()).lr(config.lr * scale);
    // The global batch of this step; this rank's shard of it.
    torch::Generator gen = at::detail::createCPUGenerator(config.seed * 1000003 + c.step);
    torch::Tensor idx =
        torch::randint(n, {config.batch}, gen).slice(0, rank * local, (rank + 1) * local);
    torch::Tensor prompts = pairs.prompts.index({idx});
    PairBatch b{completionLogProb(policy, prompts, pairs.chosen.index({idx})),
                completionLogProb(policy, prompts, pairs.rejected.index({idx})),
                refChosen.index({idx}),
                refRejected.index({idx}),
                lengths,
                lengths};
    torch::Tensor losses = loss(b);
    opt.zero_grad();
    torch::Tensor sum = losses.sum();
    (sum / double(config.batch)).backward();

    // One buffer: every gradient, the loss sum and the interrupt flag; summed over the ranks.
    torch::Tensor flat = torch::empty({numel + 2}, torch::kFloat32);
    int64_t at = 0;
    for (const torch::Tensor &p : params) {
      torch::Tensor part = flat.slice(0, at, at + p.numel());
      if (p.grad().defined())
        part.copy_(p.grad().reshape({-1}));
      else
        part.zero_();
      at += p.numel();
    }
    flat[numel] = sum.detach().to(torch::kFloat32);
    flat[numel + 1] = hooks.interrupt && hooks.interrupt->load() ? 1.0f : 0.0f;
    bool reduced = comm && world > 1;
    if (reduced) comm->allReduceSum(flat);
    bool interrupt = flat[numel + 1].item<float>() > 0;
    double meanLoss = flat[numel].item<double>() / double(config.batch);
    bool finite =
        std::isfinite(meanLoss) && torch::isfinite(flat.slice(0, 0, numel)).all().item<bool>();
    if (finite) {
      // The summed gradients back into the parameters (one process: they are there already).
      at = 0;
      for (const torch::Tensor &p : params) {
        if (p.grad().defined()) {
          if (reduced) p.mutable_grad().copy_(flat.slice(0, at, at + p.numel()).view_as(p));
        } else
          p.mutable_grad() = flat.slice(0, at, at + p.numel()).view_as(p).clone();
        at += p.numel();
      }
      torch::nn::utils::clip_grad_norm_(params, config.clipNorm);
      opt.step();
      c.badRun = 0;
    } else {
      ++c.skipped;
      ++c.badRun;
    }
    ++c.step;
    result.lastLoss = finite ? meanLoss : std::nan("");
    if (hooks.progress) hooks.progress({c.step, config.steps, result.lastLoss, c.skipped});
    bool stop = config.maxBadSteps > 0 && c.badRun >= config.maxBadSteps;
    if (checkpoints && rank == 0 && !stop &&
        ((config.checkpointEvery > 0 && c.step % config.checkpointEvery == 0) ||
         c.step == config.steps || interrupt))
      saveCheckpoint(config.checkpointDir, policy, opt, c, config.fingerprint);
    if (interrupt && !stop && c.step < config.steps) {
      result.interrupted = true;
      result.message = "interrupted after step " + std::to_string(c.step);
      break;
    }
    if (stop) {
      result.stopped = true;
      result.message = "training stopped at step " + std::to_string(c.step) + ": " +
                       std::to_string(c.badRun) +
                       " steps in a row had a loss or gradient that is not finite (NaN or "
                       "Inf); " +
                       std::to_string(c.skipped) + " skipped in all";
      break;
    }
  }
  result.stepsDone = c.step;
  result.skipped = c.skipped;
  return result;
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

std::string weightsDigest(CausalLm &model) {
  std::string bytes;
  for (const torch::Tensor &p : model->parameters()) {
    torch::Tensor c = p.detach().contiguous();
    bytes.append(static_cast<const char *>(c.data_ptr()), c.numel() * c.element_size());
  }
  return sha256Hex(bytes);
}

} // namespace lossc::train
