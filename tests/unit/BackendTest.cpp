// The back end: JIT kernels against the reference interpreter (every op, f64 and f32, with and
// without gout, NULL outputs), the ABI's checks and metadata, shared objects loaded with dlopen,
// and the confinement check on modules that break it.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <dlfcn.h>
#include <filesystem>
#include <random>
#include <string>

#include "Autodiff.h"
#include "Backend.h"
#include "Codegen.h"
#include "Interp.h"
#include "lossc/sha256.h"
#include "TestSupport.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/InlineAsm.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"

using namespace lossc;

namespace {

// Expressions over a, b ([B], diff), t (scalar, diff) and a parameter p, covering every op the
// code generator emits.
const char *kExprs[] = {
    "-a + b * p",
    "a / (b * b + 1)",
    "(a * a + 1) ** b",
    "pow(a * a + 1, 0.5)",
    "exp(a) + log(b * b + 1)",
    "log1p(a * a) + expm1(b)",
    "sqrt(a * a + 1) * tanh(b)",
    "sigmoid(a) + logsigmoid(b) + softplus(a - b)",
    "abs(a) + relu(b) + min(a, b) + max(a, p)",
    "clamp(a, -0.5, 0.5) * b",
    "where(a > b and not (a == p), a * b, a - b) + where(a <= b or a != b, 1.0, 2.0)",
    "if a >= 0 then exp(b) else b * b",
    "stopgrad(a) * b + index()",
    "sum(a * b) + a * mean(b)",
    "var(a) * b + std(b) * a",
    "min(a) * b + max(b) * a",
    "a * t + t * t * b",
    "a / batch_size() + mean(a * t)",
    "softplus(-(a - b) * t) * (a - mean(a)) / (std(a) + 1)",
    "exp(mean(a) - a) * sigmoid(b / p)",
    "sort(a) * b + a * sort(b * p)",
    "sort(a - mean(a)) * sort(b) + sort(sort(-a) * t)",
    "sum(sort(a) * index()) * b + softplus(sort(a) - sort(b))",
};

std::unique_ptr<Frontend> compileExpr(const std::string &expr) {
  return test::compile("loss l {\n  input a, b: real[B] diff;\n  input t: real diff;\n"
                       "  param p = 0.3 in (0, 1];\n  return " +
                       expr + " + 0 * (a + b + t + p);\n}\n");
}

struct Data {
  int64_t n;
  std::vector<std::vector<double>> in; // a, b, t
  std::vector<double> gout;
};

Data draw(int64_t n, std::mt19937 &rng) {
  std::uniform_real_distribution<double> u(-2, 2);
  Data d{n, {{}, {}, {0.7}}, {}};
  for (int64_t i = 0; i < n; ++i) {
    d.in[0].push_back(u(rng));
    d.in[1].push_back(u(rng));
    d.gout.push_back(u(rng));
  }
  return d;
}

double relErr(double x, double ref) {
  if (x == ref) return 0;
  return std::fabs(x - ref) / std::max(1.0, std::fabs(ref));
}

template <class T>
void runAndCompare(const LossFunctions &f, const Frontend &fe, const Data &d, bool withGout,
                   double tol) {
  std::vector<std::vector<T>> in(3);
  std::vector<const T *> inPtrs;
  for (int k = 0; k < 3; ++k) {
    in[k].assign(d.in[k].begin(), d.in[k].end());
    inPtrs.push_back(in[k].data());
  }
  // The reference gets the inputs as the kernel sees them (rounded to T).
  std::vector<std::vector<double>> rounded(3);
  for (int k = 0; k < 3; ++k)
    rounded[k].assign(in[k].begin(), in[k].end());
  std::vector<T> gout(d.gout.begin(), d.gout.end());
  std::vector<double> goutD(gout.begin(), gout.end());
  double param = 0.3;
  KernelPair kp = buildKernels(*fe.ir);
  InterpResult ref = interpret(kp.gradient, *fe.ir, d.n, rounded, {param},
                               withGout ? goutD : std::vector<double>{});

  std::vector<T> out(d.n), ga(d.n), gb(d.n), gt(1);
  std::vector<T *> grads{ga.data(), gb.data(), gt.data()};
  int32_t rc;
  if constexpr (sizeof(T) == 8)
    rc = f.forwardBackwardF64(d.n, inPtrs.data(), &param, withGout ? gout.data() : nullptr,
                              out.data(), grads.data());
  else
    rc = f.forwardBackwardF32(d.n, inPtrs.data(), &param, withGout ? gout.data() : nullptr,
                              out.data(), grads.data());
  REQUIRE(rc == 0);
  for (int64_t i = 0; i < d.n; ++i) {
    CHECK(relErr(out[i], ref.loss[i]) <= tol);
    CHECK(relErr(ga[i], ref.grads[0][i]) <= tol);
    CHECK(relErr(gb[i], ref.grads[1][i]) <= tol);
  }
  CHECK(relErr(gt[0], ref.grads[2][0]) <= tol * std::max<double>(1, d.n));

  // The forward entry gives the same loss.
  std::vector<T> fwd(d.n);
  if constexpr (sizeof(T) == 8)
    rc = f.forwardF64(d.n, inPtrs.data(), &param, fwd.data());
  else
    rc = f.forwardF32(d.n, inPtrs.data(), &param, fwd.data());
  REQUIRE(rc == 0);
  for (int64_t i = 0; i < d.n; ++i)
    CHECK(relErr(fwd[i], ref.loss[i]) <= tol);

  // NULL outputs are skipped (the guarded variant), the others still written.
  std::vector<T> gb2(d.n, T(-1));
  std::vector<T *> some{nullptr, gb2.data(), nullptr};
  if constexpr (sizeof(T) == 8)
    rc = f.forwardBackwardF64(d.n, inPtrs.data(), &param, withGout ? gout.data() : nullptr, nullptr,
                              some.data());
  else
    rc = f.forwardBackwardF32(d.n, inPtrs.data(), &param, withGout ? gout.data() : nullptr, nullptr,
                              some.data());
  REQUIRE(rc == 0);
  for (int64_t i = 0; i < d.n; ++i)
    CHECK(relErr(gb2[i], ref.grads[1][i]) <= tol);
}

} // namespace

