// `lossc check`: the report on one loss: the static part (every front-end check, batch
// coupling, min_batch, the differentiability report) and the numeric screening battery
// (Screen.h), as text or JSON.
#pragma once

#include <string>

#include "Pipeline.h"
#include "Screen.h"

namespace lossc {

struct CheckOptions {
  bool strict = false; // warnings fail the check too
};

struct CheckReport {
  bool passed = false;
  size_t errors = 0, warnings = 0; // diagnostics and screening findings together
  const ScreenReport *screen = nullptr;
};

// `screen` (may be null: static checks only) must outlive the report.
CheckReport runCheck(const Frontend &fe, const CheckOptions &options,
                     const ScreenReport *screen = nullptr);

void renderCheckText(const Frontend &fe, const CheckReport &report, std::string &out);
// JSON schema "lossc.check/2", documented in docs/check.md.
void renderCheckJson(const Frontend &fe, const CheckReport &report, std::string &out);

} // namespace lossc
