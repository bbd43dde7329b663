// `lossc eval`: JIT-compile a loss, run its fused forward+backward kernel on the inputs of a CSV
// file, print the per-example loss and the gradient of every differentiable input as CSV.
#pragma once

#include <string>
#include <vector>

#include "Pipeline.h"

namespace lossc {

struct EvalOptions {
  std::string csvPath;             // header: input names; one row per example
  std::vector<std::string> params; // NAME=VALUE
  bool f32 = false;                // the float kernel instead of the double one
};

// Returns the exit status (0, 1 for input errors, 2 for usage errors); `out` gets the CSV,
// `error` a message when there is one beyond the diagnostics.
int runEval(Frontend &fe, const EvalOptions &options, std::string &out, std::string &error);

} // namespace lossc
