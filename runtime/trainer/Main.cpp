// lossc-train: preference optimization on the embedded task with compiled losses.
//
// Trains a policy from the SFT model with each loss at each beta, evaluates it on held-out
// prompts (mean reward, KL to the reference, held-out preference accuracy), prints a table
// against the SFT model and writes results (JSON and CSV) and the reward-KL frontier (SVG).
#include <boost/program_options.hpp>
#include <torch/torch.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "Distributed.h"
#include "Files.h"
#include "Json.h"
#include "Plot.h"
#include "Preference.h"
#include "Setup.h"
#include "Version.h"
#include "lossc/jit.h"
#include "lossc/text.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace lossc;
using namespace lossc::train;

namespace {

constexpr int kExitOk = 0, kExitFailed = 1, kExitUsage = 2;

const char *kUsage =
    "usage: lossc-train [options]\n"
    "\n"
    "Preference optimization on the embedded task (a synthetic language, a small causal\n"
    "transformer pre-trained on it as the SFT and reference model, a programmatic reward) with\n"
    "compiled losses. Each --loss is trained at each --beta from the SFT model, then evaluated on\n"
    "held-out prompts: mean reward of sampled completions, KL(policy || reference) in nats per\n"
    "completion (the mean of log pi(y) - log ref(y) over y sampled from the policy), and the\n"
    "held-out preference accuracy of the implicit reward.\n"
    "\n"
    "  lossc-train --loss dpo --beta 0.05\n"
    "  lossc-train --loss dpo --loss lrml --beta 0.01,0.05,0.1,0.5 --results r.json --plot f.svg\n"
    "  lossc-train --config run.ini          (options as `name = value` lines)\n"
    "\n"
    "A loss is a stdlib name (dpo), a .loss file (JIT-compiled in process) or a shared object\n"
    "from `lossc FILE.loss -o FILE.so`. With --checkpoint-dir, each run checkpoints into\n"
    "DIR/<loss>-beta-<beta>/ and a rerun of the same command resumes where it stopped.\n"
    "Data parallel: start one process per rank with --world-size, --rank, --master-addr and\n"
    "--master-port (or WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT); rank 0 reports.\n"
    "SIGINT or SIGTERM stops training after the current step and writes a checkpoint.\n"
    "Exit status: 0 success, 1 a run failed or was stopped by the non-finite guard, 2 usage,\n"
    "130 or 143 interrupted by SIGINT or SIGTERM.\n";

int usageError(const std::string &message) {
  std::cerr << "lossc-train: error: " << message << "\ntry 'lossc-train --help'\n";
  return kExitUsage;
}

std::string fixed(double v, int decimals) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string seconds(double s) {
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%.0fs", s);
  else
    std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  return buf;
}

// A progress bar on a terminal (redrawn at most ten times a second), a line every tenth of
// the work otherwise (logs), nothing when disabled.
class Progress {
public:
  enum Mode { Auto, Always, Never };
  Progress(Mode mode, bool active)
      : tty_(mode == Always || (mode == Auto && ::isatty(STDERR_FILENO))),
        enabled_(active && mode != Never) {}

