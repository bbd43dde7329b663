// Reverse mode against central finite differences, in double, through the reference
// interpreter: every derivative rule, the stable rewrites, and their agreement in value.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <set>
#include <string>

#include "Autodiff.h"
#include "Interp.h"
#include "Simplify.h"
#include "TestSupport.h"

using namespace lossc;

namespace {

struct Case {
  std::string expr; // in terms of a, b ([B], diff) and t (scalar, diff)
  int64_t n = 7;
  unsigned checked = 7; // bit k: compare the gradient of input k (a, b, t) with differences
};

// One expression per rule; the inputs are drawn away from kinks and ties.
const Case kCases[] = {
    {"-a + b"},
    {"a - b * 2"},
    {"a * b"},
    {"a / (b * b + 1)"},
    {"(a * a + 1) ** b"},
    {"a ** 3"},
    {"pow(a * a + 1, 0.5)"},
    {"exp(a)"},
    {"log(a * a + 1)"},
    {"log1p(a * a)"},
    {"expm1(a)"},
    {"sqrt(a * a + 1)"},
    {"sigmoid(a)"},
    {"logsigmoid(a)"},
    {"softplus(a)"},
    {"tanh(a)"},
    {"abs(a)"},
    {"relu(a)"},
    {"min(a, b)"},
    {"max(a, b)"},
    {"clamp(a, -0.5, 0.5)"},
    {"where(a > b, a * b, a - b)"},
    {"if a < 0 then exp(b) else b * b"},
    {"stopgrad(a) * b", 7, 6},
    {"sum(a * b) + a"},
    {"mean(a) * b"},
    {"var(a) * b"},
    {"std(a) + a * b"},
    {"min(a) * b"},
    {"max(a) + b * b"},
    {"sort(a) * (index() + 1)"},
    {"sort(a * b) - sort(b)"},
    {"a * t + t * t"},
    {"a / batch_size() + mean(a * t)"},
    {"softplus(-(a - b) * t)"},
    // The stabilized forms must have the same values and gradients.
    {"sigmoid(a / 0.05) * exp(-a) + (1 - sigmoid(a / 0.05)) * softplus(-a)"},
    {"log(sigmoid(a)) + log(1 + a * a) + (exp(b) - 1)"},
};

std::unique_ptr<Frontend> compileExpr(const std::string &expr) {
  return test::compile("loss l {\n  input a, b: real[B] diff;\n  input t: real diff;\n  return " +
                       expr + " + 0 * (a + b + t);\n}\n");
}

std::vector<std::vector<double>> drawInputs(int64_t n, std::mt19937 &rng) {
  // Distinct values, at least 0.05 away from 0 and from each other's kinks at these scales.
  std::uniform_real_distribution<double> u(0.1, 1.5);
  std::bernoulli_distribution sign(0.5);
  std::vector<std::vector<double>> in(3);
  for (int k = 0; k < 2; ++k)
    for (int64_t i = 0; i < n; ++i)
      in[k].push_back((sign(rng) ? 1 : -1) * u(rng) + 0.013 * i);
  in[2] = {0.7};
  return in;
}

} // namespace

TEST_CASE("reverse mode matches central finite differences for every rule") {
  std::mt19937 rng(1234);
  std::set<Op> covered;
  for (const Case &c : kCases) {
    CAPTURE(c.expr);
    auto fe = compileExpr(c.expr);
    REQUIRE(fe->ok());
    for (const Inst &i : fe->ir->insts)
      covered.insert(i.op);
    Kernel fwd = forwardKernel(*fe->ir);
    Kernel grad = buildKernels(*fe->ir).gradient;
    auto in = drawInputs(c.n, rng);
    std::vector<double> gout(c.n);
    for (int64_t i = 0; i < c.n; ++i)
      gout[i] = 0.5 + 0.25 * i;
    InterpResult r = interpret(grad, *fe->ir, c.n, in, {}, gout);
    InterpResult base = interpret(fwd, *fe->ir, c.n, in, {});
    for (int64_t i = 0; i < c.n; ++i)
      CHECK(r.loss[i] == doctest::Approx(base.loss[i]).epsilon(1e-12));
    for (size_t k = 0; k < 3; ++k) {
      if (!(c.checked >> k & 1)) continue;
      for (size_t j = 0; j < in[k].size(); ++j) {
        const double h = 1e-6;
        auto plus = in, minus = in;
        plus[k][j] += h;
        minus[k][j] -= h;
        InterpResult fp = interpret(fwd, *fe->ir, c.n, plus, {});
        InterpResult fm = interpret(fwd, *fe->ir, c.n, minus, {});
        double fd = 0;
        for (int64_t i = 0; i < c.n; ++i)
          fd += gout[i] * (fp.loss[i] - fm.loss[i]) / (2 * h);
        CAPTURE(k);
        CAPTURE(j);
        CHECK(r.grads[k][j] == doctest::Approx(fd).epsilon(1e-6).scale(1));
      }
    }
  }
  // Every op through which a gradient can flow has a rule that some case exercised.
  for (size_t i = 0; i < opCount(); ++i) {
    Op op = static_cast<Op>(i);
    DiffClass cls = opInfo(op).diffClass;
    bool differentiable = cls == DiffClass::Smooth || cls == DiffClass::Kink ||
                          cls == DiffClass::Select || cls == DiffClass::Permutation;
    if (!differentiable) continue;
    CAPTURE(opInfo(op).name);
    CHECK(covered.count(op) == 1);
  }
}

