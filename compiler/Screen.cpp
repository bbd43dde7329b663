// The numeric screening battery: one JIT-compiled loss, evaluated along the margin. The margin
// path: the first differentiable [B] input (the chosen policy log-probability) is base + rho,
// the second (rejected) is base, lengths and scalar inputs are 1, every other input 0; base is
// 0 for losses with reference inputs and -(R + 1) for reference-free ones (so that
// log-probabilities stay negative over the grid's range R). rho runs over a grid in
// x = beta * rho: dense on [-20, 20] (step 0.002) and log-spaced out to |x| = 2000.
// Batch-coupled losses are evaluated at each margin in a batch of identical examples.
#include "Screen.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <tuple>

#include "Backend.h"
#include "Codegen.h"
#include "Pipeline.h"
#include "lossc/sha256.h"

namespace lossc {

namespace {

// Screening runs the forward+backward kernels a few thousand times: compile time dominates, so
// they are built alone and quickly (O1). f32 keeps its own code (the inline exp and log1p).
BuildOptions screeningBuild() {
  BuildOptions b;
  b.entries = kForwardBackwardF32 | kForwardBackwardF64;
  b.quick = true;
  return b;
}

// How a margin becomes the loss's inputs.
struct Layout {
  int chosen = -1, rejected = -1;
  std::vector<double> fill; // per input
  bool referenceFree = true;
  size_t n = 1; // examples per evaluation (identical ones for coupled losses)
};

Layout layoutOf(const LossIr &ir) {
  Layout l;
  for (size_t k = 0; k < ir.inputs.size(); ++k) {
    const IrInput &in = ir.inputs[k];
    bool length = in.name.find("length") != std::string::npos;
    l.fill.push_back(length || in.shape == Shape::Scalar ? 1.0 : 0.0);
    if (in.differentiable && in.shape == Shape::Batch) {
      if (l.chosen < 0)
        l.chosen = static_cast<int>(k);
      else if (l.rejected < 0)
        l.rejected = static_cast<int>(k);
    }
    if (!in.differentiable && in.name.find("reference") != std::string::npos)
      l.referenceFree = false;
  }
  l.n = ir.batchCoupled ? std::max<size_t>(2, static_cast<size_t>(ir.minBatch)) : 1;
  return l;
}

// The buffers of one forward+backward call on n examples: a column per input (each filled with
// its value from `fill`), the losses, and a gradient column per differentiable input.
template <class T> struct KernelCall {
  std::vector<std::vector<T>> in, grad;
  std::vector<T> out;
  KernelCall(const LossIr &ir, size_t n, const std::vector<double> &fill)
      : in(ir.inputs.size()), grad(ir.inputs.size()), out(n) {
    for (size_t j = 0; j < in.size(); ++j) {
      in[j].assign(n, T(fill[j]));
      if (ir.inputs[j].differentiable) grad[j].assign(n, T(0));
    }
  }
  // The kernel's status (0 on success).
  int32_t run(const LossFunctions &f, const double *params, const T *gout = nullptr) {
    std::vector<const T *> ptrs;
    std::vector<T *> grads;
    for (size_t j = 0; j < in.size(); ++j) {
      ptrs.push_back(in[j].data());
      grads.push_back(grad[j].empty() ? nullptr : grad[j].data());
    }
    if constexpr (sizeof(T) == 8)
      return f.forwardBackwardF64(out.size(), ptrs.data(), params, gout, out.data(), grads.data());
    else
      return f.forwardBackwardF32(out.size(), ptrs.data(), params, gout, out.data(), grads.data());
  }
};

// Values and the two policy gradients at a list of margins.
struct Curve {
  std::vector<double> value, gw, gl;
};

class Evaluator {
public:
  Evaluator(const LossFunctions &f, const LossIr &ir, Layout layout, double base,
            std::vector<double> params = {})
      : f_(f), ir_(ir), l_(std::move(layout)), base_(base), params_(std::move(params)) {}

  template <class T> Curve at(const std::vector<double> &rho) const {
    Curve c;
    size_t m = rho.size();
    if (l_.n == 1) {
      run<T>(rho, m, c);
    } else {
      for (double r : rho) {
        Curve one;
        run<T>(std::vector<double>(l_.n, r), l_.n, one);
        c.value.push_back(one.value[0]), c.gw.push_back(one.gw[0]), c.gl.push_back(one.gl[0]);
      }
    }
    return c;
  }
  double value(double rho) const { return at<double>({rho}).value[0]; }
  double slope(double rho) const { return at<double>({rho}).gw[0]; }

