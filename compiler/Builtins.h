// The builtin functions and constants of the language, with their arity and the IR op each
// lowers to. The language reference (docs/language.md) documents every entry; a test holds the
// two in step.
#pragma once

#include <string>
#include <vector>

#include "Ir.h"

namespace lossc {

enum class BuiltinKind : uint8_t {
  Math,      // elementwise real -> real (op)
  Binary,    // elementwise (real, real) -> real (op)
  MinMax,    // one argument: batch reduction (reduceOp); two: elementwise (op)
  Reduction, // [B] -> scalar (op)
  Sort,      // [B] -> [B]
  Where,     // where(cond, a, b)
  Clamp,     // clamp(x, lo, hi) = min(max(x, lo), hi)
  StopGrad,  // stopgrad(x)
  Index,     // index(): [B], the example index
  BatchSize, // batch_size(): the number of examples N
};

struct Builtin {
  const char *name;
  BuiltinKind kind;
  uint8_t minArgs, maxArgs;
  Op op;
  Op reduceOp; // MinMax only
};

const Builtin *findBuiltin(const std::string &name);
const std::vector<Builtin> &builtins();

// Named constants usable anywhere: inf and pi.
bool findBuiltinConstant(const std::string &name, double &value);
std::vector<std::string> builtinConstantNames();

// Edit distance for "did you mean" suggestions; stops counting past `limit`.
size_t editDistance(const std::string &a, const std::string &b, size_t limit);
// The closest candidate within a third of the name's length (at least 1), or "".
std::string closestMatch(const std::string &name, const std::vector<std::string> &candidates);

} // namespace lossc
