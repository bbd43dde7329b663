// The trainer's step with a compiled loss against the same trainer with the loss in libtorch
// eager (the independent formulas of tests/torch/Catalogue.cpp), side by side in one run:
//   step   one optimizer step of lossc-train on the embedded task (policy forward and backward
//          of the chosen and rejected completions, the loss, the gradient all-reduce buffer,
//          clipping, AdamW), at batch 32 and 256
//   loss   the loss alone inside such a step: forward and backward of per-example losses on a
//          batch of log-probabilities that require grad
// One thread (the trainer's default). Each figure is the median of several repetitions.
// Usage: lossc_train_bench [losses...] (default: dpo lrml ipo hinge)
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "Catalogue.h"
#include "Preference.h"
#include "Setup.h"
#include "lossc/jit.h"
#include "lossc/torch.h"

using namespace lossc;
using namespace lossc::train;
using Clock = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The catalogue formula as the trainer's loss (its inputs in the ABI's order).
PairLoss eagerPairLoss(const ref::Entry &e, std::vector<double> params) {
  return [&e, params](const PairBatch &b) {
    switch (e.inputs) {
    case ref::Inputs::Pairwise:
      return e.formula({b.policyChosen, b.policyRejected, b.referenceChosen, b.referenceRejected},
                       params);
    case ref::Inputs::PairwiseLengths:
      return e.formula({b.policyChosen, b.policyRejected, b.referenceChosen, b.referenceRejected,
                        b.chosenLengths, b.rejectedLengths},
                       params);
    case ref::Inputs::ReferenceFree: break;
    }
    return e.formula({b.policyChosen, b.policyRejected, b.chosenLengths, b.rejectedLengths},
                     params);
  };
}

// Milliseconds per optimizer step: the median over blocks of steps, timed from the end of a
// block's first step to the end of its last (setup and the first step's warm-up left out).
double stepMs(Setup &setup, const PairLoss &loss, int64_t batch) {
  std::vector<double> t;
  for (int block = 0; block < 5; ++block) {
    TrainConfig tc;
    tc.steps = 21;
    tc.batch = batch;
    tc.seed = block + 1;
    Clock::time_point first;
    TrainHooks hooks;
    hooks.progress = [&](const TrainStatus &s) {
      if (s.step == 1) first = Clock::now();
      if (s.step == tc.steps)
        t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - first).count() /
                    (tc.steps - 1));
    };
    trainPolicy(setup.sft, setup.train, loss, tc, hooks);
  }
  return median(t);
}

// Microseconds for the loss's forward and backward alone on a batch like the trainer's.
double lossUs(const PairLoss &loss, int64_t batch) {
  torch::manual_seed(0);
  torch::Tensor aw = (-40 + 3 * torch::randn({batch})).requires_grad_();
  torch::Tensor al = (-40 + 3 * torch::randn({batch})).requires_grad_();
  torch::Tensor bw = -40 + 3 * torch::randn({batch}), bl = -40 + 3 * torch::randn({batch});
  torch::Tensor len = torch::full({batch}, 16.0);
  std::vector<double> t;
  for (int rep = 0; rep < 9; ++rep) {
    auto start = Clock::now();
    for (int i = 0; i < 200; ++i) {
      torch::Tensor l = loss({aw, al, bw, bl, len, len}).mean();
      l.backward();
    }
    t.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count() / 200);
  }
  return median(t);
}

} // namespace

int main(int argc, char **argv) {
  setComputeThreads(1);
  std::vector<std::string> names;
  for (int i = 1; i < argc; ++i)
    names.push_back(argv[i]);
  if (names.empty()) names = {"dpo", "lrml", "ipo", "hinge"};

  SetupConfig sc;
  sc.sftSteps = 50; // timing only: the model's shape matters, not its quality
  Setup setup = prepareSetup(sc, "");
  std::printf("### The trainer's step: compiled loss vs the loss in libtorch eager\n\n");
  std::printf("One thread; embedded task (transformer dim %lld, %lld layers, context %lld; "
              "completions of %lld tokens). beta = 0.05.\n\n",
              (long long)sc.model.dim, (long long)sc.model.layers, (long long)sc.model.context,
              (long long)sc.task.completionLength);
  std::printf("| loss | batch | step, compiled ms | step, eager ms | step ratio | loss alone, "
              "compiled us | loss alone, eager us | loss ratio |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const std::string &name : names) {
    rt::CompileOptions options;
    options.stdlibDir = LOSSC_SOURCE_DIR "/stdlib";
    auto loss = rt::compile(LOSSC_SOURCE_DIR "/stdlib/" + name + ".loss", options);
    const ref::Entry &e = ref::entry(name);
    std::vector<std::pair<std::string, double>> set;
    std::vector<double> eagerParams;
    for (const auto &[p, v] : e.params) {
      double value = p == "beta" ? 0.05 : v;
      set.emplace_back(p, value);
      eagerParams.push_back(value);
    }
    PairLoss compiled = compiledPairLoss(loss, loss->bindParams(set));
    PairLoss eager = eagerPairLoss(e, eagerParams);
    for (int64_t batch : {int64_t(32), int64_t(256)}) {
      double sc1 = stepMs(setup, compiled, batch), se = stepMs(setup, eager, batch);
      double lc = lossUs(compiled, batch), le = lossUs(eager, batch);
      std::printf("| %s | %lld | %.2f | %.2f | %.3f | %.1f | %.1f | %.1fx |\n", name.c_str(),
                  (long long)batch, sc1, se, se / sc1, lc, le, le / lc);
      std::fflush(stdout);
    }
  }
  return 0;
}