  // The sum of the outputs of a batch whose chosen inputs are `chosen` (rejected: base).
  double sumAt(const std::vector<double> &chosen) const {
    std::vector<double> rho;
    for (double c : chosen)
      rho.push_back(c - base_);
    Curve c;
    run<double>(rho, rho.size(), c);
    double s = 0;
    for (double v : c.value)
      s += v;
    return s;
  }
  double base() const { return base_; }

private:
  template <class T> void run(const std::vector<double> &rho, size_t m, Curve &c) const {
    KernelCall<T> call(ir_, m, l_.fill);
    for (size_t i = 0; i < m; ++i) {
      if (l_.chosen >= 0) call.in[l_.chosen][i] = T(base_ + rho[i]);
      if (l_.rejected >= 0) call.in[l_.rejected][i] = T(base_);
    }
    if (int32_t status = call.run(f_, params())) throw std::runtime_error(f_.statusMessage(status));
    c.value.assign(call.out.begin(), call.out.end());
    c.gw.assign(m, 0), c.gl.assign(m, 0);
    if (l_.chosen >= 0) c.gw.assign(call.grad[l_.chosen].begin(), call.grad[l_.chosen].end());
    if (l_.rejected >= 0) c.gl.assign(call.grad[l_.rejected].begin(), call.grad[l_.rejected].end());
  }

  const double *params() const { return params_.empty() ? nullptr : params_.data(); }

