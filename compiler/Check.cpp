// The check report: static facts of a loss and its diagnostics, as text or JSON.
#include "Check.h"

#include "Json.h"

namespace lossc {

namespace {
const char *statusName(InputGradient::Status s) {
  switch (s) {
  case InputGradient::Flows: return "flows";
  case InputGradient::CutOff: return "cut-off";
  case InputGradient::Unused: return "unused";
  }
  return "?";
}

std::string rangeText(const IrParam &p) {
  return std::string(p.loOpen ? "(" : "[") + formatNumber(p.lo) + ", " + formatNumber(p.hi) +
         (p.hiOpen ? ")" : "]");
}

std::string locText(const SourceManager &sources, SourceLoc loc) {
  if (!loc.valid()) return "";
  return sources.path(loc.file) + ":" + std::to_string(loc.line) + ":" + std::to_string(loc.column);
}
} // namespace

CheckReport runCheck(const Frontend &fe, const CheckOptions &options) {
  CheckReport r;
  r.errors = fe.diags.errorCount();
  r.warnings = fe.diags.warningCount();
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
      out += "\n    " + p.name + " = " + formatNumber(p.defaultValue) + " in " + rangeText(p);
    out += "\n  batch coupled: " + std::string(ir.batchCoupled ? "yes" : "no") +
           "\n  min batch: " + std::to_string(ir.minBatch) + "\n  gradient:";
    for (const InputGradient &g : fe.diff.inputs)
      out += "\n    " + g.name + ": " + statusName(g.status);
    out += "\n  non-smooth operations:";
    if (fe.diff.nonSmooth.empty()) out += " none";
    for (const NonSmoothOp &op : fe.diff.nonSmooth)
      out += "\n    " + locText(fe.sources, op.loc) + ": " + op.what;
    out += "\n";
  }
  out += std::string(report.passed ? "passed" : "failed") + " (" + std::to_string(report.errors) +
         " errors, " + std::to_string(report.warnings) + " warnings)\n";
}

void renderCheckJson(const Frontend &fe, const CheckReport &report, std::string &out) {
  JsonWriter w(out);
  w.beginObject().field("schema", "lossc.check/1").field("passed", report.passed);
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
    w.endArray().endObject();
  }
  fe.diags.writeJson(w);
  w.endObject();
  out += '\n';
}

} // namespace lossc
