// The libtorch bridge: a compiled loss as an autograd function. The forward runs the kernel on
// CPU tensors and returns the per-example losses; backward is the kernel's fused
// vector-Jacobian product. Tensors: 1-D, float32 or float64 (all alike), on the CPU, all of
// length n (a scalar input is read from element 0); any stride (copied to contiguous). Misuse
// (a wrong dtype or length, a non-differentiable input that requires grad, double backward)
// throws rt::Error with a clear message.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lossc/runtime.h"

namespace lossc::rt {

// inputs: one tensor per input of the loss, in declaration order. params: n_params values (see
// Loss::bindParams), or empty for the defaults. threads: for elementwise losses.
at::Tensor apply(const std::shared_ptr<const Loss> &loss, const std::vector<at::Tensor> &inputs,
                 const std::vector<double> &params = {}, int threads = 1);

// The same with the inputs by name (each of the loss's inputs exactly once).
at::Tensor apply(const std::shared_ptr<const Loss> &loss,
                 const std::map<std::string, at::Tensor> &inputs,
                 const std::vector<double> &params = {}, int threads = 1);

} // namespace lossc::rt
