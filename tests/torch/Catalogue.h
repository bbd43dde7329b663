// Independent libtorch implementations of the stdlib catalogue (../shared/CATALOGUE.md), one
// formula per loss written from the catalogue's table with torch's own stable primitives
// (softplus, log_sigmoid, sort). The parity tests and the benchmark hold the compiled kernels
// against these; nothing here is derived from the .loss files or the compiler.
#pragma once

#include <torch/types.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace lossc::ref {

// The input sets of the presets, in the ABI's order.
enum class Inputs {
  Pairwise,        // a_w, a_l, b_w, b_l
  PairwiseLengths, // a_w, a_l, b_w, b_l, n_w, n_l
  ReferenceFree,   // a_w, a_l, n_w, n_l
};
std::vector<std::string> inputNames(Inputs inputs);

using Formula = std::function<torch::Tensor(const std::vector<torch::Tensor> &in,
                                            const std::vector<double> &p)>;

struct Entry {
  std::string name;
  Inputs inputs;
  std::vector<std::pair<std::string, double>> params; // declaration order, with defaults
  std::vector<double> otherParams;                    // a non-default setting, same order
  bool batchCoupled;
  int64_t minBatch;
  bool sorts;      // sorts over the batch (the order of near-equal keys depends on rounding)
  Formula formula; // per-example losses; in: ABI order; p: declaration order
};

const std::vector<Entry> &catalogue();
// The entry of that name; throws std::runtime_error if there is none.
const Entry &entry(const std::string &name);

} // namespace lossc::ref
