// The runtime: the loader refuses tampered and wrong files, each with its own message and
// without harm to the process; parameter binding; the threaded runner equals one thread; the
// JIT and the shared object of a loss agree.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "Backend.h"
#include "Pipeline.h"
#include "lossc/jit.h"
#include "lossc/runtime.h"

using namespace lossc;
namespace fs = std::filesystem;

namespace {

std::string stdlib() {
  return LOSSC_SOURCE_DIR "/stdlib";
}
// A directory of this run's objects, removed at exit.
std::string scratch() {
  static struct Dir {
    std::string path =
        (fs::temp_directory_path() / ("lossc_runtime_test." + std::to_string(getpid()))).string();
    Dir() { fs::create_directories(path); }
    ~Dir() { fs::remove_all(path); }
  } dir;
  return dir.path;
}

// Compiles stdlib/NAME.loss to a shared object in the scratch directory.
std::string compileSo(const std::string &name) {
  std::string out = scratch() + "/" + name + ".so";
  if (fs::exists(out)) return out;
  FrontendOptions options;
  options.stdlibDir = stdlib();
  auto fe = runFrontend(stdlib() + "/" + name + ".loss", options);
  REQUIRE(fe->ok());
  auto bm = buildModule(*fe);
  REQUIRE(bm);
  REQUIRE(writeSharedObject(*fe, *bm, out));
  return out;
}

// The message of the rt::Error that `f` throws ("" if it throws none).
template <class F> std::string refusal(F f) {
  try {
    f();
  } catch (const rt::Error &e) {
    return e.what();
  }
  return "";
}

double maxRelDiff(const std::vector<float> &a, const std::vector<float> &b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::fabs(double(a[i]) - b[i]) / std::max(1e-30, std::fabs(double(b[i]))));
  return m;
}

