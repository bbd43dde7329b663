// The diagnostic registry and its renderings.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "Diagnostics.h"
#include "TestSupport.h"

using namespace lossc;

TEST_CASE("registry: codes and names are unique and well formed") {
  std::set<std::string> codes, names;
  for (size_t i = 0; i < diagCount(); ++i) {
    const DiagInfo &d = diagInfo(static_cast<DiagId>(i));
    std::string code = d.code;
    CAPTURE(code);
    CHECK(codes.insert(code).second);
    CHECK(names.insert(d.name).second);
    REQUIRE(code.size() == 5);
    CHECK((code[0] == 'E') == (d.severity == Severity::Error));
    CHECK((code[0] == 'W') == (d.severity == Severity::Warning));
    CHECK(std::string(d.summary).size() > 10);
  }
}

TEST_CASE("text rendering: location, code, source line, caret, notes") {
  auto fe = test::compile("loss l {\n  inputs pairwise;\n  return mean(policy_chosen_logps);\n}\n",
                          "dir/scalar.loss");
  std::string text = test::rendered(*fe);
  CHECK(text.find("dir/scalar.loss:3:10: error[E0301]: the loss returns a scalar") == 0);
  CHECK(text.find(
            "\n      return mean(policy_chosen_logps);\n             ^~~~~~~~~~~~~~~~~~~~~~~~~") !=
        std::string::npos);
  CHECK(text.find("dir/scalar.loss:3:10: note: 'mean' reduces the batch") != std::string::npos);
  CHECK(text.find("\nhelp: return the per-example values") != std::string::npos);
  CHECK(text.find("1 error generated.") != std::string::npos);
}

TEST_CASE("caret columns count code points and keep tabs") {
  auto fe = test::compile("loss l {\n\tinputs pairwise;\n\t/* é */ return frob(1);\n}\n");
  std::string text = test::rendered(*fe);
  CHECK(text.find("test.loss:3:17: error[E0202]") == 0);
  CHECK(text.find("\n    \t               ^~~~\n") != std::string::npos);
}

TEST_CASE("JSON rendering: the same records, escaped") {
  auto fe = test::compile("loss l {\n  inputs pairwise;\n  return \"x\";\n}\n");
  std::string json;
  fe->diags.renderJson(json);
  CHECK(
      json.find(
          R"({"diagnostics":[{"severity":"error","code":"E0101","name":"unexpected-character","message":"unexpected character '\"'","file":"test.loss","line":3,"column":10,"length":1,"source_line":"  return \"x\";")") ==
      0);
  CHECK(json.find(R"("errors":2,"warnings":0})") != std::string::npos);
}

TEST_CASE("too many errors: stop with a marker, last") {
  std::string text = "loss l {\n  inputs pairwise;\n";
  for (int i = 0; i < 80; ++i)
    text += "  let v" + std::to_string(i) + " = nope" + std::to_string(i) + ";\n";
  text += "  return policy_chosen_logps;\n}\n";
  auto fe = test::compile(text);
  CHECK(fe->diags.errorCount() == 51);
  CHECK(fe->diags.diagnostics().back().id == DiagId::E0008);
  std::string out = test::rendered(*fe);
  CHECK(out.find("lossc: error[E0008]: too many errors (50)") != std::string::npos);
}

TEST_CASE("a missing file is a located-less E0001 naming the file") {
  auto fe = test::compileFile("/nonexistent/dir/x.loss");
  REQUIRE(test::codes(*fe) == std::vector<std::string>{"E0001"});
  CHECK(test::rendered(*fe).find(
            "cannot read '/nonexistent/dir/x.loss': No such file or directory") !=
        std::string::npos);
  auto dir = test::compileFile(test::sourceDir());
  CHECK(test::rendered(*dir).find("is a directory") != std::string::npos);
}
