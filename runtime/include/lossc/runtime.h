// The lossc runtime: load a compiled loss from a shared object (verified before use), bind its
// parameters by name, and run its kernels, splitting elementwise losses across threads. The
// JIT path (compiling a .loss in process) is in lossc/jit.h; the libtorch bridge in
// lossc/torch.h. No libtorch and no LLVM here.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "lossc/abi.h"

namespace lossc::rt {

// Every refusal of the runtime: a file that is not a valid loss, a bad parameter, a kernel
// status. The message says what and where.
class Error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// The ABI's functions, as one compiled loss provides them (dlsym or the JIT).
struct Functions {
  const lossc_meta *(*getMeta)(void) = nullptr;
  const char *(*statusMessage)(int32_t) = nullptr;
  int32_t (*forwardF32)(int64_t, const float *const *, const double *, float *) = nullptr;
  int32_t (*forwardF64)(int64_t, const double *const *, const double *, double *) = nullptr;
  int32_t (*forwardBackwardF32)(int64_t, const float *const *, const double *, const float *,
                                float *, float *const *) = nullptr;
  int32_t (*forwardBackwardF64)(int64_t, const double *const *, const double *, const double *,
                                double *, double *const *) = nullptr;
};

struct InputInfo {
  std::string name;
  bool differentiable;
};

struct ParamInfo {
  std::string name;
  double defaultValue, min, max; // accepted values are [min, max]
};

struct LoadOptions {
  // When set, the .loss file the object must have been compiled from: its SHA-256 must equal
  // the object's source_sha256.
  std::string sourcePath;
};

class Loss {
public:
  // dlopen()s a compiled loss and verifies it: the six ABI symbols, the ABI version, well-formed
  // metadata, and the source hash when options.sourcePath is given. Throws Error otherwise.
  static std::shared_ptr<Loss> open(const std::string &path, const LoadOptions &options = {});

  // Wraps functions whose code `owner` keeps alive (the JIT path); verifies the metadata.
  static std::shared_ptr<Loss> fromFunctions(const Functions &fns, std::shared_ptr<void> owner,
                                             const std::string &origin);

  const std::string &name() const { return name_; }
  const std::string &sourceSha256() const { return sha256_; }
  const std::string &compilerVersion() const { return compilerVersion_; }
  const std::vector<InputInfo> &inputs() const { return inputs_; }
  const std::vector<ParamInfo> &params() const { return params_; }
  bool batchCoupled() const { return batchCoupled_; }
  int64_t minBatch() const { return minBatch_; }
  const Functions &functions() const { return fns_; }

  // The index of an input or a parameter by name, or -1.
  int inputIndex(const std::string &name) const;
  int paramIndex(const std::string &name) const;

  // The defaults with the given values set, checked against the ranges: an unknown name, a
  // value outside its range or NaN throw Error naming the parameter and its range.
  std::vector<double> bindParams(const std::vector<std::pair<std::string, double>> &values) const;

  // The kernels (T = float or double). inputs: one buffer of n values per input, in declaration
  // order; params: n_params values (bindParams) or null for the defaults; grads: one buffer per
  // input, null where not wanted. Elementwise losses are split into up to `threads` slices run
  // in parallel; batch-coupled ones run whole. A nonzero kernel status throws Error.
  template <class T>
  void forward(int64_t n, const T *const *inputs, const double *params, T *out,
               int threads = 1) const;
  template <class T>
  void forwardBackward(int64_t n, const T *const *inputs, const double *params, const T *gout,
                       T *out, T *const *grads, int threads = 1) const;

private:
  Loss() = default;
  void readMeta(const std::string &origin);
  [[noreturn]] void fail(int32_t status) const;
  int slices(int64_t n, int threads) const;

  Functions fns_;
  std::shared_ptr<void> owner_;
  std::string name_, sha256_, compilerVersion_;
  std::vector<InputInfo> inputs_;
  std::vector<ParamInfo> params_;
  bool batchCoupled_ = false;
  int64_t minBatch_ = 1;
};

extern template void Loss::forward<float>(int64_t, const float *const *, const double *, float *,
                                          int) const;
extern template void Loss::forward<double>(int64_t, const double *const *, const double *, double *,
                                           int) const;
extern template void Loss::forwardBackward<float>(int64_t, const float *const *, const double *,
                                                  const float *, float *, float *const *,
                                                  int) const;
extern template void Loss::forwardBackward<double>(int64_t, const double *const *, const double *,
                                                   const double *, double *, double *const *,
                                                   int) const;

} // namespace lossc::rt
