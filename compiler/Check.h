// `lossc check`: the report on one loss. This stage holds the static part (every front-end
// check, batch coupling, min_batch, the differentiability report); the numeric screening
// battery joins it once kernels can be compiled.
#pragma once

#include <string>

#include "Pipeline.h"

namespace lossc {

struct CheckOptions {
  bool strict = false; // warnings fail the check too
};

struct CheckReport {
  bool passed = false;
  size_t errors = 0, warnings = 0;
};

CheckReport runCheck(const Frontend &fe, const CheckOptions &options);

void renderCheckText(const Frontend &fe, const CheckReport &report, std::string &out);
// JSON schema "lossc.check/1", documented in docs/check.md.
void renderCheckJson(const Frontend &fe, const CheckReport &report, std::string &out);

} // namespace lossc
