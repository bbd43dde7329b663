// Semantic analysis: AST -> typed IR. Resolves names (reporting unknown names and functions
// with suggestions, arity, redefinitions, recursion), evaluates hyperparameter defaults and
// ranges, inlines user functions, checks types and shapes (the body must return real[B]), and
// fills in batch coupling and min_batch.
#pragma once

#include <optional>
#include <vector>

#include "Ast.h"
#include "Diagnostics.h"
#include "Ir.h"
#include "Limits.h"

namespace lossc {

// Everything the parser produced for one compilation: modules[0] is the file being compiled,
// the rest are the modules it imports (directly or not).
struct Program {
  AstContext ast;
  std::vector<Module> modules;
};

// Returns the typed IR, or nothing when the program has errors (all of them reported).
std::optional<LossIr> analyze(const Program &program, const Limits &limits, DiagEngine &diags);

} // namespace lossc
