// Differentiability analysis on the typed IR. For every differentiable ("diff") input it finds
// whether a path with a non-zero derivative reaches the result, or whether the input reaches it
// only through piecewise-constant operations (comparisons, logic, stopgrad, a `where`
// condition), or not at all. A loss whose gradient is identically zero with respect to every
// differentiable input is an error (E0402). It also lists the non-smooth operations on gradient
// paths (kinks, sort, the conditions of `where`) for `lossc check`.
#pragma once

#include <string>
#include <vector>

#include "Diagnostics.h"
#include "Ir.h"

namespace lossc {

struct InputGradient {
  std::string name;
  enum Status : uint8_t { Flows, CutOff, Unused } status;
  SourceLoc cutAt; // CutOff: the first operation where the gradient stops
};

struct NonSmoothOp {
  ValueId inst;
  std::string what; // "abs: not differentiable at 0 (gradient 0 there)" ...
  SourceLoc loc;
};

struct DiffReport {
  std::vector<InputGradient> inputs; // differentiable inputs, declaration order
  std::vector<NonSmoothOp> nonSmooth;
};

// Analyses `ir` and reports E0401, E0402, W0401 and W0402. Returns the report either way.
DiffReport analyzeDifferentiability(const LossIr &ir, DiagEngine &diags);

} // namespace lossc