TEST_CASE("JIT kernels match the reference interpreter for every op") {
  std::mt19937 rng(7);
  for (const char *expr : kExprs) {
    CAPTURE(expr);
    auto fe = compileExpr(expr);
    REQUIRE(fe->ok());
    auto jit = JitLoss::compile(*fe);
    REQUIRE(jit != nullptr);
    for (int64_t n : {2, 7, 1000}) {
      CAPTURE(n);
      Data d = draw(n, rng);
      runAndCompare<double>(jit->functions(), *fe, d, true, 1e-12);
      runAndCompare<double>(jit->functions(), *fe, d, false, 1e-12);
      runAndCompare<float>(jit->functions(), *fe, d, true, 2e-4);
    }
  }
}

TEST_CASE("ABI: status codes for small batches, bad parameters, NULL pointers") {
  auto fe = test::compileFile(test::stdlibDir() + "/dbaql.loss");
  REQUIRE(fe->ok());
  auto jit = JitLoss::compile(*fe);
  REQUIRE(jit != nullptr);
  const LossFunctions &f = jit->functions();
  double x[2] = {0, 1};
  const double *in[4] = {x, x, x, x};
  double out[2];
  CHECK(f.forwardF64(1, in, nullptr, out) == LOSSC_STATUS_BATCH_TOO_SMALL);
  CHECK(f.forwardF64(2, in, nullptr, out) == LOSSC_STATUS_OK);
  double bad[2] = {0, 0.05}; // beta must be > 0
  CHECK(f.forwardF64(2, in, bad, out) == LOSSC_STATUS_PARAM_OUT_OF_RANGE);
  double nan[2] = {0.1, NAN};
  CHECK(f.forwardF64(2, in, nan, out) == LOSSC_STATUS_PARAM_OUT_OF_RANGE);
  double good[2] = {0.1, 0.05};
  CHECK(f.forwardF64(2, in, good, out) == LOSSC_STATUS_OK);
  CHECK(f.forwardF64(2, nullptr, nullptr, out) == LOSSC_STATUS_NULL_POINTER);
  CHECK(f.forwardF64(2, in, nullptr, nullptr) == LOSSC_STATUS_NULL_POINTER);
  const double *holey[4] = {x, nullptr, x, x};
  CHECK(f.forwardF64(2, holey, nullptr, out) == LOSSC_STATUS_NULL_POINTER);
  CHECK(f.forwardBackwardF64(2, in, nullptr, nullptr, nullptr, nullptr) == LOSSC_STATUS_OK);
  CHECK(std::string(f.statusMessage(LOSSC_STATUS_BATCH_TOO_SMALL)).find("min_batch") !=
        std::string::npos);
  CHECK(std::string(f.statusMessage(99)) == "unknown status");
}

