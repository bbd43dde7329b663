// Benchmarks of compiled losses, side by side in one run (SPEC.md, "Performance targets"):
//   kernels     dpo and lrml, B = 1e3 .. 1e7, one thread: the fused f32 forward+backward kernel,
//               libtorch eager forward + autograd backward of the same formula, and the memory
//               floor (a loop reading 4 arrays and writing 3 of the same size)
//   catalogue   every catalogue loss at B = 1e6 and 1e7, 1 and 2 threads, kernel vs eager
//   compile     lossc FILE.loss -o OUT.so (front end, LLVM O3, object, link) and the JIT, per loss
//   check       lossc check (front end + the numeric screening battery, its JIT included), per loss
// Each figure is the median of several runs, in milliseconds. Usage: lossc_bench [kernels]
// [catalogue] [compile] (default: all three).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "Backend.h"
#include "Catalogue.h"
#include "Pipeline.h"
#include "Screen.h"
#include "lossc/jit.h"
#include "lossc/runtime.h"

using namespace lossc;
using Clock = std::chrono::steady_clock;

namespace {

std::string stdlib() {
  return LOSSC_SOURCE_DIR "/stdlib";
}

double medianMs(int reps, const std::function<void()> &f) {
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    auto start = Clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int repsFor(int64_t n) {
  return n <= 100000 ? 50 : n <= 1000000 ? 11 : 5;
}

// The inputs of one size, as f32 vectors and as torch tensors sharing nothing with them.
struct Batch {
  int64_t n;
  std::vector<std::vector<float>> columns;
  std::vector<torch::Tensor> tensors;
};

Batch makeBatch(const ref::Entry &e, int64_t n) {
  Batch b{n, {}, {}};
  torch::manual_seed(1);
  size_t k = ref::inputNames(e.inputs).size();
  for (size_t j = 0; j < k; ++j) {
    bool length = ref::inputNames(e.inputs)[j].find("lengths") != std::string::npos;
    torch::Tensor t =
        length ? torch::randint(1, 200, {n}).to(torch::kFloat32) : torch::rand({n}) * -50 - 5;
    b.columns.emplace_back(t.data_ptr<float>(), t.data_ptr<float>() + n);
    b.tensors.push_back(t);
  }
  return b;
}

double kernelMs(const rt::Loss &loss, const Batch &b, int threads) {
  std::vector<const float *> in;
  for (auto &c : b.columns)
    in.push_back(c.data());
  std::vector<float> out(b.n), g0(b.n), g1(b.n);
  std::vector<float *> grads(in.size(), nullptr);
  grads[0] = g0.data(), grads[1] = g1.data();
  return medianMs(repsFor(b.n), [&] {
    loss.forwardBackward<float>(b.n, in.data(), nullptr, nullptr, out.data(), grads.data(),
                                threads);
  });
}

double eagerMs(const ref::Entry &e, const Batch &b) {
  std::vector<double> params;
  for (auto &p : e.params)
    params.push_back(p.second);
  return medianMs(repsFor(b.n), [&] {
    std::vector<torch::Tensor> in = b.tensors;
    in[0] = in[0].detach().requires_grad_(true);
    in[1] = in[1].detach().requires_grad_(true);
    torch::Tensor l = e.formula(in, params);
    l.backward(torch::ones_like(l));
  });
}

// Reads 4 arrays and writes 3: what a fused pairwise kernel must move at the least.
__attribute__((noinline)) void floorLoop(int64_t n, const float *__restrict a,
                                         const float *__restrict b, const float *__restrict c,
                                         const float *__restrict d, float *__restrict o,
                                         float *__restrict g, float *__restrict h) {
  for (int64_t i = 0; i < n; ++i) {
    float x = (a[i] - c[i]) - (b[i] - d[i]);
    o[i] = x;
    g[i] = -x;
    h[i] = x * 0.5f;
  }
}

double floorMs(const Batch &b) {
  std::vector<float> o(b.n), g(b.n), h(b.n);
  const auto &c = b.columns;
  return medianMs(repsFor(b.n), [&] {
    floorLoop(b.n, c[0].data(), c[1].data(), c[2].data(), c[3].data(), o.data(), g.data(),
              h.data());
  });
}

std::shared_ptr<rt::Loss> jit(const std::string &name) {
  rt::CompileOptions options;
  options.stdlibDir = stdlib();
  return rt::compile(stdlib() + "/" + name + ".loss", options);
}

void kernels() {
  std::printf(
      "\n### Fused f32 forward+backward vs libtorch eager and the memory floor (1 thread)\n\n");
  std::printf(
      "| loss | B | kernel ms | ns/example | eager ms | speedup | floor ms | kernel/floor |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const char *name : {"dpo", "lrml"}) {
    auto loss = jit(name);
    for (int64_t n : {int64_t(1e3), int64_t(1e4), int64_t(1e5), int64_t(1e6), int64_t(1e7)}) {
      Batch b = makeBatch(ref::entry(name), n);
      double k = kernelMs(*loss, b, 1), e = eagerMs(ref::entry(name), b), f = floorMs(b);
      std::printf("| %s | %.0e | %.4f | %.2f | %.4f | %.1fx | %.4f | %.2f |\n", name, double(n), k,
                  k * 1e6 / n, e, e / k, f, k / f);
      std::fflush(stdout);
    }
  }
}

void catalogue() {
  std::printf("\n### Every catalogue loss: fused f32 kernel vs libtorch eager\n\n");
  std::printf("| loss | B | kernel 1T ms | kernel 2T ms | eager 1T ms | eager 2T ms | speedup 1T | "
              "speedup 2T |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const ref::Entry &e : ref::catalogue()) {
    auto loss = jit(e.name);
    for (int64_t n : {int64_t(1e6), int64_t(1e7)}) {
      Batch b = makeBatch(e, n);
      double k1 = kernelMs(*loss, b, 1), k2 = kernelMs(*loss, b, 2);
      at::set_num_threads(1);
      double e1 = eagerMs(e, b);
      at::set_num_threads(2);
      double e2 = eagerMs(e, b);
      at::set_num_threads(1);
      std::printf("| %s | %.0e | %.2f | %.2f | %.2f | %.2f | %.1fx | %.1fx |\n", e.name.c_str(),
                  double(n), k1, k2, e1, e2, e1 / k1, e2 / k2);
      std::fflush(stdout);
    }
  }
}

void compile() {
  std::printf("\n### Compile times (ms, median of 7; JIT after a first warm-up compile)\n\n");
  std::printf("| loss | lossc -o .so | JIT, all four entry points | JIT, f32 forward+backward "
              "only | the same, quick (O1, scalar) |\n|---|---|---|---|---|\n");
  std::string dir = std::filesystem::temp_directory_path() / "lossc_bench";
  std::filesystem::create_directories(dir);
  jit("dpo"); // LLVM's one-time initialisation
  for (const ref::Entry &e : ref::catalogue()) {
    double aot = medianMs(7, [&] {
      FrontendOptions options;
      options.stdlibDir = stdlib();
      auto fe = runFrontend(stdlib() + "/" + e.name + ".loss", options);
      auto bm = buildModule(*fe);
      if (!bm || !writeSharedObject(*fe, *bm, dir + "/" + e.name + ".so"))
        throw std::runtime_error("compile failed");
    });
    double j = medianMs(7, [&] { jit(e.name); });
    auto only = [&](bool quick) {
      return medianMs(7, [&] {
        FrontendOptions options;
        options.stdlibDir = stdlib();
        auto fe = runFrontend(stdlib() + "/" + e.name + ".loss", options);
        BuildOptions b;
        b.entries = kForwardBackwardF32;
        b.quick = quick;
        if (!JitLoss::compile(*fe, b)) throw std::runtime_error("compile failed");
      });
    };
    double one = only(false), oneQuick = only(true);
    std::printf("| %s | %.1f | %.1f | %.1f | %.1f |\n", e.name.c_str(), aot, j, one, oneQuick);
    std::fflush(stdout);
  }
  std::filesystem::remove_all(dir);
}

void check() {
  std::printf("\n### lossc check: front end + numeric screening battery (ms, median of 5)\n\n");
  std::printf(
      "| loss | check | JIT of all four entry points at O3 (for comparison) |\n|---|---|---|\n");
  ScreenOptions options;
  options.cacheDir = std::filesystem::temp_directory_path() / "lossc_bench_cache";
  options.stdlibDir = stdlib();
  options.remember = false;
  {
    FrontendOptions fo;
    fo.stdlibDir = stdlib();
    auto fe = runFrontend(stdlib() + "/dpo.loss", fo);
    screenLoss(*fe, options); // fingerprints the catalogue once, as a first check would
  }
  for (const ref::Entry &e : ref::catalogue()) {
    FrontendOptions fo;
    fo.stdlibDir = stdlib();
    double total = medianMs(5, [&] {
      auto fe = runFrontend(stdlib() + "/" + e.name + ".loss", fo);
      screenLoss(*fe, options);
    });
    double jitOnly = medianMs(5, [&] {
      auto fe = runFrontend(stdlib() + "/" + e.name + ".loss", fo);
      JitLoss::compile(*fe);
    });
    std::printf("| %s | %.1f | %.1f |\n", e.name.c_str(), total, jitOnly);
    std::fflush(stdout);
  }
}

} // namespace

int main(int argc, char **argv) {
  at::set_num_threads(1);
  std::vector<std::string> what(argv + 1, argv + argc);
  if (what.empty()) what = {"kernels", "catalogue", "compile", "check"};
  for (const std::string &w : what) {
    if (w == "kernels")
      kernels();
    else if (w == "catalogue")
      catalogue();
    else if (w == "compile")
      compile();
    else if (w == "check")
      check();
    else {
      std::fprintf(stderr, "usage: lossc_bench [kernels] [catalogue] [compile] [check]\n");
      return 2;
    }
  }
  return 0;
}