TEST_CASE("conventions at kinks and ties follow torch") {
  auto fe = compileExpr("relu(a) + abs(b) + max(a, b) * 0");
  REQUIRE(fe->ok());
  Kernel grad = reverseMode(*fe->ir, forwardKernel(*fe->ir));
  InterpResult r = interpret(grad, *fe->ir, 2, {{0.0, 1.0}, {0.0, -2.0}, {1.0}}, {});
  CHECK(r.grads[0][0] == 0); // relu'(0) = 0
  CHECK(r.grads[0][1] == 1);
  CHECK(r.grads[1][0] == 0); // abs'(0) = 0
  CHECK(r.grads[1][1] == -1);

  auto tie = compileExpr("max(a, b)");
  InterpResult t = interpret(reverseMode(*tie->ir, forwardKernel(*tie->ir)), *tie->ir, 1,
                             {{1.0}, {1.0}, {0.0}}, {});
  CHECK(t.grads[0][0] == 0.5);
  CHECK(t.grads[1][0] == 0.5);

  auto flat = compileExpr("std(a) * b");
  InterpResult f = interpret(reverseMode(*flat->ir, forwardKernel(*flat->ir)), *flat->ir, 3,
                             {{2, 2, 2}, {1, 1, 1}, {0}}, {});
  for (double g : f.grads[0])
    CHECK(g == 0); // zero variance: gradient 0, not NaN

  auto sorted = compileExpr("sort(a) * index()");
  InterpResult s = interpret(reverseMode(*sorted->ir, forwardKernel(*sorted->ir)), *sorted->ir, 3,
                             {{3, 1, 2}, {0, 0, 0}, {0}}, {});
  // a sorts to (1, 2, 3) from positions (1, 2, 0); the weights index() = (0, 1, 2) go back there.
  CHECK(s.grads[0] == std::vector<double>{2, 0, 1});
}

TEST_CASE("the DiscoPOP form is finite for any margin after simplification") {
  auto fe = test::compileFile(test::stdlibDir() + "/lrml.loss");
  REQUIRE(fe->ok());
  KernelPair kernels = buildKernels(*fe->ir);
  const Kernel &fwd = kernels.forward, &grad = kernels.gradient;
  std::vector<double> chosen, zeros;
  for (double rho = -40000; rho <= 40000; rho += 500)
    chosen.push_back(rho), zeros.push_back(0);
  int64_t n = static_cast<int64_t>(chosen.size());
  std::vector<std::vector<double>> in{chosen, zeros, zeros, zeros};
  InterpResult r = interpret(grad, *fe->ir, n, in, {0.05, 0.05});
  InterpResult f = interpret(fwd, *fe->ir, n, in, {0.05, 0.05});
  for (int64_t i = 0; i < n; ++i) {
    CAPTURE(chosen[i]);
    CHECK(std::isfinite(r.loss[i]));
    CHECK(std::isfinite(f.loss[i]));
    CHECK(std::isfinite(r.grads[0][i]));
    CHECK(std::isfinite(r.grads[1][i]));
  }
  // And the naive form is not (exp(-x) overflows a double below x = -709, rho = -14180):
  // that is what the rewrite is for.
  Kernel naive = forwardKernel(*fe->ir);
  InterpResult bad = interpret(naive, *fe->ir, n, in, {0.05, 0.05});
  CHECK(std::isnan(bad.loss[0]));
}