  const LossFunctions &f_;
  const LossIr &ir_;
  Layout l_;
  double base_;
  std::vector<double> params_;
};

std::string num(double v) {
  return formatSignificant(v);
}

std::string intervalText(const MarginInterval &iv) {
  if (std::isinf(iv.lo) && std::isinf(iv.hi)) return "every margin";
  if (std::isinf(iv.lo)) return "rho <= " + num(iv.hi);
  if (std::isinf(iv.hi)) return "rho >= " + num(iv.lo);
  if (iv.lo == iv.hi) return "rho = " + num(iv.lo);
  return "rho in [" + num(iv.lo) + ", " + num(iv.hi) + "]";
}

// Consecutive flagged grid points as intervals; open-ended where they reach the grid's ends.
std::vector<MarginInterval> intervals(const std::vector<double> &rho,
                                      const std::vector<bool> &flag) {
  std::vector<MarginInterval> out;
  for (size_t i = 0; i < rho.size();) {
    if (!flag[i]) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j + 1 < rho.size() && flag[j + 1])
      ++j;
    out.push_back({i == 0 ? -INFINITY : rho[i], j + 1 == rho.size() ? INFINITY : rho[j]});
    i = j + 1;
  }
  return out;
}

std::vector<double> gridX() {
  std::vector<double> x;
  for (int k = 100; k >= 1; --k)
    x.push_back(-20 * std::pow(10.0, k / 50.0));
  for (int i = -10000; i <= 10000; ++i)
    x.push_back(i * 0.002);
  for (int k = 1; k <= 100; ++k)
    x.push_back(20 * std::pow(10.0, k / 50.0));
  return x;
}
constexpr double kGridEnd = 2000; // |x| at the grid's ends
constexpr size_t kDenseBegin = 100, kDenseEnd = 100 + 20001;

void add(ScreenReport &r, ScreenFinding::Severity s, const std::string &kind,
         const std::string &m) {
  r.findings.push_back({s, kind, m});
}

// --- raw log-probabilities --------------------------------------------------------------------
// The margin path keeps the log-probabilities near 0 and moves one of them, so a loss that
// uses a log-probability on its own (log(policy_chosen_logps + 30), say) can fail at values it
// never visits. Here every per-example log-probability input takes the same value v, over
// -1e5 .. -1e-6 (log-spaced): the margin and every log-ratio stay 0, and only such use can fail.
// A NaN value or gradient is an error, an infinite one a warning.
void probeRawInputs(const LossFunctions &f, const LossIr &ir, const Layout &l, ScreenReport &r) {
  size_t k = ir.inputs.size(), n = l.n;
  std::vector<bool> logProb(k);
  std::string names;
  for (size_t q = 0; q < k; ++q) {
    logProb[q] =
        ir.inputs[q].shape == Shape::Batch && ir.inputs[q].name.find("length") == std::string::npos;
    if (logProb[q]) names += (names.empty() ? "" : ", ") + ir.inputs[q].name;
  }
  std::vector<double> grid;
  for (int e = 50; e >= -60; --e)
    grid.push_back(-std::pow(10.0, e / 10.0));
  // {NaN, Inf} anywhere in the value or the gradients at v.
  auto at = [&](double v) {
    // A batch-coupled loss sees v in a batch of n identical examples.
    std::vector<double> fill = l.fill;
    for (size_t q = 0; q < k; ++q)
      if (logProb[q]) fill[q] = v;
    KernelCall<double> call(ir, n, fill);
    if (call.run(f, nullptr))
      return std::make_pair(true, false); // a kernel status counts as a failure too
    std::pair<bool, bool> flags{std::isnan(call.out[0]), std::isinf(call.out[0])};
    for (const std::vector<double> &g : call.grad)
      if (!g.empty())
        flags.first = flags.first || std::isnan(g[0]),
        flags.second = flags.second || std::isinf(g[0]);
    return flags;
  };
  std::vector<bool> nan(grid.size()), inf(grid.size());
  for (size_t g = 0; g < grid.size(); ++g) {
    auto [isNan, isInf] = at(grid[g]);
    nan[g] = isNan, inf[g] = isInf;
  }
  auto report = [&](const std::vector<bool> &flag, bool isNan) {
    size_t first = grid.size(), last = 0;
    for (size_t g = 0; g < grid.size(); ++g)
      if (flag[g]) first = std::min(first, g), last = g;
    if (first == grid.size()) return false;
    // The ends located by bisection towards the unflagged neighbours.
    auto flagged = [&](double v) { return isNan ? at(v).first : at(v).second; };
    auto refine = [&](double in, double out) {
      for (int it = 0; it < 60 && std::fabs(in - out) > 1e-9 * std::fabs(in); ++it) {
        double mid = 0.5 * (in + out);
        (flagged(mid) ? in : out) = mid;
      }
      return in;
    };
    double lo = grid[first], hi = grid[last]; // grid descends: lo is the value nearest -1e5
    if (first > 0) lo = refine(grid[first], grid[first - 1]);
    if (last + 1 < grid.size()) hi = refine(grid[last], grid[last + 1]);
    add(r, isNan ? ScreenFinding::Error : ScreenFinding::Warning, isNan ? "nan-input" : "inf-input",
        std::string("the value or its gradient is ") + (isNan ? "NaN" : "infinite") +
            " when the log-probabilities (" + names + ") are all v, for v in [" +
            num(std::min(lo, hi)) + ", " + num(std::max(lo, hi)) +
            "], though the margin is 0: the loss uses a log-probability on its own, not only "
            "through differences, in an operation that fails there; sequence log-probabilities "
            "take any value below 0");
    return true;
  };
  if (!report(nan, true)) report(inf, false);
}

// --- the learning probe -------------------------------------------------------------------------
// A linear policy over 8 features: log p(y) = theta . x_y + base, the reference theta = 0. The
// noise-free preference of a pair is sign(w* . (x_a - x_b)); the training label follows it with
// Bradley-Terry probability sigma(2 w* . (x_a - x_b)), so some labels are flipped. Adam on theta,
// 200 steps over 256 pairs; accuracy on 256 held-out pairs.
ProbeResult probe(const LossFunctions &f, const LossIr &ir, const Layout &layout, double base,
                  double beta) {
  constexpr int d = 8, n = 256, steps = 200;
  std::mt19937 rng(12345);
  std::normal_distribution<double> normal(0, 1);
  std::vector<double> wStar(d);
  for (double &w : wStar)
    w = normal(rng);
  struct Pair {
    std::vector<double> xw, xl;
    bool truePref; // the noise-free preference agrees with the label
  };
  auto makePairs = [&](bool noisy) {
    std::vector<Pair> pairs;
    for (int i = 0; i < n; ++i) {
      Pair p{std::vector<double>(d), std::vector<double>(d), true};
      double s = 0;
      for (int j = 0; j < d; ++j) {
        p.xw[j] = normal(rng), p.xl[j] = normal(rng);
        s += wStar[j] * (p.xw[j] - p.xl[j]);
      }
      bool label = s > 0;
      if (noisy)
        label = std::uniform_real_distribution<double>(0, 1)(rng) < 1 / (1 + std::exp(-2 * s));
      if (!label) std::swap(p.xw, p.xl);
      p.truePref = (s > 0) == label;
      pairs.push_back(std::move(p));
    }
    return pairs;
  };
  std::vector<Pair> train = makePairs(true), test = makePairs(false);
  std::vector<double> theta(d, 0), m(d, 0), v(d, 0);
  auto dot = [&](const std::vector<double> &x) {
    double s = 0;
    for (int j = 0; j < d; ++j)
      s += theta[j] * x[j];
    return s;
  };
  auto accuracy = [&] {
    double a = 0;
    for (const Pair &p : test) {
      double s = dot(p.xw) - dot(p.xl);
      a += s == 0 ? 0.5 : ((s > 0) == p.truePref ? 1 : 0);
    }
    return a / n;
  };
  auto margin = [&] {
    double s = 0;
    for (const Pair &p : train)
      s += dot(p.xw) - dot(p.xl);
    return s / n;
  };
  auto chosenMean = [&] {
    double s = 0;
    for (const Pair &p : train)
      s += dot(p.xw);
    return s / n;
  };
  ProbeResult r;
  r.accuracyBefore = accuracy();
  r.marginBefore = margin();
  double chosen0 = chosenMean();
  KernelCall<double> call(ir, n, layout.fill);
  std::vector<double> gout(n, 1.0 / n), none(n, 0.0);
  const std::vector<double> &gw = call.grad[layout.chosen];
  const std::vector<double> &gl = layout.rejected >= 0 ? call.grad[layout.rejected] : none;
  const double lr = 0.05, b1 = 0.9, b2 = 0.999;
  double marginMid = 0;
  for (int step = 1; step <= steps; ++step) {
    for (int i = 0; i < n; ++i) {
      call.in[layout.chosen][i] = base + dot(train[i].xw);
      if (layout.rejected >= 0) call.in[layout.rejected][i] = base + dot(train[i].xl);
    }
    if (call.run(f, nullptr, gout.data()) != 0) {
      r.finite = false;
      break;
    }
    std::vector<double> g(d, 0);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < d; ++j)
        g[j] += gw[i] * train[i].xw[j] + (layout.rejected >= 0 ? gl[i] * train[i].xl[j] : 0);
    for (int j = 0; j < d; ++j) {
      if (!std::isfinite(g[j])) r.finite = false;
      m[j] = b1 * m[j] + (1 - b1) * g[j];
      v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j];
      double mh = m[j] / (1 - std::pow(b1, step)), vh = v[j] / (1 - std::pow(b2, step));
      theta[j] -= lr * mh / (std::sqrt(vh) + 1e-12);
    }
    if (!r.finite) break;
    if (step == steps / 2) marginMid = margin();
  }
  r.accuracyAfter = accuracy();
  r.marginAfter = margin();
  r.chosenShift = chosenMean() - chosen0;
  // Still growing linearly at the end (a bounded loss's margin levels off), and large.
  r.diverges = r.finite && r.marginAfter > 1.6 * marginMid && r.marginAfter * beta > 5;
  r.chosenFalls = r.finite && r.chosenShift < -1;
  return r;
}

