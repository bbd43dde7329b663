// A kernel: the instructions one compiled function evaluates, and its outputs. The forward
// kernel has the loss alone; the gradient kernel (Autodiff.h) adds the vector-Jacobian product
// for every differentiable input, fused with the forward in one list.
#pragma once

#include <vector>

#include "Ir.h"

namespace lossc {

struct Kernel {
  std::vector<Inst> insts;    // topologically ordered, as in LossIr
  ValueId loss = kNoValue;    // real[B]
  std::vector<ValueId> grads; // one per input: kNoValue when not differentiable or zero
  bool withGradient = false;
};

Kernel forwardKernel(const LossIr &ir);

} // namespace lossc
