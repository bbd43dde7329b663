// Compiled kernels of every stdlib catalogue loss against the independent libtorch formulas of
// Catalogue.cpp (torch autograd for the gradients): values and vector-Jacobian products, f64 to
// 1e-9 relative and f32 to 1e-4 relative (against torch in f64 on the same rounded inputs), for
// batch sizes min_batch, 2, 7 and 1000, margins near zero and far out (|beta * rho| up to
// hundreds), default and non-default parameters, random cotangents. A kernel value may be
// infinite only where the true value overflows the type; NaN never appears. The metadata must
// match the catalogue (names, inputs, parameters, batch coupling, min_batch).
#include <torch/torch.h>
// doctest after torch: glog's CHECK would otherwise replace doctest's.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cfloat>
#include <cmath>
#include <filesystem>
#include <random>

#include "Backend.h"
#include "Catalogue.h"
#include "Pipeline.h"

using lossc::ref::Entry;
using lossc::ref::Inputs;
using torch::Tensor;

namespace {

std::string stdlib() {
  return LOSSC_SOURCE_DIR "/stdlib";
}

double maxFinite(const Tensor &t) {
  Tensor a = t.abs();
  a = torch::where(torch::isfinite(a), a, torch::zeros_like(a));
  return a.max().item<double>();
}

// |got - ref| <= tol * max(|ref|, floorFraction * scale) + tiny: relative, with a floor where a
// value crosses zero. scale is the largest |ref| of a 1000-example batch at the same setting, so
// that a batch of one is judged like a large one; tiny is the type's smallest normal number
// (values below it underflow). f32 kernels evaluate formulas whose terms cancel near a zero of
// the gradient, so f32's floor is 1e-2 of the scale (f64: 1e-3). A batch-coupled gradient in f32
// is a per-example term plus a batch-wide one, and there the check is normwise (floorFraction 1).
// Where the true value overflows the kernel's type (|ref| > typeMax), the kernel must give the
// infinity of the same sign. Where the example's loss overflows, its gradient may too: the chain
// rule scales the overflowing term (cell's e^-x, say) by beta and gout only after forming it.
struct Tolerance {
  double tol, floorFraction, typeMax, tiny;
};

void compare(const std::string &what, const std::vector<double> &got, const Tensor &ref,
             double scale, const Tolerance &t, const Tensor &lossRef = {}) {
  Tensor r = ref.to(torch::kFloat64).contiguous();
  const double *p = r.data_ptr<double>();
  double floor = t.floorFraction * std::max(scale, maxFinite(r));
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(what);
    CAPTURE(i);
    CAPTURE(got[i]);
    CAPTURE(p[i]);
    REQUIRE(!std::isnan(p[i])); // the reference itself is sound on the drawn inputs
    CHECK(!std::isnan(got[i]));
    bool overflowed = std::isinf(got[i]) && (got[i] > 0) == (p[i] > 0);
    if (std::fabs(p[i]) > t.typeMax) {
      CHECK(overflowed);
      continue;
    }
    if (lossRef.defined() && std::fabs(lossRef[i].item<double>()) > t.typeMax && overflowed)
      continue;
    CHECK(std::isfinite(got[i]));
    CHECK(std::fabs(got[i] - p[i]) <= t.tol * std::max(std::fabs(p[i]), floor) + t.tiny);
  }
}

// Inputs in the ABI's order. Pairwise: b ~ U(-60, -5), a_l ~ U(-60, -5), a_w set so that
// rho = spread * U(-1, 1). Lengths: integers 0..40 (0 exercises m(n) = max(n, 1)).
// Reference-free: per-token log-probs u = -exp(U(-6, log spread + 1)) < 0, a = u * m(n).
std::vector<std::vector<double>> draw(Inputs kind, int64_t n, double spread, std::mt19937 &rng) {
  std::uniform_real_distribution<double> u(-1, 1), logp(-60, -5);
  std::uniform_int_distribution<int> len(0, 40);
  size_t k = lossc::ref::inputNames(kind).size();
  std::vector<std::vector<double>> in(k, std::vector<double>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (kind == Inputs::ReferenceFree) {
      std::uniform_real_distribution<double> logu(-6, std::log(spread) + 1);
      double nw = len(rng), nl = len(rng);
      in[2][i] = nw, in[3][i] = nl;
      in[0][i] = -std::exp(logu(rng)) * std::max(nw, 1.0);
      in[1][i] = -std::exp(logu(rng)) * std::max(nl, 1.0);
      continue;
    }
    in[2][i] = logp(rng), in[3][i] = logp(rng), in[1][i] = logp(rng);
    in[0][i] = spread * u(rng) + in[1][i] + in[2][i] - in[3][i];
    if (kind == Inputs::PairwiseLengths) in[4][i] = len(rng), in[5][i] = len(rng);
  }
  return in;
}

// The reference on a draw: the per-example losses and both policy gradients for cotangent gout.
struct Reference {
  Tensor loss, gradW, gradL;
};
Reference reference(const Entry &e, const std::vector<double> &params,
                    const std::vector<std::vector<double>> &in, const std::vector<double> &gout) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  std::vector<Tensor> t;
  for (size_t j = 0; j < in.size(); ++j)
    t.push_back(torch::tensor(in[j], opts).requires_grad_(j < 2));
  Tensor value = e.formula(t, params);
  value.backward(torch::tensor(gout, opts));
  return {value.detach(), t[0].grad(), t[1].grad()};
}

std::vector<double> drawGout(int64_t n, std::mt19937 &rng) {
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<double> g(n);
  for (double &x : g)
    x = 0.5 + u(rng);
  return g;
}

