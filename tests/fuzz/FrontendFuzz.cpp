// libFuzzer target: the whole front end (limits, lexer, parser, sema, differentiability,
// diagnostics in text and JSON) on arbitrary bytes. Any crash, sanitizer report, leak or
// timeout is a bug; diagnostics are the expected outcome.
#include <cstddef>
#include <cstdint>
#include <string>

#include "Check.h"
#include "Ir.h"
#include "Pipeline.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lossc::FrontendOptions options;
  std::unique_ptr<lossc::Frontend> fe = lossc::runFrontendOnText(
      "fuzz.loss", std::string(reinterpret_cast<const char *>(data), size), options);
  std::string out;
  fe->diags.renderText(out);
  fe->diags.renderJson(out);
  lossc::CheckReport report = lossc::runCheck(*fe, {});
  lossc::renderCheckJson(*fe, report, out);
  if (fe->ir) lossc::printIr(*fe->ir, fe->sources, out);
  return 0;
}