  void start(const std::string &label, int64_t total) {
    label_ = label;
    total_ = total;
    lastDecile_ = -1;
    begin_ = last_ = Clock::now();
  }
  void update(int64_t done, const std::string &extra = "") {
    if (!enabled_ || total_ <= 0) return;
    auto now = Clock::now();
    double elapsed = std::chrono::duration<double>(now - begin_).count();
    double rate = elapsed > 0 ? done / elapsed : 0;
    std::string eta = rate > 0 ? seconds((total_ - done) / rate) : "?";
    char stats[160];
    std::snprintf(stats, sizeof stats, "%lld/%lld  %.1f/s  ETA %s", (long long)done,
                  (long long)total_, rate, eta.c_str());
    if (tty_) {
      if (done < total_ && now - last_ < std::chrono::milliseconds(100)) return;
      last_ = now;
      int width = 24, filled = int(width * done / total_);
      std::fprintf(stderr, "\r\033[K%-28s [%s%s] %s %s", label_.c_str(),
                   std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
                   stats, extra.c_str());
      if (done == total_)
        std::fprintf(stderr, "\r\033[K%s: done in %s\n", label_.c_str(), seconds(elapsed).c_str());
    } else {
      int decile = int(10 * done / total_);
      if (decile == lastDecile_) return;
      lastDecile_ = decile;
      std::fprintf(stderr, "%s: %s %s\n", label_.c_str(), stats, extra.c_str());
    }
    std::fflush(stderr);
  }

private:
  using Clock = std::chrono::steady_clock;
  bool tty_, enabled_;
  std::string label_;
  int64_t total_ = 0;
  int lastDecile_ = -1;
  Clock::time_point begin_, last_;
};

std::shared_ptr<const rt::Loss> loadLoss(const std::string &spec, const std::string &stdlibDir) {
  std::string path = spec;
  bool plainName = spec.find('/') == std::string::npos && spec.find('.') == std::string::npos;
  if (plainName) {
    std::string dir = stdlibDir.empty() ? rt::defaultStdlibDirectory() : stdlibDir;
    path = (fs::path(dir) / (spec + ".loss")).string();
    if (!fs::exists(path))
      throw rt::Error("'" + spec + "' is not a stdlib loss (no " + path +
                      ") nor a .loss or .so file");
  }
  if (!fs::exists(path)) throw rt::Error("no such file: '" + path + "'");
  rt::CompileOptions options;
  options.stdlibDir = stdlibDir;
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".so") == 0) return rt::Loss::open(path);
  return rt::compile(path, options);
}

struct Run {
  std::string loss, label;
  double beta = NAN;
  uint64_t seed = 1;
  std::vector<std::pair<std::string, double>> params;
  Evaluation eval{NAN, NAN, NAN};
  TrainResult train;
  double seconds = 0;
  std::string policyDigest, error;
};

// The runs of one loss at one beta over the seeds: means and standard deviations of the
// completed ones.
struct Cell {
  std::string loss;
  double beta;
  int completed = 0, total = 0;
  double reward = 0, kl = 0, accuracy = 0, rewardSd = 0, klSd = 0;
};

std::vector<Cell> aggregate(const std::vector<Run> &runs) {
  std::vector<Cell> cells;
  std::vector<std::vector<const Run *>> members;
  for (const Run &r : runs) {
    size_t i = 0;
    while (i < cells.size() &&
           !(cells[i].loss == r.loss &&
             (cells[i].beta == r.beta || (std::isnan(cells[i].beta) && std::isnan(r.beta)))))
      ++i;
    if (i == cells.size()) cells.push_back({r.loss, r.beta}), members.emplace_back();
    members[i].push_back(&r);
  }
  for (size_t i = 0; i < cells.size(); ++i) {
    Cell &c = cells[i];
    c.total = int(members[i].size());
    std::vector<const Run *> ok;
    for (const Run *r : members[i])
      if (!r->train.stopped && r->error.empty()) ok.push_back(r);
    c.completed = int(ok.size());
    if (ok.empty()) {
      c.reward = c.kl = c.accuracy = NAN;
      continue;
    }
    for (const Run *r : ok)
      c.reward += r->eval.meanReward / ok.size(), c.kl += r->eval.kl / ok.size(),
          c.accuracy += r->eval.accuracy / ok.size();
    for (const Run *r : ok)
      c.rewardSd += std::pow(r->eval.meanReward - c.reward, 2),
          c.klSd += std::pow(r->eval.kl - c.kl, 2);
    c.rewardSd = ok.size() > 1 ? std::sqrt(c.rewardSd / (ok.size() - 1)) : 0;
    c.klSd = ok.size() > 1 ? std::sqrt(c.klSd / (ok.size() - 1)) : 0;
  }
  return cells;
}

// A number, or null where there is none (a run the guard stopped has no evaluation).
void numberOrNull(JsonWriter &w, std::string_view key, double v) {
  w.key(key);
  if (std::isnan(v))
    w.null();
  else
    w.value(v);
}