bool contains(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("a compiled loss loads, verifies and reports its metadata") {
  auto loss = rt::Loss::open(compileSo("cdpo"), {stdlib() + "/cdpo.loss"});
  CHECK(loss->name() == "cdpo");
  REQUIRE(loss->inputs().size() == 4);
  CHECK(loss->inputs()[0].name == "policy_chosen_logps");
  CHECK(loss->inputs()[0].differentiable);
  CHECK_FALSE(loss->inputs()[2].differentiable);
  REQUIRE(loss->params().size() == 2);
  CHECK(loss->params()[1].name == "label_smoothing");
  CHECK(loss->params()[1].defaultValue == 0.1);
  CHECK_FALSE(loss->batchCoupled());
  CHECK(loss->minBatch() == 1);
  CHECK(loss->sourceSha256().size() == 64);
  CHECK(loss->compilerVersion().size() > 0);
  auto dbaql = rt::Loss::open(compileSo("dbaql"));
  CHECK(dbaql->batchCoupled());
  CHECK(dbaql->minBatch() == 2);
}

TEST_CASE("the loader refuses wrong and tampered files, each with its own message") {
  std::string dpo = compileSo("dpo");
  auto open = [](const std::string &path, const std::string &source = "") {
    return refusal([&] { rt::Loss::open(path, {source}); });
  };
  CHECK(contains(open(scratch() + "/missing.so"), "cannot open"));
  CHECK(contains(open(scratch()), "not a regular file"));
  // Truncated to half its size: the dynamic loader rejects it.
  std::string truncated = scratch() + "/truncated.so";
  fs::copy_file(dpo, truncated, fs::copy_options::overwrite_existing);
  fs::resize_file(truncated, fs::file_size(dpo) / 2);
  CHECK(contains(open(truncated), "is not a loadable shared object"));
  // Text, not an object.
  std::string text = scratch() + "/text.so";
  std::ofstream(text) << "loss dpo { }\n";
  CHECK(contains(open(text), "is not a loadable shared object"));
  CHECK(contains(open(LOSSC_FIXTURE_DIR "/libnot_a_loss.so"),
                 "is not a compiled lossc loss: it lacks the symbol lossc_get_meta"));
  CHECK(contains(open(LOSSC_FIXTURE_DIR "/libmissing_symbol.so"),
                 "lacks the symbol lossc_forward_backward_f32"));
  CHECK(contains(open(LOSSC_FIXTURE_DIR "/libabi_v2.so"),
                 "was built for lossc ABI version 2; this runtime reads version 1"));
  CHECK(contains(open(LOSSC_FIXTURE_DIR "/libbad_default.so"),
                 "malformed lossc metadata: the default of 'beta' lies outside its range"));
  // The right object, the wrong source.
  CHECK(contains(open(dpo, stdlib() + "/lrml.loss"), "was not compiled from"));
  CHECK(contains(open(dpo, scratch() + "/nothing.loss"), "cannot read the source"));
  // And the right pair still loads.
  CHECK(open(dpo, stdlib() + "/dpo.loss") == "");
}

TEST_CASE("parameters bind by name, within their ranges") {
  auto loss = rt::Loss::open(compileSo("robust"));
  CHECK(loss->bindParams({}) == std::vector<double>{0.1, 0.1});
  CHECK(loss->bindParams({{"label_smoothing", 0.25}}) == std::vector<double>{0.1, 0.25});
  CHECK(contains(refusal([&] {
                   loss->bindParams({{"gamma", 1}});
                 }),
                 "has no parameter 'gamma' (it has: beta, label_smoothing)"));
  CHECK(contains(refusal([&] {
                   loss->bindParams({{"label_smoothing", 0.5}});
                 }),
                 "parameter 'label_smoothing' of loss 'robust' must lie in [0, 0.5), got 0.5"));
  // Open bounds read as written in the .loss file, not as the next double inside them.
  CHECK(contains(refusal([&] { loss->bindParams({{"beta", NAN}}); }), "must lie in (0, inf)"));
  CHECK(contains(refusal([&] { loss->bindParams({{"beta", 0}}); }), "must lie in (0, inf), got 0"));
  // A kernel status becomes an error with the kernel's own message.
  std::vector<double> x(3, -1.0);
  std::vector<const double *> in(4, x.data());
  std::vector<double> out(3), bad{-1, 0.1};
  CHECK(contains(refusal([&] { loss->forward<double>(3, in.data(), bad.data(), out.data()); }),
                 "refused the call (status 2): a parameter is outside its declared range"));
  auto dbaql = rt::Loss::open(compileSo("dbaql"));
  CHECK(contains(refusal([&] { dbaql->forward<double>(1, in.data(), nullptr, out.data()); }),
                 "status 1"));
}

TEST_CASE("threads: an elementwise loss split in slices equals one call; coupled ones run whole") {
  const int64_t n = 200003;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-60, -5);
  std::vector<std::vector<float>> x(4, std::vector<float>(n));
  for (auto &col : x)
    for (float &v : col)
      v = u(rng);
  std::vector<const float *> in;
  for (auto &col : x)
    in.push_back(col.data());
  for (std::string name : {"lrml", "aot"}) {
    CAPTURE(name);
    auto loss = rt::Loss::open(compileSo(name));
    std::vector<float> out1(n), out2(n), g1(n), g2(n), h1(n), h2(n);
    std::vector<float *> grads1{g1.data(), h1.data(), nullptr, nullptr};
    std::vector<float *> grads2{g2.data(), h2.data(), nullptr, nullptr};
    loss->forwardBackward<float>(n, in.data(), nullptr, nullptr, out1.data(), grads1.data(), 1);
    loss->forwardBackward<float>(n, in.data(), nullptr, nullptr, out2.data(), grads2.data(), 3);
    // Equal to rounding: where a slice starts decides which examples fall in the vectorized
    // body (libmvec) and which in the scalar remainder (libm), whose last bits differ.
    CHECK(maxRelDiff(out1, out2) < 1e-6);
    CHECK(maxRelDiff(g1, g2) < 1e-6);
    CHECK(maxRelDiff(h1, h2) < 1e-6);
    std::vector<float> f(n);
    loss->forward<float>(n, in.data(), nullptr, f.data(), 2);
    CHECK(maxRelDiff(f, out1) < 1e-6);
  }
}

TEST_CASE("the JIT path gives the same loss as the shared object") {
  auto so = rt::Loss::open(compileSo("aqfl"));
  rt::CompileOptions options;
  options.stdlibDir = stdlib();
  auto jit = rt::compile(stdlib() + "/aqfl.loss", options);
  CHECK(jit->name() == so->name());
  CHECK(jit->sourceSha256() == so->sourceSha256());
  std::vector<double> a{-1, -2, -3, -4, -5}, b{-2, -2, -2, -9, -1}, c{-1, -1, -1, -1, -1};
  std::vector<const double *> in{a.data(), b.data(), c.data(), c.data()};
  std::vector<double> o1(5), o2(5);
  so->forward<double>(5, in.data(), nullptr, o1.data());
  jit->forward<double>(5, in.data(), nullptr, o2.data());
  CHECK(o1 == o2);
  // Errors carry the diagnostics.
  CHECK(contains(refusal([&] {
                   rt::compileText("bad.loss",
                                   "loss x { inputs pairwise; return mean(policy_chosen_logps); }");
                 }),
                 "error[E0301]"));
}
