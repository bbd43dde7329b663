// A reference interpreter of kernels in double precision, one op at a time over whole arrays.
// It is the independent semantics that the compiled kernels are tested against, and what
// finite-difference checks of the derivative rules run on. Not fast; not for training.
#pragma once

#include <cstdint>
#include <vector>

#include "Ir.h"
#include "Kernel.h"

namespace lossc {

struct InterpResult {
  std::vector<double> loss;               // n values
  std::vector<std::vector<double>> grads; // per input: n values (1 for a scalar input), or empty
};

// inputs[k] holds n values for a [B] input, 1 for a scalar one; params one value each; gout n
// values, or empty for all ones.
InterpResult interpret(const Kernel &k, const LossIr &ir, int64_t n,
                       const std::vector<std::vector<double>> &inputs,
                       const std::vector<double> &params, const std::vector<double> &gout = {});

} // namespace lossc