std::string resultsJson(const std::string &setup, const TrainConfig &tc, const Evaluation &sft,
                        const std::vector<Run> &runs, const std::vector<Cell> &cells) {
  std::string out;
  JsonWriter w(out, 2);
  w.beginObject().field("schema", "lossc.train/1").field("setup", setup);
  w.key("training").beginObject();
  w.field("steps", tc.steps).field("batch", tc.batch).field("lr", tc.lr);
  w.field("warmup_fraction", tc.warmupFraction).field("clip_norm", tc.clipNorm).endObject();
  w.field("kl", "KL(policy || reference), nats per completion: the mean over completions y "
                "sampled from the policy of log pi(y|x) - log ref(y|x)");
  w.key("sft").beginObject().field("reward", sft.meanReward).field("kl", 0.0).endObject();
  w.key("runs").beginArray();
  for (const Run &r : runs) {
    w.beginObject().field("loss", r.loss);
    numberOrNull(w, "beta", r.beta);
    w.field("seed", r.seed).key("params").beginObject();
    for (const auto &[name, value] : r.params)
      w.field(name, value);
    w.endObject();
    numberOrNull(w, "reward", r.eval.meanReward);
    numberOrNull(w, "kl", r.eval.kl);
    numberOrNull(w, "accuracy", r.eval.accuracy);
    w.field("steps", r.train.stepsDone).field("skipped_steps", r.train.skipped);
    w.field("stopped", r.train.stopped).field("seconds", r.seconds);
    w.field("policy_sha256", r.policyDigest).key("error");
    if (r.error.empty())
      w.null();
    else
      w.value(r.error);
    w.endObject();
  }
  w.endArray().key("summary").beginArray();
  for (const Cell &c : cells) {
    w.beginObject().field("loss", c.loss);
    numberOrNull(w, "beta", c.beta);
    w.field("runs", c.total).field("completed", c.completed);
    numberOrNull(w, "reward", c.reward);
    numberOrNull(w, "reward_sd", c.rewardSd);
    numberOrNull(w, "kl", c.kl);
    numberOrNull(w, "kl_sd", c.klSd);
    numberOrNull(w, "accuracy", c.accuracy);
    w.endObject();
  }
  w.endArray().endObject();
  return out + "\n";
}

std::string resultsCsv(const Evaluation &sft, const std::vector<Run> &runs) {
  std::ostringstream c;
  c.precision(10);
  c << "loss,beta,seed,reward,kl,accuracy,steps,skipped_steps,stopped,seconds\n";
  c << "sft,,," << sft.meanReward << ",0,,,,,\n";
  for (const Run &r : runs)
    c << r.loss << "," << r.beta << "," << r.seed << "," << r.eval.meanReward << "," << r.eval.kl
      << "," << r.eval.accuracy << "," << r.train.stepsDone << "," << r.train.skipped << ","
      << (r.train.stopped ? 1 : 0) << "," << r.seconds << "\n";
  return c.str();
}

std::string frontierSvg(const Evaluation &sft, const std::vector<Cell> &cells,
                        const std::vector<Run> &runs, bool showRuns, const std::string &subtitle) {
  std::vector<FrontierSeries> series;
  std::map<std::string, size_t> index;
  for (const Cell &c : cells) {
    if (c.completed == 0) continue;
    auto [it, fresh] = index.emplace(c.loss, series.size());
    if (fresh) series.push_back({c.loss, {}});
    series[it->second].points.push_back(
        {c.kl, c.reward, std::isnan(c.beta) ? "" : "β " + formatSignificant(c.beta, 3)});
  }
  for (const Run &r : runs)
    if (showRuns && !r.train.stopped && r.error.empty())
      series[index.at(r.loss)].runs.push_back({r.eval.kl, r.eval.meanReward, ""});
  // Every point's beta would crowd where the curves meet: label each series' two ends.
  for (FrontierSeries &s : series)
    for (size_t k = 1; k + 1 < s.points.size(); ++k)
      s.points[k].label.clear();
  FrontierPoint base{0, sft.meanReward, "SFT"};
  return renderFrontierSvg("reward against KL to the reference", subtitle,
                           "KL(policy || reference), nats per completion", "mean reward", series,
                           &base);
}

std::vector<double> parseList(const std::string &text, const std::string &what) {
  std::vector<double> out;
  std::stringstream s(text);
  std::string item;
  while (std::getline(s, item, ',')) {
    char *end = nullptr;
    double v = std::strtod(item.c_str(), &end);
    if (item.empty() || *end || !std::isfinite(v))
      throw po::error(what + ": '" + item + "' is not a number");
    out.push_back(v);
  }
  if (out.empty()) throw po::error(what + " is empty");
  return out;
}

