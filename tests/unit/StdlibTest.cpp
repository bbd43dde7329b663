// The catalogue written so far and the examples: they compile; their interfaces are the pinned
// ones (SPEC.md); the language reference documents every builtin and every diagnostic.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "Builtins.h"
#include "TestSupport.h"

using namespace lossc;
namespace fs = std::filesystem;

namespace {
std::vector<std::string> lossFiles(const std::string &dir) {
  std::vector<std::string> out;
  for (const auto &e : fs::directory_iterator(dir))
    if (e.path().extension() == ".loss") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string slurp(const std::string &path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const char *kPairwise[] = {"policy_chosen_logps", "policy_rejected_logps", "reference_chosen_logps",
                           "reference_rejected_logps"};
} // namespace

TEST_CASE("every stdlib loss compiles without a diagnostic and is named after its file") {
  auto files = lossFiles(test::stdlibDir());
  REQUIRE(files.size() >= 4);
  for (const std::string &path : files) {
    CAPTURE(path);
    auto fe = test::compileFile(path);
    CHECK(test::rendered(*fe) == "");
    REQUIRE(fe->ok());
    CHECK(fe->ir->name == fs::path(path).stem().string());
  }
}

TEST_CASE("stdlib interfaces: inputs, parameters, coupling") {
  struct Expected {
    const char *name;
    std::vector<std::pair<const char *, double>> params;
    bool coupled;
    int64_t minBatch;
  };
  const Expected expected[] = {
      {"dpo", {{"beta", 0.1}}, false, 1},
      {"lrml", {{"beta", 0.05}, {"tau", 0.05}}, false, 1},
      {"dbaql", {{"beta", 0.05}, {"tau", 0.05}}, true, 2},
      {"aot", {{"beta", 0.1}, {"label_smoothing", 0}}, true, 1},
  };
  for (const Expected &e : expected) {
    CAPTURE(e.name);
    auto fe = test::compileFile(test::stdlibDir() + "/" + e.name + ".loss");
    REQUIRE(fe->ok());
    const LossIr &ir = *fe->ir;
    REQUIRE(ir.inputs.size() == 4);
    for (size_t k = 0; k < 4; ++k) {
      CHECK(ir.inputs[k].name == kPairwise[k]);
      CHECK(ir.inputs[k].differentiable == (k < 2));
      CHECK(ir.inputs[k].shape == Shape::Batch);
    }
    REQUIRE(ir.params.size() == e.params.size());
    for (size_t k = 0; k < e.params.size(); ++k) {
      CHECK(ir.params[k].name == e.params[k].first);
      CHECK(ir.params[k].defaultValue == e.params[k].second);
    }
    CHECK(ir.batchCoupled == e.coupled);
    CHECK(ir.minBatch == e.minBatch);
    std::string listing;
    printIr(ir, fe->sources, listing);
    CHECK(listing.find("loss " + std::string(e.name) + "\n") == 0);
    CHECK(listing.find("  return %" + std::to_string(ir.result) + "\n") != std::string::npos);
  }
}

TEST_CASE("examples: broken_* files fail, the others compile cleanly") {
  auto files = lossFiles(test::sourceDir() + "/examples");
  REQUIRE(files.size() >= 2);
  for (const std::string &path : files) {
    CAPTURE(path);
    auto fe = test::compileFile(path);
    if (fs::path(path).filename().string().rfind("broken_", 0) == 0)
      CHECK(fe->diags.hasErrors());
    else
      CHECK(test::rendered(*fe) == "");
  }
}

TEST_CASE("the language reference documents every builtin, preset and diagnostic") {
  std::string doc = slurp(test::sourceDir() + "/docs/language.md");
  for (const Builtin &b : builtins()) {
    CAPTURE(b.name);
    CHECK(doc.find("`" + std::string(b.name) + "(") != std::string::npos);
  }
  for (const std::string &p : presetNames())
    CHECK(doc.find("`" + p + "`") != std::string::npos);
  for (size_t i = 0; i < diagCount(); ++i) {
    const DiagInfo &d = diagInfo(static_cast<DiagId>(i));
    CAPTURE(d.code);
    CHECK(doc.find(std::string(d.code) + "") != std::string::npos);
  }
}