TEST_CASE("ABI: metadata") {
  auto fe = test::compileFile(test::stdlibDir() + "/lrml.loss");
  REQUIRE(fe->ok());
  auto jit = JitLoss::compile(*fe);
  REQUIRE(jit != nullptr);
  const lossc_meta *m = jit->functions().getMeta();
  CHECK(m->abi_version == LOSSC_ABI_VERSION);
  CHECK(std::string(m->name) == "lrml");
  CHECK(std::string(m->source_sha256) == sha256Hex(fe->sources.text(1)));
  CHECK(std::string(m->source_sha256).size() == 64);
  CHECK(std::string(m->compiler_version).size() > 0);
  REQUIRE(m->n_inputs == 4);
  CHECK(std::string(m->inputs[0].name) == "policy_chosen_logps");
  CHECK(m->inputs[0].differentiable == 1);
  CHECK(m->inputs[3].differentiable == 0);
  REQUIRE(m->n_params == 2);
  CHECK(std::string(m->params[1].name) == "tau");
  CHECK(m->params[0].default_value == 0.05);
  CHECK(m->params[0].min_value == std::nextafter(0.0, 1.0)); // beta > 0
  CHECK(std::isinf(m->params[0].max_value));
  CHECK(m->batch_coupled == 0);
  CHECK(m->min_batch == 1);
  CHECK(sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("shared objects: written atomically, loadable, equal to the JIT") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("lossc-test-" + std::to_string(getpid()));
  fs::create_directories(dir);
  for (const char *name : {"dpo", "lrml", "dbaql"}) {
    CAPTURE(name);
    auto fe = test::compileFile(test::stdlibDir() + "/" + name + ".loss");
    REQUIRE(fe->ok());
    auto bm = buildModule(*fe);
    REQUIRE(bm != nullptr);
    std::string so = (dir / (std::string(name) + ".so")).string();
    REQUIRE(writeSharedObject(*fe, *bm, so));
    for (const auto &e : fs::directory_iterator(dir))
      CHECK(e.path().extension() == ".so");
    void *h = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
    REQUIRE(h != nullptr);
    auto fb = reinterpret_cast<decltype(LossFunctions::forwardBackwardF64)>(
        dlsym(h, "lossc_forward_backward_f64"));
    REQUIRE((fb != nullptr));
    auto jit = JitLoss::compile(*fe);
    REQUIRE(jit != nullptr);
    std::mt19937 rng(3);
    std::uniform_real_distribution<double> u(-50, 0);
    const int64_t n = 257;
    std::vector<std::vector<double>> in(4, std::vector<double>(n));
    for (auto &v : in)
      for (double &e : v)
        e = u(rng);
    const double *ptrs[4] = {in[0].data(), in[1].data(), in[2].data(), in[3].data()};
    std::vector<double> o1(n), o2(n), a1(n), a2(n), b1(n), b2(n);
    double *g1[4] = {a1.data(), b1.data(), nullptr, nullptr},
           *g2[4] = {a2.data(), b2.data(), nullptr, nullptr};
    REQUIRE(fb(n, ptrs, nullptr, nullptr, o1.data(), g1) == 0);
    REQUIRE(jit->functions().forwardBackwardF64(n, ptrs, nullptr, nullptr, o2.data(), g2) == 0);
    CHECK(o1 == o2);
    CHECK(a1 == a2);
    CHECK(b1 == b2);
    dlclose(h);
  }
  fs::remove_all(dir);

  auto fe = test::compileFile(test::stdlibDir() + "/dpo.loss");
  auto bm = buildModule(*fe);
  REQUIRE(bm != nullptr);
  CHECK_FALSE(writeSharedObject(*fe, *bm, "/nonexistent-dir/x.so"));
  CHECK(test::hasCode(*fe, "E0504"));
}

TEST_CASE("sort: stable for ties, status 4 when the scratch block cannot be sized") {
  auto fe = compileExpr("sort(relu(a)) * b");
  REQUIRE(fe->ok());
  auto jit = JitLoss::compile(*fe);
  REQUIRE(jit != nullptr);
  // relu makes ties at 0: a = (1, -1, -2, 0.5, -3); sorted relu: 0 (ex 1), 0 (ex 2), 0 (ex 4),
  // 0.5 (ex 3), 1 (ex 0). d out_i / d a_j flows to the example sorted into position i, only
  // where a_j > 0: a_0 (position 4, weight b_4), a_3 (position 3, weight b_3).
  std::vector<double> a{1, -1, -2, 0.5, -3}, b{10, 20, 30, 40, 50}, t{0.7};
  std::vector<const double *> in{a.data(), b.data(), t.data()};
  std::vector<double> out(5), ga(5), gb(5), gt(1);
  std::vector<double *> grads{ga.data(), gb.data(), gt.data()};
  REQUIRE(jit->functions().forwardBackwardF64(5, in.data(), nullptr, nullptr, out.data(),
                                              grads.data()) == 0);
  CHECK(out == std::vector<double>{0, 0, 0, 0.5 * 40, 1 * 50});
  CHECK(ga == std::vector<double>{50, 0, 0, 40, 0});
  CHECK(gb == std::vector<double>{0, 0, 0, 0.5, 1});
  // An n whose scratch block cannot be sized is refused before any buffer is read.
  std::vector<float> o(1);
  CHECK(jit->functions().forwardF32(int64_t{1} << 40, reinterpret_cast<const float *const *>(
                                                          in.data()),
                                    nullptr, o.data()) == LOSSC_STATUS_OUT_OF_MEMORY);
  CHECK(std::string(jit->functions().statusMessage(LOSSC_STATUS_OUT_OF_MEMORY)).find("memory") !=
        std::string::npos);
}

TEST_CASE("confinement: modules that break the rules are refused") {
  using namespace llvm;
  auto check = [](auto build) {
    LLVMContext ctx;
    llvm::Module m("bad", ctx);
    IRBuilder<> b(ctx);
    Function *f = Function::Create(FunctionType::get(b.getVoidTy(), {b.getPtrTy()}, false),
                                   GlobalValue::ExternalLinkage, "f", m);
    b.SetInsertPoint(BasicBlock::Create(ctx, "entry", f));
    build(m, b, f);
    b.CreateRetVoid();
    std::string why;
    bool ok = verifyConfinement(m, why);
    return ok ? std::string("ok") : why;
  };
  CHECK(check([](llvm::Module &, IRBuilder<> &b, Function *f) {
          b.CreateStore(b.getInt32(1), f->getArg(0));
        }) == "ok");
  CHECK(check([](llvm::Module &m, IRBuilder<> &b, Function *) {
          FunctionCallee sys = m.getOrInsertFunction(
              "system", FunctionType::get(b.getInt32Ty(), {b.getPtrTy()}, false));
          b.CreateCall(sys, {ConstantPointerNull::get(b.getPtrTy())});
        }).find("'system'") != std::string::npos);
  CHECK(check([](llvm::Module &, IRBuilder<> &b, Function *) {
          InlineAsm *asmCall =
              InlineAsm::get(FunctionType::get(b.getVoidTy(), false), "nop", "", true);
          b.CreateCall(asmCall);
        }).find("inline assembly") != std::string::npos);
  CHECK(check([](llvm::Module &, IRBuilder<> &b, Function *f) {
          Value *fp = b.CreateLoad(b.getPtrTy(), f->getArg(0));
          b.CreateCall(FunctionType::get(b.getVoidTy(), false), fp);
        }).find("indirect call") != std::string::npos);
  CHECK(check([](llvm::Module &, IRBuilder<> &b, Function *) {
          Value *p = b.CreateIntToPtr(b.getInt64(0x1000), b.getPtrTy());
          b.CreateStore(b.getInt32(1), p);
        }).find("store through a pointer") != std::string::npos);
  CHECK(check([](llvm::Module &m, IRBuilder<> &b, Function *) {
          auto *g = new GlobalVariable(m, b.getInt32Ty(), false, GlobalValue::InternalLinkage,
                                       b.getInt32(0), "counter");
          b.CreateStore(b.getInt32(1), g);
        }).find("writable global") != std::string::npos);
}

namespace {
// The spacing of floats at v (at least the smallest subnormal).
double ulpAt(double v) {
  float f = static_cast<float>(std::fabs(v));
  if (!std::isfinite(f)) f = std::numeric_limits<float>::max();
  return std::max<double>(std::nextafter(f, INFINITY) - f, std::numeric_limits<float>::denorm_min());
}

// The largest error, in ulps of the exact result, of the f32 kernel `return F(a)` against
// libm in double rounded to float, over `xs`; specials are compared exactly.
template <class Ref>
double maxUlpError(const std::string &fn, const std::vector<float> &xs, Ref ref) {
  auto fe = test::compile("loss l {\n  input a: real[B] diff;\n  return " + fn + "(a);\n}\n");
  REQUIRE(fe->ok());
  auto jit = JitLoss::compile(*fe);
  REQUIRE(jit != nullptr);
  std::vector<float> out(xs.size());
  std::vector<const float *> in{xs.data()};
  REQUIRE(jit->functions().forwardF32(xs.size(), in.data(), nullptr, out.data()) == 0);
  double worst = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    double want = ref(double(xs[i]));
    float wantF = static_cast<float>(want);
    CAPTURE(xs[i]);
    CAPTURE(out[i]);
    CAPTURE(wantF);
    if (std::isnan(wantF)) {
      CHECK(std::isnan(out[i]));
    } else if (std::isinf(wantF)) {
      CHECK(out[i] == wantF);
    } else {
      REQUIRE(std::isfinite(out[i]));
      worst = std::max(worst, std::fabs(double(out[i]) - want) / ulpAt(want));
    }
  }
  return worst;
}
} // namespace

