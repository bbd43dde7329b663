// The numeric screening battery of `lossc check` on the catalogue and on proposals: LRML's
// shape (CATALOGUE.md, "LRML properties"), DPO's, unboundedness, discontinuities, overflow
// ranges, instabilities, equivalence, and the kernels' gradients against finite differences.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "Screen.h"
#include "TestSupport.h"

using namespace lossc;

namespace {

// One cache per test run, so that "seen before" starts empty and the catalogue is fingerprinted
// from this tree's stdlib.
struct ScratchDir {
  std::string path =
      (std::filesystem::temp_directory_path() / ("lossc_screen_test." + std::to_string(getpid())))
          .string();
  ScratchDir() { std::filesystem::remove_all(path); }
  ~ScratchDir() { std::filesystem::remove_all(path); }
};

ScreenOptions options() {
  static ScratchDir dir;
  ScreenOptions o;
  o.cacheDir = dir.path;
  o.stdlibDir = test::stdlibDir();
  o.remember = false;
  return o;
}

ScreenReport screenFile(const std::string &path, ScreenOptions o = options()) {
  auto fe = test::compileFile(path);
  REQUIRE(fe->ok());
  return screenLoss(*fe, o);
}

ScreenReport screenStdlib(const std::string &name) {
  return screenFile(test::stdlibDir() + "/" + name + ".loss");
}

bool has(const ScreenReport &r, const std::string &kind, ScreenFinding::Severity s) {
  for (const ScreenFinding &f : r.findings)
    if (f.kind == kind && f.severity == s) return true;
  return false;
}

size_t count(const ScreenReport &r, ScreenFinding::Severity s) {
  size_t n = 0;
  for (const ScreenFinding &f : r.findings)
    n += f.severity == s;
  return n;
}

} // namespace

TEST_CASE("screening lrml reproduces its known shape") {
  ScreenReport r = screenStdlib("lrml");
  REQUIRE(r.ran);
  CHECK(r.beta == 0.05);
  CHECK(r.valueAtZero == doctest::Approx(0.5 * std::log(2.0) + 0.5).epsilon(1e-9));
  // slope d/dx at x = 0: (1 - ln 2) / (4 tau) - 3/4 = +0.7843
  CHECK(r.slopeAtZero / r.beta == doctest::Approx((1 - std::log(2.0)) / 0.2 - 0.75).epsilon(1e-9));
  CHECK_FALSE(r.descentRaisesMargin);
  REQUIRE(r.extrema.size() == 2);
  CHECK(r.extrema[0].minimum);
  CHECK(std::fabs(r.extrema[0].rho - -2.3714) < 1e-4);
  CHECK(std::fabs(r.extrema[0].value - 0.785924) < 1e-6);
  CHECK_FALSE(r.extrema[1].minimum);
  CHECK(std::fabs(r.extrema[1].rho - 1.44012) < 1e-4);
  CHECK(std::fabs(r.extrema[1].value - 0.87829) < 1e-5);
  // non-convex for x in about [-0.014, 0.239]
  REQUIRE(r.nonConvex.size() == 1);
  CHECK(std::fabs(r.nonConvex[0].lo * r.beta - -0.014) < 0.002);
  CHECK(std::fabs(r.nonConvex[0].hi * r.beta - 0.239) < 0.002);
  CHECK(r.boundedBelow);
  CHECK(count(r, ScreenFinding::Error) == 0);
}

TEST_CASE("screening dpo: convex, bounded below, descent raises the margin, it learns") {
  ScreenReport r = screenStdlib("dpo");
  REQUIRE(r.ran);
  CHECK(r.slopeAtZero == doctest::Approx(-0.1 / 2).epsilon(1e-12)); // -beta / 2
  CHECK(r.descentRaisesMargin);
  CHECK(r.nonConvex.empty());
  CHECK(r.extrema.empty());
  CHECK(r.discontinuities.empty());
  CHECK(r.boundedBelow);
  CHECK(r.lowest >= 0);
  CHECK(r.findings.empty());
  CHECK(r.probe.accuracyAfter > 0.9);
  CHECK(r.probe.marginAfter > r.probe.marginBefore);
  CHECK_FALSE(r.probe.diverges);
}