// The scales of a setting: the largest |loss| and |gradient| on a 1000-example draw.
struct Scales {
  double loss, gradW, gradL;
};
Scales scalesOf(const Entry &e, const std::vector<double> &params, double spread,
                std::mt19937 &rng) {
  Reference r = reference(e, params, draw(e.inputs, 1000, spread, rng), drawGout(1000, rng));
  return {maxFinite(r.loss), maxFinite(r.gradW), maxFinite(r.gradL)};
}

template <class T>
void check(const lossc::LossFunctions &f, const Entry &e, const std::vector<double> &params,
           int64_t n, double spread, const Scales &scales, std::mt19937 &rng) {
  CAPTURE(sizeof(T));
  std::vector<std::vector<double>> drawn = draw(e.inputs, n, spread, rng);
  size_t k = drawn.size();
  // A sorting loss orders examples by differences of inputs; f32 and f64 round those
  // differently, so near-equal keys could swap. Inputs on a 1/64 grid make the differences
  // exact in both (ties stay, and are kept in example order by both sorts).
  if (e.sorts)
    for (auto &column : drawn)
      for (double &v : column)
        v = std::round(v * 64) / 64;
  std::vector<std::vector<T>> in(k);
  std::vector<std::vector<double>> rounded(k);
  for (size_t j = 0; j < k; ++j) {
    in[j].assign(drawn[j].begin(), drawn[j].end());
    rounded[j].assign(in[j].begin(), in[j].end());
  }
  std::vector<double> goutD = drawGout(n, rng);
  std::vector<T> gout(goutD.begin(), goutD.end());
  goutD.assign(gout.begin(), gout.end());
  // The reference in double on exactly the values the kernel reads.
  Reference ref = reference(e, params, rounded, goutD);

  std::vector<const T *> ptrs;
  for (auto &v : in)
    ptrs.push_back(v.data());
  std::vector<T> out(n), gw(n), gl(n);
  std::vector<T *> grads(k, nullptr);
  grads[0] = gw.data(), grads[1] = gl.data();
  int32_t rc;
  Tolerance tol;
  if constexpr (sizeof(T) == 8) {
    rc = f.forwardBackwardF64(n, ptrs.data(), params.data(), gout.data(), out.data(), grads.data());
    tol = {1e-9, 1e-3, DBL_MAX, DBL_MIN};
  } else {
    rc = f.forwardBackwardF32(n, ptrs.data(), params.data(), gout.data(), out.data(), grads.data());
    tol = {1e-4, e.batchCoupled ? 1.0 : 1e-2, FLT_MAX, FLT_MIN};
  }
  REQUIRE(rc == 0);
  compare("loss", std::vector<double>(out.begin(), out.end()), ref.loss, scales.loss, tol);
  compare("d/d policy_chosen_logps", std::vector<double>(gw.begin(), gw.end()), ref.gradW,
          scales.gradW, tol, ref.loss);
  compare("d/d policy_rejected_logps", std::vector<double>(gl.begin(), gl.end()), ref.gradL,
          scales.gradL, tol, ref.loss);
}

void checkMeta(const lossc::LossFunctions &f, const Entry &e) {
  const lossc_meta *meta = f.getMeta();
  REQUIRE(meta != nullptr);
  CHECK(std::string(meta->name) == e.name);
  CHECK(meta->batch_coupled == int32_t(e.batchCoupled));
  CHECK(meta->min_batch == e.minBatch);
  std::vector<std::string> names = lossc::ref::inputNames(e.inputs);
  REQUIRE(meta->n_inputs == names.size());
  for (size_t j = 0; j < names.size(); ++j) {
    CHECK(std::string(meta->inputs[j].name) == names[j]);
    CHECK(meta->inputs[j].differentiable == int32_t(j < 2));
  }
  REQUIRE(meta->n_params == e.params.size());
  for (size_t j = 0; j < e.params.size(); ++j) {
    CHECK(std::string(meta->params[j].name) == e.params[j].first);
    CHECK(meta->params[j].default_value == e.params[j].second);
  }
}

} // namespace

TEST_CASE("the catalogue has the 24 losses of SPEC.md, each in stdlib/") {
  CHECK(lossc::ref::catalogue().size() == 24);
  for (const Entry &e : lossc::ref::catalogue())
    CHECK(std::filesystem::exists(stdlib() + "/" + e.name + ".loss"));
}

TEST_CASE("every catalogue kernel matches libtorch autograd of its CATALOGUE.md formula") {
  std::mt19937 rng(2024);
  for (const Entry &e : lossc::ref::catalogue()) {
    CAPTURE(e.name);
    lossc::FrontendOptions options;
    options.stdlibDir = stdlib();
    auto fe = lossc::runFrontend(stdlib() + "/" + e.name + ".loss", options);
    REQUIRE(fe->ok());
    auto jit = lossc::JitLoss::compile(*fe);
    REQUIRE(jit != nullptr);
    checkMeta(jit->functions(), e);
    std::vector<double> defaults;
    for (const auto &p : e.params)
      defaults.push_back(p.second);
    for (const std::vector<double> &params : {defaults, e.otherParams}) {
      CAPTURE(params);
      for (int64_t n : {e.minBatch, int64_t{2}, int64_t{7}, int64_t{1000}})
        for (double spread : {1.0, 4000.0}) {
          CAPTURE(n);
          CAPTURE(spread);
          Scales scales = scalesOf(e, params, spread, rng);
          check<double>(jit->functions(), e, params, n, spread, scales, rng);
          check<float>(jit->functions(), e, params, n, spread, scales, rng);
        }
    }
  }
}

int main(int argc, char **argv) {
  at::set_num_threads(1);
  doctest::Context context(argc, argv);
  return context.run();
}
