/* A plain C program, as a user would write one: dlopen a compiled loss, read its metadata, call
   its kernels, and compare with the formulas of CATALOGUE.md written out here in C.
   Usage: abi_test DPO.so LRML.so */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lossc/abi.h"

typedef const lossc_meta *(*get_meta_fn)(void);
typedef int32_t (*fwd64_fn)(int64_t, const double *const *, const double *, double *);
typedef int32_t (*fb64_fn)(int64_t, const double *const *, const double *, const double *,
                           double *, double *const *);
typedef int32_t (*fb32_fn)(int64_t, const float *const *, const double *, const float *, float *,
                           float *const *);

static int failures = 0, checks = 0;

static void expect(int ok, const char *what, double got, double want) {
  ++checks;
  if (!ok) {
    ++failures;
    printf("FAIL: %s: got %.17g, want %.17g\n", what, got, want);
  }
}

static void close_to(const char *what, double got, double want, double tol) {
  double scale = fabs(want) > 1 ? fabs(want) : 1;
  expect(fabs(got - want) <= tol * scale, what, got, want);
}

static double softplus(double z) { return fmax(z, 0) + log1p(exp(-fabs(z))); }
static double sigmoid(double z) { return 1 / (1 + exp(-z)); }
static double logsigmoid(double z) { return fmin(z, 0) - log1p(exp(-fabs(z))); }

/* LRML in the stable form of CATALOGUE.md: sigma(-x/tau) sp(-x) + exp(log sigma(x/tau) - x). */
static double lrml(double x, double tau) {
  return sigmoid(-x / tau) * softplus(-x) + exp(logsigmoid(x / tau) - x);
}

static void *load(const char *path, const char *expected_name) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    printf("FAIL: dlopen %s: %s\n", path, dlerror());
    ++failures;
    return NULL;
  }
  get_meta_fn get_meta = (get_meta_fn)dlsym(h, "lossc_get_meta");
  const lossc_meta *m = get_meta();
  expect(m->abi_version == LOSSC_ABI_VERSION, "abi_version", m->abi_version, LOSSC_ABI_VERSION);
  expect(strcmp(m->name, expected_name) == 0, "name", 0, 0);
  expect(strlen(m->source_sha256) == 64, "sha256 length", strlen(m->source_sha256), 64);
  expect(m->n_inputs == 4, "n_inputs", m->n_inputs, 4);
  expect(strcmp(m->inputs[1].name, "policy_rejected_logps") == 0, "input name", 0, 0);
  expect(m->inputs[1].differentiable == 1 && m->inputs[2].differentiable == 0, "diff flags", 0, 0);
  expect(strcmp(m->params[0].name, "beta") == 0, "param name", 0, 0);
  expect(m->params[0].min_value > 0 && m->params[0].min_value < 1e-300, "beta > 0", m->params[0].min_value, 0);
  return h;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: abi_test DPO.so LRML.so\n");
    return 2;
  }
  enum { N = 9 };
  double aw[N], al[N], bw[N], bl[N], out[N], gw[N], gl[N];
  const double *in[4] = {aw, al, bw, bl};
  double *grads[4] = {gw, gl, NULL, NULL};
  double margins[N] = {0, 1e-9, -0.5, 2, -30, 150, -4000, 4000, -1e6};
  for (int i = 0; i < N; ++i) aw[i] = -10 + margins[i], al[i] = -10, bw[i] = -3, bl[i] = -3;

  /* DPO: sp(-beta rho); d/d aw = -beta sigma(-beta rho); d/d al = +beta sigma(-beta rho). */
  void *dpo = load(argv[1], "dpo");
  if (dpo) {
    fb64_fn fb = (fb64_fn)dlsym(dpo, "lossc_forward_backward_f64");
    double beta = 0.1;
    expect(fb(N, in, NULL, NULL, out, grads) == LOSSC_STATUS_OK, "dpo status", 0, 0);
    for (int i = 0; i < N; ++i) {
      double z = -beta * margins[i];
      close_to("dpo loss", out[i], softplus(z), 1e-12);
      close_to("dpo d/d chosen", gw[i], -beta * sigmoid(z), 1e-12);
      close_to("dpo d/d rejected", gl[i], beta * sigmoid(z), 1e-12);
    }
    double bad = -1;
    expect(fb(N, in, &bad, NULL, out, grads) == LOSSC_STATUS_PARAM_OUT_OF_RANGE, "beta < 0 refused", 0, 0);
    const char *(*msg)(int32_t) = (const char *(*)(int32_t))dlsym(dpo, "lossc_status_message");
    expect(strstr(msg(LOSSC_STATUS_PARAM_OUT_OF_RANGE), "range") != NULL, "status message", 0, 0);
  }

  /* LRML at beta = tau = 0.05, finite everywhere; the f32 kernel too. */
  void *lr = load(argv[2], "lrml");
  if (lr) {
    fb64_fn fb = (fb64_fn)dlsym(lr, "lossc_forward_backward_f64");
    fb32_fn fb32 = (fb32_fn)dlsym(lr, "lossc_forward_backward_f32");
    expect(fb(N, in, NULL, NULL, out, grads) == LOSSC_STATUS_OK, "lrml status", 0, 0);
    for (int i = 0; i < N; ++i) {
      double x = 0.05 * margins[i];
      close_to("lrml loss", out[i], lrml(x, 0.05), 1e-12);
      /* d/d aw = beta dL/dx by central differences in x on the C formula. */
      double h = 1e-6 * (fabs(x) > 1 ? fabs(x) : 1);
      double slope = (lrml(x + h, 0.05) - lrml(x - h, 0.05)) / (2 * h);
      close_to("lrml d/d chosen", gw[i], 0.05 * slope, 1e-5);
      expect(isfinite(out[i]) && isfinite(gw[i]) && isfinite(gl[i]), "lrml finite", out[i], 0);
    }
    close_to("lrml at rho = 0 (CATALOGUE: 0.8466)", out[0], 0.5 * log(2) + 0.5, 1e-12);
    float faw[N], fal[N], fbw[N], fbl[N], fout[N], fgw[N], fgl[N];
    for (int i = 0; i < N; ++i) faw[i] = (float)aw[i], fal[i] = (float)al[i], fbw[i] = (float)bw[i], fbl[i] = (float)bl[i];
    const float *fin[4] = {faw, fal, fbw, fbl};
    float *fgrads[4] = {fgw, fgl, NULL, NULL};
    expect(fb32(N, fin, NULL, NULL, fout, fgrads) == LOSSC_STATUS_OK, "lrml f32 status", 0, 0);
    for (int i = 0; i < N; ++i) {
      double rho = ((double)faw[i] - fbw[i]) - ((double)fal[i] - fbl[i]);
      close_to("lrml f32 loss", fout[i], lrml(0.05 * rho, 0.05), 1e-4);
      expect(isfinite(fout[i]) && isfinite(fgw[i]) && isfinite(fgl[i]), "lrml f32 finite", fout[i], 0);
    }
  }
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures != 0;
}
