// The check report: static facts of a loss and its diagnostics, as text or JSON.
#include "Check.h"

#include "Json.h"

#include <cstdio>

namespace lossc {

namespace {
const char *severityName(ScreenFinding::Severity s) {
  switch (s) {
  case ScreenFinding::Error: return "error";
  case ScreenFinding::Warning: return "warning";
  case ScreenFinding::Note: return "note";
  }
  return "?";
}

std::string number(double v) {
  return formatSignificant(v);
}

void renderScreenText(const ScreenReport &s, std::string &out) {
  out += "  numeric screening";
  if (!s.ran) {
    out += ": not run (" + s.notRun + ")\n";
    return;
  }
  out += " (" + number(s.milliseconds) + " ms; margin rho, beta = " + number(s.beta) + "):\n";
  out += "    at rho = 0: loss " + number(s.valueAtZero) + ", dL/d(beta rho) " +
         number(s.slopeAtZero / s.beta) + ", a descent step " +
         (s.descentRaisesMargin ? "raises" : "lowers") + " the margin\n";
  out += "    bounded below: " + std::string(s.boundedBelow ? "yes" : "no") + " (lowest " +
         number(s.lowest) + "; at beta*rho = -2000: " + number(s.valueAtMinusInf) +
         ", at +2000: " + number(s.valueAtPlusInf) + ")\n";
  out += "    gradient check against finite differences: max relative error beyond rounding " +
         number(s.gradientCheckError) + "\n";
  out += "    learning probe: held-out accuracy " + number(100 * s.probe.accuracyBefore) + "% -> " +
         number(100 * s.probe.accuracyAfter) + "%, margin " + number(s.probe.marginBefore) +
         " -> " + number(s.probe.marginAfter) + ", chosen log-prob shift " +
         number(s.probe.chosenShift) + "\n";
  out += "    findings:";
  if (s.findings.empty()) out += " none";
  for (const ScreenFinding &f : s.findings)
    out += "\n      " + std::string(severityName(f.severity)) + "[" + f.kind + "]: " + f.message;
  out += "\n";
}

void writeIntervals(JsonWriter &w, const std::vector<MarginInterval> &ivs) {
  w.beginArray();
  for (const MarginInterval &iv : ivs)
    w.beginArray().value(iv.lo).value(iv.hi).endArray();
  w.endArray();
}

void renderScreenJson(const ScreenReport &s, JsonWriter &w) {
  w.beginObject().field("ran", s.ran);
  if (!s.ran) {
    w.field("not_run", s.notRun).endObject();
    return;
  }
  w.field("milliseconds", s.milliseconds).field("beta", s.beta);
  const char *prec[2] = {"f64", "f32"};
  for (int p = 0; p < 2; ++p) {
    w.key(prec[p]).beginObject();
    w.key("nan_value"), writeIntervals(w, s.nanValue[p]);
    w.key("nan_gradient"), writeIntervals(w, s.nanGradient[p]);
    w.key("inf_value"), writeIntervals(w, s.infValue[p]);
    w.key("inf_gradient"), writeIntervals(w, s.infGradient[p]);
    w.endObject();
  }
  w.key("at_zero")
      .beginObject()
      .field("value", s.valueAtZero)
      .field("slope", s.slopeAtZero)
      .field("slope_beta_rho", s.slopeAtZero / s.beta)
      .field("descent_raises_margin", s.descentRaisesMargin)
      .endObject();
  w.field("bounded_below", s.boundedBelow)
      .field("lowest", s.lowest)
      .field("value_at_minus_end", s.valueAtMinusInf)
      .field("value_at_plus_end", s.valueAtPlusInf);
  w.key("non_convex"), writeIntervals(w, s.nonConvex);
  w.key("extrema").beginArray();
  for (const Extremum &e : s.extrema)
    w.beginObject()
        .field("kind", e.minimum ? "minimum" : "maximum")
        .field("rho", e.rho)
        .field("value", e.value)
        .endObject();
  w.endArray().key("discontinuities").beginArray();
  for (double d : s.discontinuities)
    w.value(d);
  w.endArray().field("gradient_check_error", s.gradientCheckError);
  w.key("probe")
      .beginObject()
      .field("accuracy_before", s.probe.accuracyBefore)
      .field("accuracy_after", s.probe.accuracyAfter)
      .field("margin_before", s.probe.marginBefore)
      .field("margin_after", s.probe.marginAfter)
      .field("chosen_shift", s.probe.chosenShift)
      .field("diverges", s.probe.diverges)
      .field("chosen_falls", s.probe.chosenFalls)
      .field("finite", s.probe.finite)
      .endObject();
  w.key("equivalent_to").beginArray();
  for (const std::string &e : s.equivalentTo)
    w.value(e);
  w.endArray().key("findings").beginArray();
  for (const ScreenFinding &f : s.findings)
    w.beginObject()
        .field("severity", severityName(f.severity))
        .field("kind", f.kind)
        .field("message", f.message)
        .endObject();
  w.endArray().endObject();
}

const char *statusName(InputGradient::Status s) {
  switch (s) {
  case InputGradient::Flows: return "flows";
  case InputGradient::CutOff: return "cut-off";
  case InputGradient::Unused: return "unused";
  }
  return "?";
}

std::string rangeText(const IrParam &p) {
  return std::string(p.loOpen ? "(" : "[") + formatShortest(p.lo) + ", " + formatShortest(p.hi) +
         (p.hiOpen ? ")" : "]");
}

std::string locText(const SourceManager &sources, SourceLoc loc) {
  if (!loc.valid()) return "";
  return sources.path(loc.file) + ":" + std::to_string(loc.line) + ":" + std::to_string(loc.column);
}
} // namespace

CheckReport runCheck(const Frontend &fe, const CheckOptions &options, const ScreenReport *screen) {
  CheckReport r;
  r.errors = fe.diags.errorCount();
  r.warnings = fe.diags.warningCount();
  r.screen = screen;
  if (screen)
    for (const ScreenFinding &f : screen->findings) {
      r.errors += f.severity == ScreenFinding::Error;
      r.warnings += f.severity == ScreenFinding::Warning;
    }
  r.passed = fe.ok() && r.errors == 0 && !(options.strict && r.warnings);
  return r;
}

void renderCheckText(const Frontend &fe, const CheckReport &report, std::string &out) {
  fe.diags.renderText(out);
  if (fe.ir) {
    const LossIr &ir = *fe.ir;
    out += "loss " + ir.name + "\n  inputs:";
    for (const IrInput &in : ir.inputs)
      out += "\n    " + in.name + ": " + Type::real(in.shape).str() +
             (in.differentiable ? " diff" : "");
    out += "\n  params:";
    if (ir.params.empty()) out += " none";
    for (const IrParam &p : ir.params)
      out += "\n    " + p.name + " = " + formatShortest(p.defaultValue) + " in " + rangeText(p);
    out += "\n  batch coupled: " + std::string(ir.batchCoupled ? "yes" : "no") +
           "\n  min batch: " + std::to_string(ir.minBatch) + "\n  gradient:";
    for (const InputGradient &g : fe.diff.inputs)
      out += "\n    " + g.name + ": " + statusName(g.status);
    out += "\n  non-smooth operations:";
    if (fe.diff.nonSmooth.empty()) out += " none";
    for (const NonSmoothOp &op : fe.diff.nonSmooth)
      out += "\n    " + locText(fe.sources, op.loc) + ": " + op.what;
    out += "\n";
    if (report.screen) renderScreenText(*report.screen, out);
  }
  out += std::string(report.passed ? "passed" : "failed") + " (" + std::to_string(report.errors) +
         " errors, " + std::to_string(report.warnings) + " warnings)\n";
}

void renderCheckJson(const Frontend &fe, const CheckReport &report, std::string &out) {
  JsonWriter w(out);
  w.beginObject().field("schema", "lossc.check/2").field("passed", report.passed);
  w.field("file", fe.sources.fileCount() ? fe.sources.path(1) : std::string());
  w.key("loss");
  if (!fe.ir) {
    w.null();
  } else {
    const LossIr &ir = *fe.ir;
    w.beginObject().field("name", ir.name).key("inputs").beginArray();
    for (const IrInput &in : ir.inputs)
      w.beginObject()
          .field("name", in.name)
          .field("type", Type::real(in.shape).str())
          .field("differentiable", in.differentiable)
          .endObject();
    w.endArray().key("params").beginArray();
    for (const IrParam &p : ir.params)
      w.beginObject()
          .field("name", p.name)
          .field("default", p.defaultValue)
          .field("min", p.lo)
          .field("max", p.hi)
          .field("min_open", p.loOpen)
          .field("max_open", p.hiOpen)
          .endObject();
    w.endArray()
        .field("batch_coupled", ir.batchCoupled)
        .field("min_batch", ir.minBatch)
        .key("gradient")
        .beginArray();
    for (const InputGradient &g : fe.diff.inputs)
      w.beginObject().field("input", g.name).field("status", statusName(g.status)).endObject();
    w.endArray().key("non_smooth").beginArray();
    for (const NonSmoothOp &op : fe.diff.nonSmooth) {
      w.beginObject().field("what", op.what).field("at", locText(fe.sources, op.loc)).endObject();
    }
    w.endArray();
    w.key("screening");
    if (report.screen)
      renderScreenJson(*report.screen, w);
    else
      w.null();
    w.endObject();
  }
  fe.diags.writeJson(w);
  w.endObject();
  out += '\n';
}

} // namespace lossc