std::pair<std::string, double> parseParam(const std::string &text) {
  std::pair<std::string, double> setting;
  if (!parseSetting(text, setting)) throw po::error("--param wants NAME=VALUE, not '" + text + "'");
  return setting;
}

// SIGINT and SIGTERM (Ctrl-C, a scheduler's preemption) stop training after the current step,
// with a checkpoint; a second signal acts as usual (SA_RESETHAND).
std::atomic<bool> gInterrupt{false};
volatile sig_atomic_t gSignal = 0;

void onSignal(int sig) {
  gSignal = sig;
  gInterrupt = true;
}

void catchSignals() {
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

std::string envOr(const char *name, const std::string &fallback) {
  const char *v = std::getenv(name);
  return v && *v ? v : fallback;
}

// The results on stdout: a row per run, the policies' digests, and with several seeds a row per
// loss and beta (mean +- sd).
void printTables(const Evaluation &sft, const std::vector<Run> &runs,
                 const std::vector<Cell> &cells, size_t seedCount, int64_t evalPrompts) {
  std::printf("\n%-22s %9s %13s %9s %7s %8s\n", "model", "reward", "KL (nats)", "accuracy",
              "skipped", "time");
  std::printf("%-22s %9s %13s %9s %7s %8s\n", "sft (reference)", fixed(sft.meanReward, 3).c_str(),
              "0", "-", "-", "-");
  for (const Run &r : runs)
    if (r.train.stopped)
      std::printf("%-22s %9s %13s %9s %7lld %8s\n", r.label.c_str(), "stopped", "-", "-",
                  (long long)r.train.skipped, seconds(r.seconds).c_str());
    else
      std::printf("%-22s %9s %13s %9s %7lld %8s\n", r.label.c_str(),
                  fixed(r.eval.meanReward, 3).c_str(), fixed(r.eval.kl, 2).c_str(),
                  std::isnan(r.eval.accuracy) ? "-"
                                              : (fixed(100 * r.eval.accuracy, 1) + "%").c_str(),
                  (long long)r.train.skipped, seconds(r.seconds).c_str());
  std::printf("\nreward: mean over %lld held-out prompts of a sampled completion's reward; KL: "
              "KL(policy || reference), nats per completion; accuracy: held-out pairs whose "
              "implicit reward margin prefers the chosen completion.\n",
              (long long)evalPrompts);
  for (const Run &r : runs)
    std::printf("policy %s: sha256 %s\n", r.label.c_str(), r.policyDigest.c_str());
  if (seedCount > 1) {
    std::printf("\nover %zu seeds of the batch order (mean +- sd):\n%-16s %17s %17s %9s\n",
                seedCount, "loss, beta", "reward", "KL (nats)", "accuracy");
    for (const Cell &c : cells)
      std::printf("%-16s %17s %17s %9s%s\n",
                  (c.loss + " " + (std::isnan(c.beta) ? "" : formatSignificant(c.beta, 4))).c_str(),
                  (fixed(c.reward, 3) + " +- " + fixed(c.rewardSd, 3)).c_str(),
                  (fixed(c.kl, 2) + " +- " + fixed(c.klSd, 2)).c_str(),
                  (fixed(100 * c.accuracy, 1) + "%").c_str(),
                  c.completed < c.total
                      ? ("  (" + std::to_string(c.total - c.completed) + " stopped)").c_str()
                      : "");
  }
}

// What every run of a session shares.
struct Session {
  TrainConfig train;
  SetupConfig setupConfig;
  Setup *setup = nullptr;
  Communicator *comm = nullptr;
  Progress &progress;
  std::function<void(const std::string &)> say;
  bool lead = true; // rank 0: evaluates and writes
  size_t seedCount = 1;
  std::string workDir, checkpointDir;
};

// Trains one policy with a loss at one beta (NaN: the loss's default) and seed, evaluates it
// (rank 0) and saves it.
Run trainOne(Session &s, const std::shared_ptr<const rt::Loss> &loss, double beta, uint64_t seed,
             const std::vector<std::pair<std::string, double>> &extraParams) {
  Run run;
  run.loss = loss->name();
  run.beta = beta;
  run.seed = seed;
  run.params = extraParams;
  if (!std::isnan(beta)) run.params.insert(run.params.begin(), {"beta", beta});
  if (std::isnan(beta) && loss->paramIndex("beta") >= 0)
    run.beta = loss->params()[loss->paramIndex("beta")].defaultValue;
  run.label = run.loss + (std::isnan(run.beta) ? "" : "-beta-" + formatSignificant(run.beta, 6)) +
              (s.seedCount > 1 ? "-seed-" + std::to_string(seed) : "");
  std::vector<double> values = loss->bindParams(run.params);
  std::ostringstream fp;
  fp.precision(17);
  fp << "loss=" << loss->sourceSha256() << " params=";
  for (double v : values)
    fp << v << ",";
  fp << " steps=" << s.train.steps << " batch=" << s.train.batch << " lr=" << s.train.lr
     << " warmup=" << s.train.warmupFraction << " clip=" << s.train.clipNorm << " seed=" << seed
     << " " << describe(s.setupConfig);
  TrainConfig rc = s.train;
  rc.seed = seed;
  rc.fingerprint = fp.str();
  if (!s.checkpointDir.empty()) rc.checkpointDir = (fs::path(s.checkpointDir) / run.label).string();
  TrainHooks hooks;
  hooks.comm = s.comm;
  hooks.interrupt = &gInterrupt;
  s.progress.start("training " + run.label, s.train.steps);
  hooks.progress = [&](const TrainStatus &st) {
    s.progress.update(st.step, "loss " + formatSignificant(st.loss, 4) +
                                   (st.skipped ? "  skipped " + std::to_string(st.skipped) : ""));
  };
  auto t0 = std::chrono::steady_clock::now();
  run.train = trainPolicy(s.setup->sft, s.setup->train, compiledPairLoss(loss, values), rc, hooks);
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (run.train.resumedFrom >= 0)
    s.say(run.label + ": resumed from the checkpoint of step " +
          std::to_string(run.train.resumedFrom) + " in " + rc.checkpointDir);
  if (run.train.skipped > 0 && !run.train.stopped)
    s.say(run.label + ": " + std::to_string(run.train.skipped) + " of " +
          std::to_string(run.train.stepsDone) +
          " steps were skipped: their loss or gradient was not finite");
  if (run.train.stopped) {
    std::cerr << "lossc-train: " << run.label << ": " << run.train.message << "\n";
    run.error = run.train.message;
  }
  if (run.train.interrupted) {
    s.say(run.label + ": " + run.train.message +
          (s.checkpointDir.empty() ? "; no --checkpoint-dir, so the run is lost"
                                   : "; its checkpoint is in " + rc.checkpointDir +
                                         ": rerun the same command to resume"));
    return run;
  }
  run.policyDigest = weightsDigest(run.train.policy);
  if (s.lead) {
    if (!run.train.stopped) {
      torch::Generator g = at::detail::createCPUGenerator(s.setupConfig.seed + 99);
      run.eval = evaluate(run.train.policy, s.setup->sft, s.setup->language, s.setup->evalPrompts,
                          s.setup->heldOut, g);
    }
    fs::create_directories(fs::path(s.workDir) / "policies");
    std::string path = (fs::path(s.workDir) / "policies" / (run.label + ".pt")).string();
    writeAtomically(path, [&](const std::string &tmp) { torch::save(run.train.policy, tmp); });
  }
  return run;
}

} // namespace

