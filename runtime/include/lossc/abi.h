/* The C ABI of a compiled lossc loss (pinned: see SPEC.md). One shared object holds one loss;
   the in-process JIT exposes the same functions. Includable from C and C++. */
#ifndef LOSSC_ABI_H
#define LOSSC_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LOSSC_ABI_VERSION 1

/* Status codes returned by the kernels (lossc_status_message describes each). */
#define LOSSC_STATUS_OK 0
#define LOSSC_STATUS_BATCH_TOO_SMALL 1   /* n < min_batch */
#define LOSSC_STATUS_PARAM_OUT_OF_RANGE 2 /* a parameter outside its range, or NaN */
#define LOSSC_STATUS_NULL_POINTER 3      /* inputs, an input buffer, or out (forward) is NULL */
#define LOSSC_STATUS_OUT_OF_MEMORY 4     /* a loss with sort could not allocate its scratch */

/* Notes on the contract, beyond the pinned declarations below:
   - min_value and max_value are the smallest and largest values accepted: an open bound such
     as beta > 0 is stored as the next double inside it (beta >= 4.9e-324).
   - A scalar input (type `real` in the .loss file) reads inputs[k][0]; its gradient is written
     to grads[k][0].
   - Output buffers (out, grads[k]) must not overlap the input buffers or each other.
   - batch_coupled is 1 whenever the kernel must see the whole batch in one call: an example's
     loss depends on other examples (batch reductions, sort, index(), batch_size()), or the loss
     has a scalar input, whose gradient sums over the batch. Otherwise a runtime may split the
     batch into slices and call the kernel once per slice. */

typedef struct {
  const char *name;
  int32_t differentiable;
} lossc_input_info;

typedef struct {
  const char *name;
  double default_value, min_value, max_value;
} lossc_param_info;

typedef struct {
  uint32_t abi_version;     /* LOSSC_ABI_VERSION */
  const char *name;         /* the loss's declared name */
  const char *source_sha256; /* hex digest of the .loss text compiled */
  const char *compiler_version;
  uint32_t n_inputs;
  const lossc_input_info *inputs; /* declaration order */
  uint32_t n_params;
  const lossc_param_info *params; /* declaration order */
  int32_t batch_coupled;    /* 1: an example's loss depends on other examples */
  int64_t min_batch;        /* smallest n accepted (>= 1) */
} lossc_meta;

const lossc_meta *lossc_get_meta(void);
const char *lossc_status_message(int32_t status);

/* out[i] = loss of example i; inputs[k] = n values of input k; params = n_params values in
   declaration order, or NULL for the defaults. Returns 0, or a nonzero status (n < min_batch,
   a parameter outside its range, a NULL pointer). Never writes outside the given buffers. */
int32_t lossc_forward_f32(int64_t n, const float *const *inputs, const double *params, float *out);
int32_t lossc_forward_f64(int64_t n, const double *const *inputs, const double *params,
                          double *out);

/* Forward and vector-Jacobian product in one fused pass:
   grads[k][j] = sum_i gout[i] * d out[i] / d inputs[k][j] for each differentiable input k.
   grads has n_inputs entries; entries of non-differentiable inputs, and any NULL entry, are
   skipped. gout == NULL means all ones. out may be NULL. */
int32_t lossc_forward_backward_f32(int64_t n, const float *const *inputs, const double *params,
                                   const float *gout, float *out, float *const *grads);
int32_t lossc_forward_backward_f64(int64_t n, const double *const *inputs, const double *params,
                                   const double *gout, double *out, double *const *grads);

#ifdef __cplusplus
}
#endif

#endif /* LOSSC_ABI_H */
