#include "Setup.h"

#include <filesystem>
#include <sstream>

#include "Distributed.h"
#include "Files.h"
#include "lossc/text.h"

namespace lossc::train {

std::string describe(const SetupConfig &c) {
  std::ostringstream s;
  s << "task(vocab=" << c.task.vocab << " prompt=" << c.task.promptLength
    << " completion=" << c.task.completionLength
    << " concentration=" << formatShortest(c.task.concentration) << " seed=" << c.task.seed
    << ") model(context=" << c.model.context << " dim=" << c.model.dim << " heads=" << c.model.heads
    << " layers=" << c.model.layers << ") sft(steps=" << c.sftSteps << " batch=" << c.sftBatch
    << " lr=" << formatShortest(c.sftLr) << ") pairs(train=" << c.trainPairs
    << " heldout=" << c.heldOutPairs << " prompts=" << c.evalPrompts
    << " sharpness=" << formatShortest(c.labelSharpness) << ") seed=" << c.seed;
  return s.str();
}

namespace {

const char *kPairFields[] = {"prompts", "chosen", "rejected", "chosenReward", "rejectedReward"};

torch::Tensor *pairField(PreferencePairs &p, int i) {
  torch::Tensor *f[] = {&p.prompts, &p.chosen, &p.rejected, &p.chosenReward, &p.rejectedReward};
  return f[i];
}

void save(const std::string &path, const std::string &key, Setup &s) {
  std::error_code ec;
  if (auto dir = std::filesystem::path(path).parent_path(); !dir.empty())
    std::filesystem::create_directories(dir, ec);
  writeAtomically(path, [&](const std::string &tmp) {
    torch::serialize::OutputArchive archive, model;
    s.sft->save(model);
    archive.write("sft", model);
    archive.write("config", c10::IValue(key));
    archive.write("sftLoss", torch::tensor({s.sftLoss}, torch::kFloat64));
    archive.write("evalPrompts", s.evalPrompts);
    for (int i = 0; i < 5; ++i) {
      archive.write(std::string("train.") + kPairFields[i], *pairField(s.train, i));
      archive.write(std::string("heldOut.") + kPairFields[i], *pairField(s.heldOut, i));
    }
    archive.save_to(tmp);
  });
}

bool load(const std::string &path, const std::string &key, Setup &s) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return false;
  try {
    torch::serialize::InputArchive archive, model;
    archive.load_from(path);
    c10::IValue stored;
    archive.read("config", stored);
    if (stored.toStringRef() != key) return false;
    archive.read("sft", model);
    s.sft->load(model);
    torch::Tensor loss;
    archive.read("sftLoss", loss);
    s.sftLoss = loss.item<double>();
    archive.read("evalPrompts", s.evalPrompts);
    for (int i = 0; i < 5; ++i) {
      archive.read(std::string("train.") + kPairFields[i], *pairField(s.train, i));
      archive.read(std::string("heldOut.") + kPairFields[i], *pairField(s.heldOut, i));
    }
    return true;
  } catch (const c10::Error &) {
    return false; // unreadable or from an older layout: rebuild it
  }
}

} // namespace

Setup prepareSetup(const SetupConfig &config, const std::string &cachePath, Communicator *comm,
                   const std::function<void(int64_t, int64_t)> &progress) {
  Setup s{SyntheticLanguage(config.task)};
  ModelConfig mc = config.model;
  mc.vocab = config.task.vocab;
  torch::manual_seed(config.seed);
  s.sft = CausalLm(mc);
  std::string key = describe(config);
  if (!cachePath.empty() && load(cachePath, key, s)) {
    s.fromCache = true;
  } else {
    torch::Generator gen = at::detail::createCPUGenerator(config.seed);
    s.sftLoss =
        pretrain(s.sft, s.language, config.sftSteps, config.sftBatch, config.sftLr, gen, progress);
    s.train = samplePairs(s.sft, s.language, config.trainPairs, config.labelSharpness, gen);
    s.heldOut = samplePairs(s.sft, s.language, config.heldOutPairs, config.labelSharpness, gen);
    s.evalPrompts = s.language.sample(config.evalPrompts, config.task.promptLength, gen);
    if (!cachePath.empty() && (!comm || comm->rank() == 0)) save(cachePath, key, s);
  }
  if (comm && comm->size() > 1) {
    torch::NoGradGuard g;
    for (torch::Tensor p : s.sft->parameters())
      comm->broadcast(p);
    for (int i = 0; i < 5; ++i)
      comm->broadcast(*pairField(s.train, i));
  }
  return s;
}

} // namespace lossc::train