TEST_CASE("screening finds robust unbounded below, and padll's and pfl's jumps at 0") {
  ScreenReport robust = screenStdlib("robust");
  CHECK_FALSE(robust.boundedBelow);
  CHECK(has(robust, "unbounded-below", ScreenFinding::Warning));
  for (const char *name : {"padll", "pfl"}) {
    CAPTURE(name);
    ScreenReport r = screenStdlib(name);
    REQUIRE(r.discontinuities.size() == 1);
    CHECK(r.discontinuities[0] == 0);
    CHECK(has(r, "discontinuity", ScreenFinding::Note));
  }
}

TEST_CASE("screening reports where cell and dbaql overflow f32, and nothing is NaN") {
  // cell: 0.5 e^-x > FLT_MAX for x < -ln(2 FLT_MAX) = -89.416; dbaql (a batch of equal
  // margins, c = 1/2): 0.5 e^(-0.9 x) > FLT_MAX for x < -89.416 / 0.9 = -99.351.
  double edge = std::log(2 * 3.4028234663852886e38);
  for (auto [name, x] : {std::pair{"cell", -edge}, std::pair{"dbaql", -edge / 0.9}}) {
    CAPTURE(name);
    ScreenReport r = screenStdlib(name);
    REQUIRE(r.infValue[1].size() == 1);
    CHECK(std::isinf(r.infValue[1][0].lo));
    CHECK(std::fabs(r.infValue[1][0].hi * r.beta - x) < 1e-3);
    CHECK(r.nanValue[0].empty());
    CHECK(r.nanGradient[0].empty());
    CHECK(r.nanValue[1].empty());
    CHECK(r.nanGradient[1].empty());
    CHECK(count(r, ScreenFinding::Error) == 0);
  }
}

TEST_CASE("screening proposals: a hand-written sigmoid, DPO times three, a naive softplus") {
  ScreenReport hand = screenFile(test::sourceDir() + "/examples/unstable_hand_sigmoid.loss");
  CHECK(has(hand, "nan-value", ScreenFinding::Error));
  CHECK(has(hand, "overflow-intermediate", ScreenFinding::Error));
  ScreenReport three = screenFile(test::sourceDir() + "/examples/dpo_times_three.loss");
  REQUIRE(three.equivalentTo.size() == 1);
  CHECK(three.equivalentTo[0] == "dpo (stdlib), scale 3");
  // log(1 + exp(-x)) is rewritten to softplus: no overflow, and it is dpo.
  ScreenReport naive = screenFile(test::sourceDir() + "/examples/naive_softplus.loss");
  CHECK(naive.infValue[0].empty());
  CHECK(naive.infValue[1].empty());
  REQUIRE(naive.equivalentTo.size() == 1);
  CHECK(naive.equivalentTo[0] == "dpo (stdlib), scale 1");
  // A proposal remembered once is "seen before" the next time, under another name.
  ScreenOptions o = options();
  o.cacheDir += "/remember";
  o.remember = true;
  auto fe = test::compile("loss mine {\n  inputs pairwise;\n  return softplus(-0.37 * "
                          "(policy_chosen_logps - policy_rejected_logps));\n}\n");
  REQUIRE(fe->ok());
  CHECK(screenLoss(*fe, o).equivalentTo.empty());
  auto again =
      test::compile("loss again {\n  inputs pairwise;\n  // the same, twice as large\n  return 2 * "
                    "softplus(-0.37 * (policy_chosen_logps - policy_rejected_logps));\n}\n");
  REQUIRE(again->ok());
  ScreenReport seen = screenLoss(*again, o);
  REQUIRE(seen.equivalentTo.size() == 1);
  CHECK(seen.equivalentTo[0] == "mine (seen before), scale 2");
  // Another version of 'again' (same name, other text) does not report 'again' itself, and
  // 'mine', now remembered once, is reported once.
  auto edited =
      test::compile("loss again {\n  inputs pairwise;\n  // edited\n  return 3 * "
                    "softplus(-0.37 * (policy_chosen_logps - policy_rejected_logps));\n}\n");
  REQUIRE(edited->ok());
  ScreenReport third = screenLoss(*edited, o);
  REQUIRE(third.equivalentTo.size() == 1);
  CHECK(third.equivalentTo[0] == "mine (seen before), scale 3");
}

