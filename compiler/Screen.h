// The numeric screening battery of `lossc check`: the loss's compiled kernels evaluated along
// the margin rho (the chosen policy log-probability moved against zeros), in f64 and f32, for
// NaN and Inf regions, the slope at rho = 0, boundedness, convexity, local extrema,
// discontinuities, a finite-difference check of the gradient, a learning probe on a synthetic
// preference set with label noise, and equivalence to catalogue losses or proposals seen before.
// The data structures are plain; Screen.cpp (in the back end) computes them.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace lossc {

struct Frontend;

struct MarginInterval {
  double lo, hi; // in rho; +-inf where the region reaches the end of the grid
};

struct ScreenFinding {
  enum Severity { Error, Warning, Note } severity;
  std::string kind;    // stable name: nan-value, inf-gradient, unbounded-below, ...
  std::string message; // one sentence an LLM can act on
};

struct Extremum {
  double rho, value;
  bool minimum;
};

struct ProbeResult {
  double accuracyBefore = 0, accuracyAfter = 0; // held-out pairs, against the noise-free preference
  double marginBefore = 0, marginAfter = 0;     // mean rho on the training pairs
  double chosenShift = 0;                       // mean change of the chosen log-probability
  bool diverges = false;                        // the margin still grows fast at the end
  bool chosenFalls = false;                     // the chosen log-probability falls (> 1 nat)
  bool finite = true;                           // no NaN or Inf in any step
};

struct ScreenReport {
  bool ran = false;
  std::string notRun; // why the battery did not run
  double beta = 1;    // the loss's beta (1 when it has none): x = beta * rho
  double milliseconds = 0;
  // Per precision (0: f64, 1: f32): where the value or the gradient is NaN or infinite.
  std::vector<MarginInterval> nanValue[2], nanGradient[2], infValue[2], infGradient[2];
  double valueAtZero = 0, slopeAtZero = 0; // dL/drho at rho = 0
  bool descentRaisesMargin = false;        // a gradient step on both policy inputs raises rho
  bool boundedBelow = true;
  double lowest = 0;                              // the smallest value on the grid
  double valueAtMinusInf = 0, valueAtPlusInf = 0; // at the grid's ends
  std::vector<MarginInterval> nonConvex;
  std::vector<Extremum> extrema;
  std::vector<double> discontinuities;
  double gradientCheckError = 0; // largest relative error of the kernel's gradient vs central FD
  ProbeResult probe;
  std::vector<std::string> equivalentTo; // "dpo (scale 3)", ...
  std::vector<ScreenFinding> findings;
};

struct ScreenOptions {
  std::string cacheDir;  // fingerprints of catalogue losses and past proposals; "" = default
  std::string stdlibDir; // "" = default
  bool remember = true;  // add this loss's fingerprint to the cache
};

// Runs the battery on a checked front end (fe.ok()). Never throws for a bad loss.
ScreenReport screenLoss(Frontend &fe, const ScreenOptions &options);

// The loss and dL/drho along the margin path at the given margins, with parameters set by name
// (others at their defaults): what `lossc plot` draws. False with `error` set on failure.
struct MarginSamples {
  std::vector<double> value, slope;
};
bool sampleMargin(Frontend &fe, const std::vector<double> &rho,
                  const std::vector<std::pair<std::string, double>> &params, MarginSamples &out,
                  std::string &error);

// The default cache directory: $LOSSC_CACHE_DIR, else $XDG_CACHE_HOME/lossc, else ~/.cache/lossc.
std::string defaultCacheDir();

} // namespace lossc