// --- equivalence
// ---------------------------------------------------------------------------------- A fingerprint:
// the policy gradients on 64 fixed random pairs (log-probabilities in [-60, -5], lengths 1..30) at
// the default parameters. Two losses with the same inputs whose fingerprints are parallel (cosine >
// 1 - 1e-9) with a positive scale train alike up to the learning rate.
struct Fingerprint {
  std::string sha, name, origin, signature;
  std::vector<double> g;
};

std::string signatureOf(const LossIr &ir) {
  std::string s;
  for (const IrInput &in : ir.inputs)
    s += in.name + (in.differentiable ? "*" : "") + ";";
  return s;
}

std::vector<double> fingerprintOf(const LossFunctions &f, const LossIr &ir, const Layout &layout) {
  const int n = 64;
  std::mt19937 rng(777);
  std::uniform_real_distribution<double> logp(-60, -5);
  std::uniform_int_distribution<int> len(1, 30);
  KernelCall<double> call(ir, n, layout.fill);
  for (size_t j = 0; j < call.in.size(); ++j)
    for (double &x : call.in[j])
      x = layout.fill[j] == 1.0 ? len(rng) : logp(rng);
  std::vector<double> fp;
  if (call.run(f, nullptr) != 0) return fp;
  for (const std::vector<double> &g : call.grad)
    fp.insert(fp.end(), g.begin(), g.end());
  return fp;
}

std::vector<Fingerprint> readFingerprints(const std::string &path) {
  std::vector<Fingerprint> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    Fingerprint fp;
    std::string values;
    if (!std::getline(ss, fp.sha, '\t') || !std::getline(ss, fp.name, '\t') ||
        !std::getline(ss, fp.origin, '\t') || !std::getline(ss, fp.signature, '\t') ||
        !std::getline(ss, values))
      continue;
    std::istringstream vs(values);
    std::string v;
    while (std::getline(vs, v, ','))
      fp.g.push_back(std::strtod(v.c_str(), nullptr));
    out.push_back(std::move(fp));
  }
  return out;
}

void appendFingerprint(const std::string &path, const Fingerprint &fp) {
  std::ofstream out(path, std::ios::app);
  out << fp.sha << '\t' << fp.name << '\t' << fp.origin << '\t' << fp.signature << '\t';
  char buf[40];
  for (size_t i = 0; i < fp.g.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%a", fp.g[i]);
    out << (i ? "," : "") << buf;
  }
  out << '\n';
}

// The positive scale k with a = k b, or 0 when the two are not parallel.
double parallelScale(const std::vector<double> &a, const std::vector<double> &b) {
  if (a.size() != b.size() || a.empty()) return 0;
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i)
    ab += a[i] * b[i], aa += a[i] * a[i], bb += b[i] * b[i];
  if (aa == 0 || bb == 0 || !std::isfinite(ab)) return 0;
  double cosine = ab / std::sqrt(aa * bb);
  return cosine > 1 - 1e-9 ? std::sqrt(aa / bb) : 0;
}

