// Compiled kernels against libtorch autograd of the CATALOGUE.md formulas, written here in
// torch (the independent implementation): values and vector-Jacobian products for dpo, lrml and
// dbaql, f64 (1e-9 relative) and f32 (1e-4 relative, against torch in f64 on the same rounded
// inputs), batch sizes 1 (or min_batch), 7 and 1000, margins near zero and far out
// (|beta * rho| up to 200), random cotangents. The kernels are also required to be finite.
#include <torch/torch.h>
// doctest after torch: glog's CHECK would otherwise replace doctest's.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <random>

#include "Backend.h"
#include "Pipeline.h"

using torch::Tensor;

namespace {

std::string stdlib() { return LOSSC_SOURCE_DIR "/stdlib"; }

using Formula = std::function<Tensor(const Tensor &aw, const Tensor &al, const Tensor &bw,
                                     const Tensor &bl)>;

Tensor rhoOf(const Tensor &aw, const Tensor &al, const Tensor &bw, const Tensor &bl) {
  return (aw - bw) - (al - bl);
}

// dpo: sp(-beta rho) = -log sigma(beta rho)
Tensor dpo(const Tensor &aw, const Tensor &al, const Tensor &bw, const Tensor &bl) {
  return -torch::log_sigmoid(0.1 * rhoOf(aw, al, bw, bl));
}

// lrml (DiscoPOP), the stable form: sigma(-x/tau) sp(-x) + exp(log sigma(x/tau) - x)
Tensor lrml(const Tensor &aw, const Tensor &al, const Tensor &bw, const Tensor &bl) {
  Tensor x = 0.05 * rhoOf(aw, al, bw, bl);
  return torch::sigmoid(-x / 0.05) * -torch::log_sigmoid(x) + torch::exp(torch::log_sigmoid(x / 0.05) - x);
}

// dbaql: c = sigma(var_B(x/tau)) (unbiased); c sp(-x/0.9) + (1-c) e^(-0.9x), with (1-c) e^(..)
// as exp(log sigma(-v) - 0.9 x)
Tensor dbaql(const Tensor &aw, const Tensor &al, const Tensor &bw, const Tensor &bl) {
  Tensor x = 0.05 * rhoOf(aw, al, bw, bl);
  Tensor v = torch::var(x / 0.05);
  return torch::sigmoid(v) * -torch::log_sigmoid(x / 0.9) + torch::exp(torch::log_sigmoid(-v) - 0.9 * x);
}

struct Loss {
  std::string name;
  Formula formula;
  int64_t minBatch;
  bool batchCoupled;
};

double maxAbs(const Tensor &t) { return t.abs().max().item<double>(); }

// |got - ref| <= tol * max(|ref|, floorFraction * max|ref|): relative, with a floor at the batch's
// scale where a value crosses zero. A batch-coupled gradient in f32 is a per-example term plus a
// batch-wide one that can cancel it, so its error scales with the batch's largest gradient:
// there the check is normwise (floorFraction 1).
void compare(const std::string &what, const std::vector<double> &got, const Tensor &ref, double tol,
             double floorFraction) {
  Tensor r = ref.to(torch::kFloat64).contiguous();
  double floor = floorFraction * maxAbs(r) + 1e-300;
  const double *p = r.data_ptr<double>();
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(what);
    CAPTURE(i);
    CAPTURE(got[i]);
    CAPTURE(p[i]);
    CHECK(std::isfinite(got[i]));
    CHECK(std::fabs(got[i] - p[i]) <= tol * std::max(std::fabs(p[i]), floor));
  }
}

template <class T>
void check(const lossc::LossFunctions &f, const Loss &loss, int64_t n, double spread, std::mt19937 &rng) {
  std::uniform_real_distribution<double> u(-1, 1), logp(-60, -5);
  std::vector<std::vector<T>> in(4, std::vector<T>(n));
  std::vector<T> gout(n);
  for (int64_t i = 0; i < n; ++i) {
    in[2][i] = T(logp(rng)), in[3][i] = T(logp(rng)), in[1][i] = T(logp(rng));
    // a_w chosen so that rho = spread * u: near zero or far out.
    in[0][i] = T(spread * u(rng) + in[1][i] + in[2][i] - in[3][i]);
    gout[i] = T(0.5 + u(rng));
  }
  // The reference in double on exactly the values the kernel reads.
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  std::vector<Tensor> t;
  for (int k = 0; k < 4; ++k) {
    std::vector<double> d(in[k].begin(), in[k].end());
    t.push_back(torch::tensor(d, opts).requires_grad_(k < 2));
  }
  std::vector<double> gd(gout.begin(), gout.end());
  Tensor g = torch::tensor(gd, opts);
  Tensor value = loss.formula(t[0], t[1], t[2], t[3]);
  value.backward(g);

  std::vector<const T *> ptrs{in[0].data(), in[1].data(), in[2].data(), in[3].data()};
  std::vector<T> out(n), gw(n), gl(n);
  std::vector<T *> grads{gw.data(), gl.data(), nullptr, nullptr};
  int32_t rc;
  double tol, floorFraction = 1e-3;
  if constexpr (sizeof(T) == 8) {
    rc = f.forwardBackwardF64(n, ptrs.data(), nullptr, gout.data(), out.data(), grads.data());
    tol = 1e-9;
  } else {
    rc = f.forwardBackwardF32(n, ptrs.data(), nullptr, gout.data(), out.data(), grads.data());
    tol = 1e-4;
    if (loss.batchCoupled) floorFraction = 1;
  }
  REQUIRE(rc == 0);
  compare("loss", std::vector<double>(out.begin(), out.end()), value.detach(), tol, floorFraction);
  compare("d/d policy_chosen_logps", std::vector<double>(gw.begin(), gw.end()), t[0].grad(), tol, floorFraction);
  compare("d/d policy_rejected_logps", std::vector<double>(gl.begin(), gl.end()), t[1].grad(), tol, floorFraction);
}

}  // namespace

TEST_CASE("kernels match libtorch autograd of the catalogue formulas") {
  const Loss losses[] = {{"dpo", dpo, 1, false}, {"lrml", lrml, 1, false}, {"dbaql", dbaql, 2, true}};
  std::mt19937 rng(2024);
  for (const Loss &loss : losses) {
    CAPTURE(loss.name);
    lossc::FrontendOptions options;
    options.stdlibDir = stdlib();
    auto fe = lossc::runFrontend(stdlib() + "/" + loss.name + ".loss", options);
    REQUIRE(fe->ok());
    auto jit = lossc::JitLoss::compile(*fe);
    REQUIRE(jit != nullptr);
    for (int64_t n : {loss.minBatch, int64_t{7}, int64_t{1000}})
      for (double spread : {1.0, 4000.0}) {
        CAPTURE(n);
        CAPTURE(spread);
        check<double>(jit->functions(), loss, n, spread, rng);
        check<float>(jit->functions(), loss, n, spread, rng);
      }
  }
}

int main(int argc, char **argv) {
  at::set_num_threads(1);
  doctest::Context context(argc, argv);
  return context.run();
}