TEST_CASE("screening raw log-probabilities: a log-probability used on its own") {
  // NaN wherever reference_chosen_logps < -30: invisible along the margin path (which holds
  // the reference log-probabilities at 0), found when every log-probability takes the same
  // value, its edge located.
  auto fe = test::compile("import pref;\nloss raw {\n  inputs pairwise;\n  param beta = 0.1 in (0, "
                          "inf);\n  let rho = margin(policy_chosen_logps, policy_rejected_logps, "
                          "reference_chosen_logps, reference_rejected_logps);\n  return "
                          "softplus(-beta * rho) + 0.01 * log(reference_chosen_logps + 30);\n}\n");
  REQUIRE(fe->ok());
  ScreenReport r = screenLoss(*fe, options());
  REQUIRE(r.ran);
  CHECK(r.nanValue[0].empty());
  CHECK(has(r, "nan-input", ScreenFinding::Error));
  bool located = false;
  for (const ScreenFinding &f : r.findings)
    located = located || (f.kind == "nan-input" &&
                          f.message.find("for v in [-100000, -30]") != std::string::npos);
  CHECK(located);
  // The trainer's broken example: NaN below its floor (-1000 by default).
  ScreenReport floor = screenFile(test::sourceDir() + "/examples/nan_below_floor.loss");
  CHECK(has(floor, "nan-input", ScreenFinding::Error));
  // An exp of a raw log-probability overflows only far out: a warning, not an error.
  auto over =
      test::compile("loss over {\n  inputs pairwise;\n  return softplus(policy_rejected_logps "
                    "- policy_chosen_logps) + 1e-9 * exp(-policy_chosen_logps);\n}\n");
  REQUIRE(over->ok());
  ScreenReport o = screenLoss(*over, options());
  CHECK(has(o, "inf-input", ScreenFinding::Warning));
  CHECK_FALSE(has(o, "nan-input", ScreenFinding::Error));
}

TEST_CASE("screening every catalogue loss: no NaN, gradients agree with finite differences") {
  for (const auto &entry : std::filesystem::directory_iterator(test::stdlibDir())) {
    if (entry.path().extension() != ".loss") continue;
    CAPTURE(entry.path().string());
    ScreenReport r = screenFile(entry.path().string());
    REQUIRE(r.ran);
    CHECK(r.gradientCheckError < 1e-5);
    CHECK(r.nanValue[0].empty());
    CHECK(r.nanGradient[0].empty());
    CHECK(count(r, ScreenFinding::Error) == 0);
    CHECK_FALSE(has(r, "inf-input", ScreenFinding::Warning)); // none uses a raw log-prob unsafely
    CHECK(r.probe.finite);
    CHECK(r.equivalentTo.empty()); // no two catalogue entries train alike
  }
}

TEST_CASE("screening does not run on a loss with errors") {
  auto fe = test::compile("loss l {\n  inputs pairwise;\n  return mean(policy_chosen_logps);\n}\n");
  REQUIRE_FALSE(fe->ok());
  ScreenReport r = screenLoss(*fe, options());
  CHECK_FALSE(r.ran);
  CHECK(r.notRun == "the loss has errors");
}