// Fingerprints of the stdlib catalogue (computed once per stdlib version and cached) and of
// the proposals seen before.
std::vector<Fingerprint> knownFingerprints(const ScreenOptions &options, const std::string &cache) {
  std::string stdlib = options.stdlibDir.empty() ? defaultStdlibDir() : options.stdlibDir;
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto &e : std::filesystem::directory_iterator(stdlib, ec))
    if (e.path().extension() == ".loss") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  std::string catalogueKey;
  for (const std::string &f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    catalogueKey += sha256Hex(text.str());
  }
  std::string cataloguePath =
      cache + "/catalogue-" + sha256Hex(catalogueKey).substr(0, 16) + ".tsv";
  if (!std::filesystem::exists(cataloguePath)) {
    std::string tmp = cataloguePath + ".tmp" + std::to_string(::getpid());
    std::filesystem::remove(tmp, ec);
    for (const std::string &file : files) {
      FrontendOptions fo;
      fo.stdlibDir = stdlib;
      auto fe = runFrontend(file, fo);
      if (!fe->ok()) continue;
      auto jit = JitLoss::compile(*fe, screeningBuild());
      if (!jit) continue;
      Fingerprint fp{sha256Hex(fe->sources.text(1)), fe->ir->name, "catalogue",
                     signatureOf(*fe->ir),
                     fingerprintOf(jit->functions(), *fe->ir, layoutOf(*fe->ir))};
      appendFingerprint(tmp, fp);
    }
    std::filesystem::rename(tmp, cataloguePath, ec);
  }
  std::vector<Fingerprint> known = readFingerprints(cataloguePath);
  std::vector<Fingerprint> seen = readFingerprints(cache + "/proposals.tsv");
  known.insert(known.end(), seen.begin(), seen.end());
  return known;
}

} // namespace

bool sampleMargin(Frontend &fe, const std::vector<double> &rho,
                  const std::vector<std::pair<std::string, double>> &params, MarginSamples &out,
                  std::string &error) {
  if (!fe.ok()) {
    error = "the loss has errors";
    return false;
  }
  const LossIr &ir = *fe.ir;
  Layout layout = layoutOf(ir);
  if (layout.chosen < 0) {
    error = "the loss has no differentiable per-example input";
    return false;
  }
  std::vector<double> values;
  for (const IrParam &p : ir.params)
    values.push_back(p.defaultValue);
  for (const auto &[name, v] : params)
    for (size_t k = 0; k < ir.params.size(); ++k)
      if (ir.params[k].name == name) values[k] = v;
  std::unique_ptr<JitLoss> jit = JitLoss::compile(fe, screeningBuild());
  if (!jit) {
    error = "the loss did not compile";
    return false;
  }
  double range = 0;
  for (double r : rho)
    range = std::max(range, std::fabs(r));
  Evaluator eval(jit->functions(), ir, layout, layout.referenceFree ? -(range + 1) : 0, values);
  try {
    Curve c = eval.at<double>(rho);
    out.value = std::move(c.value);
    out.slope = std::move(c.gw);
  } catch (const std::exception &e) {
    error = e.what();
    return false;
  }
  return true;
}