int main(int argc, char **argv) {
  po::options_description general("general"), loss("losses"), training("training"),
      task("the embedded task"), files("files"), dist("data parallel (c10d, Gloo)");
  // clang-format off
  general.add_options()
      ("help,h", "print this help")
      ("version", "print the version")
      ("config", po::value<std::string>(), "read options from FILE (`name = value` lines, # comments)")
      ("threads", po::value<int>()->default_value(1), "intra-op threads of libtorch per process")
      ("progress", po::value<std::string>()->default_value("auto"),
       "auto (a bar on a terminal, lines otherwise), always, never")
      ("quiet,q", "print only the results table and errors");
  loss.add_options()
      ("loss,l", po::value<std::vector<std::string>>()->composing(),
       "a stdlib name, FILE.loss or FILE.so (repeatable)")
      ("beta", po::value<std::string>(), "beta, or a comma-separated list of betas to sweep")
      ("param,p", po::value<std::vector<std::string>>()->composing(),
       "another loss parameter, NAME=VALUE (repeatable)")
      ("stdlib", po::value<std::string>(), "the stdlib directory (default: $LOSSC_STDLIB or the build's)");
  training.add_options()
      ("steps", po::value<int64_t>()->default_value(120), "optimizer steps")
      ("batch", po::value<int64_t>()->default_value(32), "pairs per step (the global batch)")
      ("lr", po::value<double>()->default_value(3e-3), "peak learning rate (AdamW)")
      ("warmup", po::value<double>()->default_value(0.1), "fraction of steps of linear warmup (then cosine decay)")
      ("clip", po::value<double>()->default_value(1.0), "gradient norm clip")
      ("seed", po::value<std::string>()->default_value("1"),
       "seed of the batch order, or a comma-separated list: each run repeated per seed")
      ("max-bad-steps", po::value<int64_t>()->default_value(5),
       "stop after this many steps in a row with a non-finite loss or gradient (0: never)");
  task.add_options()
      ("sft-steps", po::value<int64_t>()->default_value(400), "pre-training steps of the SFT model")
      ("pairs", po::value<int64_t>()->default_value(512), "training preference pairs")
      ("heldout-pairs", po::value<int64_t>()->default_value(256), "held-out pairs (accuracy)")
      ("eval-prompts", po::value<int64_t>()->default_value(512), "held-out prompts (reward, KL)")
      ("label-sharpness", po::value<double>()->default_value(20),
       "Bradley-Terry labels: P(first chosen) = sigmoid(s * (r1 - r2))")
      ("task-seed", po::value<uint64_t>()->default_value(11), "seed of the SFT model and the pairs");
  files.add_options()
      ("work-dir", po::value<std::string>()->default_value("lossc-train.out"),
       "where the setup cache (sft.pt) and the final policies go")
      ("checkpoint-dir", po::value<std::string>(), "checkpoint here and resume from here")
      ("checkpoint-every", po::value<int64_t>()->default_value(20), "steps between checkpoints")
      ("results", po::value<std::string>(), "write the results as JSON to FILE (and CSV beside it)")
      ("plot", po::value<std::string>(), "write the reward-KL frontier as SVG to FILE");
  dist.add_options()
      ("world-size", po::value<int>(), "number of processes (default $WORLD_SIZE or 1)")
      ("rank", po::value<int>(), "this process's rank (default $RANK or 0)")
      ("master-addr", po::value<std::string>(), "rank 0's address (default $MASTER_ADDR or 127.0.0.1)")
      ("master-port", po::value<int>(), "rank 0's TCPStore port (default $MASTER_PORT or 29500)")
      ("gloo-interface", po::value<std::string>(), "the network interface Gloo uses (default: by address)");
  // clang-format on
  po::options_description all;
  all.add(general).add(loss).add(training).add(task).add(files).add(dist);

  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, all), vm);
    if (vm.count("config")) {
      std::string path = vm["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) return usageError("cannot read the config file '" + path + "'");
      po::store(po::parse_config_file(in, all), vm);
    }
    po::notify(vm);
  } catch (const po::error &e) {
    return usageError(e.what());
  }
  if (vm.count("help")) {
    std::cout << kUsage << "\n" << all;
    return kExitOk;
  }
  if (vm.count("version")) {
    std::cout << "lossc-train " << LOSSC_VERSION_STRING << " (libtorch " << TORCH_VERSION << ")\n";
    return kExitOk;
  }

  std::vector<std::string> lossSpecs;
  if (vm.count("loss")) lossSpecs = vm["loss"].as<std::vector<std::string>>();
  if (lossSpecs.empty()) return usageError("no --loss given (try --loss dpo)");
  std::vector<double> betas;
  std::vector<uint64_t> seeds;
  std::vector<std::pair<std::string, double>> extraParams;
  Progress::Mode mode;
  try {
    if (vm.count("beta")) betas = parseList(vm["beta"].as<std::string>(), "--beta");
    for (double seed : parseList(vm["seed"].as<std::string>(), "--seed")) {
      if (seed < 0 || seed != std::floor(seed) || seed > 9e15)
        throw po::error("--seed: '" + formatShortest(seed) + "' is not a non-negative integer");
      seeds.push_back(uint64_t(seed));
    }
    if (vm.count("param"))
      for (const std::string &p : vm["param"].as<std::vector<std::string>>())
        extraParams.push_back(parseParam(p));
    std::string m = vm["progress"].as<std::string>();
    if (m != "auto" && m != "always" && m != "never")
      throw po::error("--progress must be auto, always or never, not '" + m + "'");
    mode = m == "auto" ? Progress::Auto : m == "always" ? Progress::Always : Progress::Never;
  } catch (const po::error &e) {
    return usageError(e.what());
  }

  TrainConfig tc;
  tc.steps = vm["steps"].as<int64_t>();
  tc.batch = vm["batch"].as<int64_t>();
  tc.lr = vm["lr"].as<double>();
  tc.warmupFraction = vm["warmup"].as<double>();
  tc.clipNorm = vm["clip"].as<double>();
  tc.maxBadSteps = vm["max-bad-steps"].as<int64_t>();
  tc.checkpointEvery = vm["checkpoint-every"].as<int64_t>();
  SetupConfig sc;
  sc.sftSteps = vm["sft-steps"].as<int64_t>();
  sc.trainPairs = vm["pairs"].as<int64_t>();
  sc.heldOutPairs = vm["heldout-pairs"].as<int64_t>();
  sc.evalPrompts = vm["eval-prompts"].as<int64_t>();
  sc.labelSharpness = vm["label-sharpness"].as<double>();
  sc.seed = vm["task-seed"].as<uint64_t>();
  if (tc.steps < 1 || tc.batch < 1 || !(tc.lr > 0) || tc.warmupFraction < 0 ||
      tc.warmupFraction > 1 || !(tc.clipNorm > 0) || tc.maxBadSteps < 0 || tc.checkpointEvery < 0 ||
      sc.sftSteps < 0 || sc.trainPairs < 1 || sc.heldOutPairs < 1 || sc.evalPrompts < 1 ||
      vm["threads"].as<int>() < 1)
    return usageError("--steps, --batch, --lr, --clip, --pairs, --heldout-pairs, --eval-prompts "
                      "and --threads must be positive; --warmup in [0, 1]; the rest >= 0");

  DistributedConfig dc;
  try {
    dc.worldSize =
        vm.count("world-size") ? vm["world-size"].as<int>() : std::stoi(envOr("WORLD_SIZE", "1"));
    dc.rank = vm.count("rank") ? vm["rank"].as<int>() : std::stoi(envOr("RANK", "0"));
    dc.masterAddr = vm.count("master-addr") ? vm["master-addr"].as<std::string>()
                                            : envOr("MASTER_ADDR", "127.0.0.1");
    int port = vm.count("master-port") ? vm["master-port"].as<int>()
                                       : std::stoi(envOr("MASTER_PORT", "29500"));
    if (port < 1 || port > 65535) throw std::invalid_argument("port");
    dc.masterPort = uint16_t(port);
  } catch (const std::exception &) {
    return usageError("WORLD_SIZE, RANK and MASTER_PORT must be integers (a port in 1..65535)");
  }
  if (vm.count("gloo-interface")) dc.interface = vm["gloo-interface"].as<std::string>();
  if (dc.worldSize < 1 || dc.rank < 0 || dc.rank >= dc.worldSize)
    return usageError("--rank must be in [0, --world-size)");
  if (tc.batch % dc.worldSize != 0)
    return usageError("--batch (" + std::to_string(tc.batch) +
                      ") must be a multiple of --world-size (" + std::to_string(dc.worldSize) +
                      ")");

  bool lead = dc.rank == 0, quiet = vm.count("quiet") > 0;
  Progress progress(mode, lead && !quiet);
  auto say = [&](const std::string &line) {
    if (lead && !quiet) std::cerr << line << "\n";
  };
  setComputeThreads(vm["threads"].as<int>());
  catchSignals();
  std::string stdlibDir = vm.count("stdlib") ? vm["stdlib"].as<std::string>() : "";
  std::string workDir = vm["work-dir"].as<std::string>();

  try {
    // The losses: compiled (or loaded) and verified before any training starts.
    std::vector<std::shared_ptr<const rt::Loss>> losses;
    for (const std::string &spec : lossSpecs) {
      auto t0 = std::chrono::steady_clock::now();
      std::shared_ptr<const rt::Loss> loss = loadLoss(spec, stdlibDir);
      double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (!betas.empty() && loss->paramIndex("beta") < 0)
        throw rt::Error("loss '" + loss->name() + "' has no parameter 'beta' to set");
      // Every parameter setting is checked now, not after minutes of pre-training.
      for (double beta : betas) {
        auto set = extraParams;
        set.emplace_back("beta", beta);
        loss->bindParams(set);
      }
      if (betas.empty()) loss->bindParams(extraParams);
      if (loss->batchCoupled() && dc.worldSize > 1)
        say("note: '" + loss->name() + "' is batch-coupled; with " + std::to_string(dc.worldSize) +
            " processes each computes it over its own shard");
      say("loss " + loss->name() + " (" + spec + "): ready in " + fixed(ms, 0) +
          " ms, source sha256 " + loss->sourceSha256().substr(0, 12));
      losses.push_back(std::move(loss));
    }

    std::unique_ptr<Communicator> comm;
    if (dc.worldSize > 1) {
      say("joining " + std::to_string(dc.worldSize) + " processes at " + dc.masterAddr + ":" +
          std::to_string(dc.masterPort));
      comm = Communicator::connect(dc);
    }

    progress.start("pre-training the SFT model", sc.sftSteps);
    Setup setup = prepareSetup(sc, (fs::path(workDir) / "sft.pt").string(), comm.get(),
                               [&](int64_t done, int64_t) { progress.update(done); });
    say(setup.fromCache ? "SFT model and pairs: loaded from " + workDir + "/sft.pt"
                        : "SFT model: next-token loss " + fixed(setup.sftLoss, 3) +
                              " nats; pairs sampled and labelled");
    double agree = (setup.train.chosenReward > setup.train.rejectedReward)
                       .to(torch::kFloat64)
                       .mean()
                       .item<double>();
    say(std::to_string(sc.trainPairs) + " training pairs; the label follows the reward in " +
        fixed(100 * agree, 1) + "% of them (Bradley-Terry noise)");

    Evaluation sft{NAN, 0, NAN};
    if (lead) {
      torch::Generator g = at::detail::createCPUGenerator(sc.seed + 99);
      sft = evaluate(setup.sft, setup.sft, setup.language, setup.evalPrompts, setup.heldOut, g);
    }

    Session session{tc, sc, &setup, comm.get(), progress, say, lead, seeds.size(), workDir};
    if (vm.count("checkpoint-dir")) session.checkpointDir = vm["checkpoint-dir"].as<std::string>();
    std::vector<Run> runs;
    bool failed = false;
    for (const auto &loss : losses) {
      std::vector<double> runBetas = betas;
      if (runBetas.empty()) runBetas.push_back(NAN); // the loss's own default
      for (double beta : runBetas)
        for (uint64_t seed : seeds) {
          if (gInterrupt) return 128 + gSignal; // the shell's convention for a signal
          runs.push_back(trainOne(session, loss, beta, seed, extraParams));
          failed = failed || runs.back().train.stopped;
          if (runs.back().train.interrupted) return 128 + gSignal;
        }
    }
    if (!lead) return failed ? kExitFailed : kExitOk;

    std::vector<Cell> cells = aggregate(runs);
    printTables(sft, runs, cells, seeds.size(), sc.evalPrompts);

    if (vm.count("results")) {
      std::string path = vm["results"].as<std::string>();
      writeTextAtomically(path, resultsJson(describe(sc), tc, sft, runs, cells));
      std::string csv = fs::path(path).replace_extension(".csv").string();
      writeTextAtomically(csv, resultsCsv(sft, runs));
      say("wrote " + path + " and " + csv);
    }
    if (vm.count("plot")) {
      std::string path = vm["plot"].as<std::string>();
      std::string subtitle = "embedded task, " + std::to_string(tc.steps) + " steps" +
                             (seeds.size() > 1 ? "; means of " + std::to_string(seeds.size()) +
                                                     " seeds, circles: single runs"
                                               : "");
      writeTextAtomically(path, frontierSvg(sft, cells, runs, seeds.size() > 1, subtitle));
      say("wrote " + path);
    }
    return failed ? kExitFailed : kExitOk;
  } catch (const std::exception &e) {
    std::cerr << "lossc-train: error: " << e.what() << "\n";
    return kExitFailed;
  }
}
