// Reverse-mode differentiation on the typed IR. From the forward instructions it appends, as IR,
// the vector-Jacobian product grads[k][j] = sum_i gout[i] * d out[i] / d in[k][j] for every
// differentiable input k: one backward walk over the forward list, one rule per op
// (Autodiff.cpp states each rule's math). The seed gout[i] is the GradOut leaf.
//
// Conventions at points where the derivative does not exist, as torch takes them:
// relu'(0) = 0, abs'(0) = 0, min/max at a tie split the gradient in halves, min/max over the
// batch share it equally among the tied examples, std at zero variance has gradient 0, and sort
// sends each gradient back to the example that landed at that position (stable for ties).
#pragma once

#include "Ir.h"
#include "Kernel.h"

namespace lossc {

// Appends the VJP to `forward` (the loss's instructions, possibly already simplified).
Kernel reverseMode(const LossIr &ir, const Kernel &forward);

// The two kernels a loss compiles to. The forward is simplified; the gradient kernel is reverse
// mode applied to the simplified forward, then simplified again (the rules can form products
// that the stable rewrites apply to).
struct KernelPair {
  Kernel forward, gradient;
};
KernelPair buildKernels(const LossIr &ir);

} // namespace lossc