TEST_CASE("f32 exp and log1p, inline polynomials: within 2 ulp of libm, special values exact") {
  std::vector<float> xs;
  for (int i = 0; i <= 400000; ++i)
    xs.push_back(-110.0f + 205.0f * float(i) / 400000);
  for (float v : {0.0f, -0.0f, 88.72f, 88.73f, 89.0f, -87.3f, -103.9f, -104.5f, 1e-30f, -1e-30f,
                  INFINITY, -INFINITY, NAN})
    xs.push_back(v);
  double expErr = maxUlpError("exp", xs, [](double x) { return std::exp(x); });
  MESSAGE("f32 exp: max error " << expErr << " ulp");
  CHECK(expErr <= 2);

  std::vector<float> ys;
  for (int i = 0; i <= 400000; ++i) // log-spaced over (-1, 1e7], both signs near 0
    ys.push_back(std::expm1(-16.0f + 32.0f * float(i) / 400000));
  for (float v : {-1.0f, -2.0f, -0.9999999f, 0.0f, -0.0f, 1e-30f, -1e-30f, 1e-8f, 3e38f, INFINITY,
                  -INFINITY, NAN})
    ys.push_back(v);
  double logErr = maxUlpError("log1p", ys, [](double x) { return std::log1p(x); });
  MESSAGE("f32 log1p: max error " << logErr << " ulp");
  CHECK(logErr <= 2);
}
