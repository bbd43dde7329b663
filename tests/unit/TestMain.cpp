// The test runner: doctest, then the check that every diagnostic code of the registry was
// reported at least once by some test (golden files or unit tests). Run the whole binary for
// that check to mean anything; it is skipped when doctest filters the test cases.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "Diagnostics.h"

int main(int argc, char **argv) {
  doctest::Context context(argc, argv);
  int result = context.run();
  if (context.shouldExit()) return result;
  bool filtered = false;
  for (int i = 1; i < argc; ++i)
    filtered |= argv[i][0] == '-';
  if (filtered) return result;

  const auto &seen = lossc::DiagEngine::codesSeen();
  size_t missing = 0;
  for (size_t i = 0; i < lossc::diagCount(); ++i) {
    auto id = static_cast<lossc::DiagId>(i);
    // internal-* codes are lossc's own bugs: no input can (or should) trigger them.
    if (seen.count(id) || std::string(lossc::diagInfo(id).name).rfind("internal-", 0) == 0)
      continue;
    std::fprintf(stderr, "diagnostic %s (%s) is exercised by no test\n", lossc::diagInfo(id).code,
                 lossc::diagInfo(id).name);
    ++missing;
  }
  std::printf("diagnostic coverage: %zu of %zu codes exercised\n", lossc::diagCount() - missing,
              lossc::diagCount());
  return result != 0 ? result : (missing ? 1 : 0);
}
