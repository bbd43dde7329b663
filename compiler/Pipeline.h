// The front-end pipeline: read the file, check limits, parse it and its imports, run semantic
// analysis to typed IR, run the differentiability analysis. Every stage's output stays in the
// Frontend object so that the driver can dump any of them (--emit) and tools can inspect them.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "Diagnostics.h"
#include "Differentiability.h"
#include "Ir.h"
#include "Limits.h"
#include "Sema.h"
#include "Source.h"

namespace lossc {

struct FrontendOptions {
  Limits limits;
  std::vector<std::string> importPaths; // searched after the importing file's own directory
  std::string stdlibDir;                // its lib/ is searched last; "" for the default
};

// The stdlib directory: $LOSSC_STDLIB if set, else the one this build was configured with.
std::string defaultStdlibDir();

struct Frontend {
  SourceManager sources;
  DiagEngine diags{sources};
  Program program;
  std::optional<LossIr> ir;
  DiffReport diff;

  bool ok() const { return ir.has_value() && !diags.hasErrors(); }
};

// Runs the front end on a file. Never throws for bad input: every problem is a diagnostic.
std::unique_ptr<Frontend> runFrontend(const std::string &path, const FrontendOptions &options);

// The same on text held in memory (tests, fuzzing); `name` is used in diagnostics and its
// directory for imports.
std::unique_ptr<Frontend> runFrontendOnText(const std::string &name, std::string text,
                                            const FrontendOptions &options);

} // namespace lossc
