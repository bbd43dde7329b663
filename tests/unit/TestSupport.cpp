// Shared test helpers.
#include "TestSupport.h"

namespace lossc::test {

std::string sourceDir() {
  return LOSSC_SOURCE_DIR;
}
std::string stdlibDir() {
  return sourceDir() + "/stdlib";
}

namespace {
FrontendOptions options() {
  FrontendOptions o;
  o.stdlibDir = stdlibDir();
  o.importPaths = {sourceDir() + "/tests/golden/modules"};
  return o;
}
} // namespace

std::unique_ptr<Frontend> compile(const std::string &text, const std::string &name) {
  return runFrontendOnText(name, text, options());
}

std::unique_ptr<Frontend> compileFile(const std::string &path) {
  return runFrontend(path, options());
}

std::vector<std::string> codes(const Frontend &fe) {
  std::vector<std::string> out;
  for (const Diagnostic &d : fe.diags.diagnostics())
    out.push_back(diagInfo(d.id).code);
  return out;
}

bool hasCode(const Frontend &fe, const std::string &code) {
  for (const std::string &c : codes(fe))
    if (c == code) return true;
  return false;
}

std::string rendered(const Frontend &fe) {
  std::string out;
  fe.diags.renderText(out);
  return out;
}

} // namespace lossc::test
