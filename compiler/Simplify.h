// Simplification and stable lowering of a kernel's IR, applied before and after reverse mode:
//   log(sigmoid(x)) -> logsigmoid(x)        log(1 + x) -> log1p(x)      exp(x) - 1 -> expm1(x)
//   1 - sigmoid(x)  -> sigmoid(-x)          -(-x) -> x                  log(exp(x)) -> x
//   x * 1 -> x, x + 0 -> x
//   a product holding exp(b) and another exp or sigmoid factor -> one exp of the sum of their
//   logarithms: sigmoid(a) * exp(b) -> exp(logsigmoid(a) + b). This is the DiscoPOP NaN: for
//   large negative margins sigmoid(x/tau) underflows to 0 while exp(-x) overflows, and
//   0 * inf is NaN in the forward pass and in the gradient.
// Constant folding and CSE come with the IR builder. Everything keeps the value of the
// expression, so the rewrites never change what a loss means, only how it is computed.
#pragma once

#include "Kernel.h"

namespace lossc {

void simplify(Kernel &k);

// Rewrites mean, var and std into sums, for code generation: mean(x) = sum(x) / N,
// var(x) = sum((x - mean(x))^2) / (N - 1) (two passes: stable), std(x) = sqrt(var(x)).
void expandReductions(Kernel &k);

} // namespace lossc