std::string defaultCacheDir() {
  if (const char *d = std::getenv("LOSSC_CACHE_DIR"); d && *d) return d;
  if (const char *x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/lossc";
  if (const char *h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/lossc";
  return "/tmp/lossc-cache";
}

ScreenReport screenLoss(Frontend &fe, const ScreenOptions &options) {
  ScreenReport r;
  auto start = std::chrono::steady_clock::now();
  if (!fe.ok()) {
    r.notRun = "the loss has errors";
    return r;
  }
  const LossIr &ir = *fe.ir;
  Layout layout = layoutOf(ir);
  if (layout.chosen < 0) {
    r.notRun = "the loss has no differentiable per-example input";
    return r;
  }
  std::unique_ptr<JitLoss> jit = JitLoss::compile(fe, screeningBuild());
  if (!jit) {
    r.notRun = "the loss did not compile";
    return r;
  }
  const LossFunctions &f = jit->functions();
  for (const IrParam &p : ir.params)
    if (p.name == "beta" && p.defaultValue > 0) r.beta = p.defaultValue;
  std::vector<double> x = gridX(), rho;
  for (double t : x)
    rho.push_back(t / r.beta);
  double base = layout.referenceFree ? -(kGridEnd / r.beta + 1) : 0;
  Evaluator eval(f, ir, layout, base);
  try {
    // NaN and Inf regions, f64 and f32.
    Curve c64 = eval.at<double>(rho), c32 = eval.at<float>(rho);
    const Curve *curves[2] = {&c64, &c32};
    const char *precision[2] = {"f64", "f32"};
    for (int p = 0; p < 2; ++p) {
      const Curve &c = *curves[p];
      (void)c;
      // A NaN gradient where the value itself overflows is the overflow's consequence (a zero
      // coupling term times an infinite one); it is reported with it, not as a NaN region.
      auto nanValueAt = [](const Curve &k, size_t i) { return std::isnan(k.value[i]); };
      auto nanGradientAt = [](const Curve &k, size_t i) {
        return std::isfinite(k.value[i]) && (std::isnan(k.gw[i]) || std::isnan(k.gl[i]));
      };
      auto infValueAt = [](const Curve &k, size_t i) { return std::isinf(k.value[i]); };
      auto infGradientAt = [](const Curve &k, size_t i) {
        return std::isinf(k.gw[i]) || std::isinf(k.gl[i]) ||
               (std::isinf(k.value[i]) && (std::isnan(k.gw[i]) || std::isnan(k.gl[i])));
      };
      // The flagged intervals, their ends located by bisection between grid points.
      auto regions = [&](bool (*flagged)(const Curve &, size_t)) {
        std::vector<bool> flags(rho.size());
        for (size_t i = 0; i < rho.size(); ++i)
          flags[i] = flagged(c, i);
        std::vector<MarginInterval> ivs = intervals(rho, flags);
        auto test = [&](double at) {
          Curve one = p == 0 ? eval.at<double>({at}) : eval.at<float>({at});
          return flagged(one, 0);
        };
        auto refine = [&](double in, double out) { // in: flagged, out: not
          for (int it = 0; it < 50 && std::fabs(in - out) > 1e-9 * (1 + std::fabs(in)); ++it) {
            double mid = 0.5 * (in + out);
            (test(mid) ? in : out) = mid;
          }
          return in;
        };
        for (MarginInterval &iv : ivs) {
          size_t lo = std::lower_bound(rho.begin(), rho.end(), iv.lo) - rho.begin();
          size_t hi = std::lower_bound(rho.begin(), rho.end(), iv.hi) - rho.begin();
          if (std::isfinite(iv.lo) && lo > 0) iv.lo = refine(iv.lo, rho[lo - 1]);
          if (std::isfinite(iv.hi) && hi + 1 < rho.size()) iv.hi = refine(iv.hi, rho[hi + 1]);
        }
        return ivs;
      };
      r.nanValue[p] = regions(nanValueAt);
      r.nanGradient[p] = regions(nanGradientAt);
      r.infValue[p] = regions(infValueAt);
      r.infGradient[p] = regions(infGradientAt);
      // A value that is modest just outside an infinite region and infinite just inside it did
      // not overflow itself: an intermediate did (log(1 + exp(x)) at x = 710, say).
      double typeMax = p == 0 ? 1.7976931348623157e308 : 3.4028234663852886e38;
      for (const MarginInterval &iv : r.infValue[p])
        for (double edge : {iv.lo, iv.hi}) {
          if (!std::isfinite(edge)) continue;
          double outside = edge == iv.lo ? edge - 1e-6 * (1 + std::fabs(edge))
                                         : edge + 1e-6 * (1 + std::fabs(edge));
          double v =
              p == 0 ? eval.at<double>({outside}).value[0] : eval.at<float>({outside}).value[0];
          if (std::isfinite(v) && std::fabs(v) < 1e-3 * typeMax)
            add(r, p == 0 ? ScreenFinding::Error : ScreenFinding::Warning, "overflow-intermediate",
                std::string("in ") + precision[p] + " the value is " + num(v) +
                    " at rho = " + num(outside) +
                    " but infinite just beyond: an intermediate overflows while "
                    "the loss itself is finite; write log(1 + exp(x)) as softplus(x), "
                    "log(sigmoid(x)) as logsigmoid(x), and products of exponentials as one exp "
                    "of a sum");
        }
      auto report = [&](const std::vector<MarginInterval> &ivs, bool nan, const char *what) {
        for (const MarginInterval &iv : ivs)
          add(r, nan && p == 0 ? ScreenFinding::Error : ScreenFinding::Warning,
              std::string(nan ? "nan-" : "inf-") + what,
              std::string("the ") + what + " is " + (nan ? "NaN" : "infinite") + " in " +
                  precision[p] + " for " + intervalText(iv) + " (beta * rho " +
                  intervalText({iv.lo * r.beta, iv.hi * r.beta}).substr(4) + ")" +
                  (nan ? ": use stable forms (logsigmoid, softplus, log1p) or combine exp "
                         "factors into one exp of a sum"
                       : ": the true value overflows there, or an intermediate does (write "
                         "products of exponentials as one exp of a sum)"));
      };
      report(r.nanValue[p], true, "value");
      report(r.nanGradient[p], true, "gradient");
      report(r.infValue[p], false, "value");
      report(r.infGradient[p], false, "gradient");
    }
    const Curve &c = c64;

    // The slope at rho = 0 and the direction of a descent step.
    Curve zero = eval.at<double>({0.0});
    r.valueAtZero = zero.value[0];
    r.slopeAtZero = zero.gw[0];
    r.descentRaisesMargin = zero.gw[0] - zero.gl[0] < 0;
    if (!r.descentRaisesMargin)
      add(r, ScreenFinding::Note, "descent-lowers-margin",
          "at rho = 0 the slope dL/d(beta rho) is " + num(r.slopeAtZero / r.beta) +
              " > 0: a gradient step lowers the chosen-vs-rejected margin near zero");

    // Discontinuities in the value: a jump that survives 60 bisections.
    for (size_t i = 0; i + 1 < rho.size(); ++i) {
      double a = c.value[i], b = c.value[i + 1];
      if (!std::isfinite(a) || !std::isfinite(b)) continue;
      double expected = 0.5 * (std::fabs(c.gw[i]) + std::fabs(c.gw[i + 1])) * (rho[i + 1] - rho[i]);
      if (std::fabs(b - a) <= 4 * expected + 1e-9 * (1 + std::fabs(a))) continue;
      double lo = rho[i], hi = rho[i + 1], vlo = a, vhi = b;
      for (int it = 0; it < 60 && hi - lo > 1e-13 * (1 + std::fabs(lo)); ++it) {
        double mid = 0.5 * (lo + hi), vm = eval.value(mid);
        if (std::fabs(vm - vlo) > std::fabs(vhi - vm))
          hi = mid, vhi = vm;
        else
          lo = mid, vlo = vm;
      }
      if (std::fabs(vhi - vlo) > 1e-6 * (1 + std::fabs(vlo))) {
        double at = 0.5 * (lo + hi);
        if (std::fabs(at) < 1e-9) at = 0;
        r.discontinuities.push_back(at);
        add(r, ScreenFinding::Note, "discontinuity",
            "the loss jumps by " + num(vhi - vlo) + " at rho = " + num(at) +
                ": training near there is erratic, and a learning rate that steps over it may "
                "oscillate");
      }
    }
    auto nearJump = [&](double at, double width) {
      for (double d : r.discontinuities)
        if (std::fabs(d - at) <= width) return true;
      return false;
    };

    // Boundedness below: the lowest value, and whether it keeps falling at either end.
    r.lowest = INFINITY;
    for (double v : c.value)
      if (!std::isnan(v)) r.lowest = std::min(r.lowest, v);
    r.valueAtMinusInf = c.value.front();
    r.valueAtPlusInf = c.value.back();
    size_t last = rho.size() - 1;
    for (int side = 0; side < 2; ++side) {
      size_t e = side ? last : 0, e1 = side ? last - 1 : 1, e2 = side ? last - 2 : 2;
      double v0 = c.value[e2], v1 = c.value[e1], v2 = c.value[e];
      bool falling =
          v2 == -INFINITY || (v2 < v1 && v1 < v0 && (v1 - v2) > 1e-3 * (1 + std::fabs(v1)));
      if (falling) {
        r.boundedBelow = false;
        add(r, ScreenFinding::Warning, "unbounded-below",
            std::string("the loss decreases without bound as rho -> ") + (side ? "+inf" : "-inf") +
                " (" + num(v2) + " at beta * rho = " + num(side ? kGridEnd : -kGridEnd) +
                "): training can drive margins to infinity instead of settling");
      }
    }

    // Convexity on the dense part: second differences, away from discontinuities.
    std::vector<bool> concave(rho.size(), false);
    for (size_t i = kDenseBegin + 1; i + 1 < kDenseEnd; ++i) {
      double d2 = c.value[i - 1] - 2 * c.value[i] + c.value[i + 1];
      double tol = 1e-11 * (std::fabs(c.value[i]) + 1);
      concave[i] = d2 < -tol && !nearJump(rho[i], 2 * (rho[i + 1] - rho[i]));
    }
    r.nonConvex = intervals(rho, concave);
    for (const MarginInterval &iv : r.nonConvex)
      add(r, ScreenFinding::Note, "non-convex",
          "non-convex for " + intervalText(iv) + " (beta * rho in [" + num(iv.lo * r.beta) + ", " +
              num(iv.hi * r.beta) + "])");

    // Local extrema: sign changes of dL/drho, located by bisection on the gradient.
    for (size_t i = 0; i + 1 < rho.size(); ++i) {
      double ga = c.gw[i], gb = c.gw[i + 1];
      if (!(std::isfinite(ga) && std::isfinite(gb)) || ga == 0 || gb == 0 || (ga < 0) == (gb < 0))
        continue;
      if (nearJump(0.5 * (rho[i] + rho[i + 1]), rho[i + 1] - rho[i])) continue;
      double lo = rho[i], hi = rho[i + 1];
      for (int it = 0; it < 80 && hi - lo > 1e-14 * (1 + std::fabs(lo)); ++it) {
        double mid = 0.5 * (lo + hi), gm = eval.slope(mid);
        if ((gm < 0) == (ga < 0))
          lo = mid;
        else
          hi = mid;
      }
      Extremum e{0.5 * (lo + hi), eval.value(0.5 * (lo + hi)), ga < 0};
      r.extrema.push_back(e);
      add(r, ScreenFinding::Note, e.minimum ? "local-minimum" : "local-maximum",
          std::string("a local ") + (e.minimum ? "minimum" : "maximum") +
              " at rho = " + num(e.rho) + " (beta * rho = " + num(e.rho * r.beta) + ", loss " +
              num(e.value) + ")" +
              (e.minimum && e.rho < 0 ? ": gradient descent can settle at a negative margin" : ""));
    }

    // The kernel's gradient against central finite differences (f64), off the grid's kinks.
    std::vector<std::tuple<double, double, double>> checks; // fd, kernel, fd's noise
    for (int k = -20; k <= 20; ++k) {
      double t = k * 0.5 + 0.1234, at = t / r.beta;
      if (nearJump(at, 0.01 / r.beta)) continue;
      // h on the margin's scale; the estimate's rounding noise is below 1e-13 (1 + |L| + |a|) / h
      // (the loss may sum terms larger than itself).
      double a = base + at, h = 1e-5 * (1 + std::fabs(at));
      std::vector<double> chosen(layout.n, a);
      Curve cur = eval.at<double>(std::vector<double>(layout.n, at));
      double gsum = 0;
      for (size_t i = 0; i < layout.n; ++i)
        gsum += cur.gw[i];
      double fd = 0;
      if (layout.n == 1) {
        fd = (eval.sumAt({a + h}) - eval.sumAt({a - h})) / (2 * h);
      } else {
        // d/da of the batch's summed loss, moving one example: the gradient of that example.
        std::vector<double> up = chosen, down = chosen;
        up[0] += h, down[0] -= h;
        fd = (eval.sumAt(up) - eval.sumAt(down)) / (2 * h);
        gsum = cur.gw[0];
      }
      if (!std::isfinite(fd) || !std::isfinite(gsum)) continue;
      double noise = 1e-13 * (1 + std::fabs(eval.sumAt(chosen)) + std::fabs(a)) / h;
      checks.push_back({fd, gsum, noise});
    }
    // Relative error beyond the estimate's noise, with a floor at a millionth of the largest
    // gradient seen (a gradient that vanishes along the path is compared on the loss's scale).
    double scale = 1e-3 * r.beta;
    for (const auto &[fd, g, noise] : checks)
      scale = std::max(scale, std::fabs(g));
    for (const auto &[fd, g, noise] : checks)
      r.gradientCheckError = std::max(r.gradientCheckError,
                                      std::max(0.0, std::fabs(fd - g) - noise) /
                                          (std::max(std::fabs(fd), std::fabs(g)) + 1e-6 * scale));
    if (r.gradientCheckError > 1e-4)
      add(r, ScreenFinding::Error, "gradient-check",
          "internal: the compiled gradient differs from finite differences by " +
              num(r.gradientCheckError) + " (relative); please report this lossc bug");

    probeRawInputs(f, ir, layout, r);

    // The learning probe.
    r.probe = probe(f, ir, layout, base, r.beta);
    if (!r.probe.finite)
      add(r, ScreenFinding::Error, "probe-not-finite",
          "training on a synthetic preference set produced NaN or Inf");
    else if (r.probe.accuracyAfter < 0.6)
      add(r, ScreenFinding::Warning, "probe-no-learning",
          "a linear policy trained with this loss on a synthetic preference set with label "
          "noise reaches " +
              num(100 * r.probe.accuracyAfter) +
              "% held-out accuracy (from 50%): it does not learn the preference");
    if (r.probe.chosenFalls)
      add(r, ScreenFinding::Warning, "probe-chosen-falls",
          "on the synthetic preference set the chosen completions' log-probability falls by " +
              num(-r.probe.chosenShift) +
              " on average: the margin is won by pushing both completions down (the policy "
              "moves away from the data)");
    if (r.probe.diverges)
      add(r, ScreenFinding::Warning, "probe-diverges",
          "on the synthetic preference set the margin keeps growing (" + num(r.probe.marginBefore) +
              " -> " + num(r.probe.marginAfter) +
              " over 200 steps): nothing holds the policy near the reference");

    // Equivalence to known losses.
    std::string cache = options.cacheDir.empty() ? defaultCacheDir() : options.cacheDir;
    std::error_code ec;
    std::filesystem::create_directories(cache, ec);
    Fingerprint self{sha256Hex(fe.sources.text(1)), ir.name, "proposal", signatureOf(ir),
                     fingerprintOf(f, ir, layout)};
    bool known = false;
    std::vector<std::string> reported;
    for (const Fingerprint &k : knownFingerprints(options, cache)) {
      if (k.sha == self.sha) {
        known = true;
        continue;
      }
      if (k.signature != self.signature) continue;
      // An earlier version of this very loss (same name, other text) is not news, and one
      // loss remembered in several versions is reported once.
      if (k.origin != "catalogue" && k.name == self.name) continue;
      std::string id = k.origin + "/" + k.name;
      if (std::find(reported.begin(), reported.end(), id) != reported.end()) continue;
      double scale = parallelScale(self.g, k.g);
      if (scale <= 0) continue;
      std::string what = k.name + (k.origin == "catalogue" ? " (stdlib)" : " (seen before)") +
                         ", scale " + num(scale);
      r.equivalentTo.push_back(what);
      reported.push_back(id);
      add(r, ScreenFinding::Warning, "equivalent",
          "this loss trains like " + k.name +
              (k.origin == "catalogue" ? " of the stdlib" : ", a loss checked before") +
              ": its gradient is " + num(scale) +
              " times that one's everywhere probed (same up to the learning rate)");
    }
    if (options.remember && !known && !self.g.empty() && ec.value() == 0)
      appendFingerprint(cache + "/proposals.tsv", self);
  } catch (const std::exception &e) {
    r.findings.push_back({ScreenFinding::Error, "kernel-refused", e.what()});
  }
  r.ran = true;
  r.milliseconds =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return r;
}

} // namespace lossc
