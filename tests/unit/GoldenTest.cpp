// The golden tests: every tests/golden/*.loss file is compiled, and its diagnostics must be
// exactly those its comments expect, on the lines they are written on:
//     return mean(x);   // expect-error[E0301]: returns a scalar
//     // expect-error@+1[E0103]: unterminated     (on the next line; @-N for earlier lines)
// A line may carry several expectations, one after the other.
// The text after the colon must occur in the message. A file without expectations must compile
// with no diagnostic at all. Modules for import tests live in tests/golden/modules/.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "TestSupport.h"

namespace {

struct Expectation {
  std::string severity; // "error" or "warning"
  std::string code;
  uint32_t line;
  std::string text;
  bool matched = false;
};

std::vector<Expectation> readExpectations(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::string line;
  std::vector<Expectation> out;
  static const std::regex re(
      R"(//\s*expect-(error|warning)(@([+-]\d+))?\[(\w+)\]:\s*(.*?)\s*(?=//\s*expect-|$))");
  for (uint32_t n = 1; std::getline(in, line); ++n) {
    for (auto it = std::sregex_iterator(line.begin(), line.end(), re); it != std::sregex_iterator();
         ++it) {
      const std::smatch &m = *it;
      int offset = m[3].matched ? std::stoi(m[3].str()) : 0;
      out.push_back({m[1].str(), m[4].str(), static_cast<uint32_t>(static_cast<int>(n) + offset),
                     m[5].str()});
    }
  }
  return out;
}

} // namespace

TEST_CASE("golden files: diagnostics are exactly the inline expectations") {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const auto &entry : fs::directory_iterator(lossc::test::sourceDir() + "/tests/golden"))
    if (entry.path().extension() == ".loss") files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 20);

  size_t expectations = 0;
  for (const std::string &path : files) {
    CAPTURE(path);
    std::vector<Expectation> expected = readExpectations(path);
    expectations += expected.size();
    auto fe = lossc::test::compileFile(path);
    for (const lossc::Diagnostic &d : fe->diags.diagnostics()) {
      const lossc::DiagInfo &info = lossc::diagInfo(d.id);
      std::string severity = info.severity == lossc::Severity::Error ? "error" : "warning";
      bool inMain = d.loc.valid() && d.loc.file == 1;
      auto it = std::find_if(expected.begin(), expected.end(), [&](const Expectation &e) {
        return !e.matched && inMain && e.line == d.loc.line && e.code == info.code &&
               e.severity == severity && d.message.find(e.text) != std::string::npos;
      });
      if (it == expected.end()) {
        std::string text;
        lossc::renderDiagnostic(fe->sources, d, text);
        FAIL_CHECK("unexpected diagnostic:\n" << text);
      } else {
        it->matched = true;
      }
    }
    for (const Expectation &e : expected)
      if (!e.matched)
        FAIL_CHECK("line " << e.line << ": expected " << e.severity << "[" << e.code << "] \""
                           << e.text << "\" was not reported; got:\n"
                           << lossc::test::rendered(*fe));
  }
  CHECK(expectations >= 40);
}
