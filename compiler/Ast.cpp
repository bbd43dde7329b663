// AST helpers: operator spellings, the input presets, and the --emit=ast printer.
#include "Ast.h"

#include <cstdio>

namespace lossc {

const char *binaryOpSpelling(BinaryOp op) {
  switch (op) {
  case BinaryOp::Add: return "+";
  case BinaryOp::Sub: return "-";
  case BinaryOp::Mul: return "*";
  case BinaryOp::Div: return "/";
  case BinaryOp::Pow: return "**";
  case BinaryOp::Lt: return "<";
  case BinaryOp::Le: return "<=";
  case BinaryOp::Gt: return ">";
  case BinaryOp::Ge: return ">=";
  case BinaryOp::Eq: return "==";
  case BinaryOp::Ne: return "!=";
  case BinaryOp::And: return "and";
  case BinaryOp::Or: return "or";
  }
  return "?";
}

namespace {
// Input names are TRL's (DPOTrainer.concatenated_forward / dpo_loss).
const std::vector<PresetInput> kPairwise = {
    {"policy_chosen_logps", InputShape::Batch, true},
    {"policy_rejected_logps", InputShape::Batch, true},
    {"reference_chosen_logps", InputShape::Batch, false},
    {"reference_rejected_logps", InputShape::Batch, false},
};
const std::vector<PresetInput> kPairwiseLengths = {
    {"policy_chosen_logps", InputShape::Batch, true},
    {"policy_rejected_logps", InputShape::Batch, true},
    {"reference_chosen_logps", InputShape::Batch, false},
    {"reference_rejected_logps", InputShape::Batch, false},
    {"chosen_lengths", InputShape::Batch, false},
    {"rejected_lengths", InputShape::Batch, false},
};
const std::vector<PresetInput> kReferenceFree = {
    {"policy_chosen_logps", InputShape::Batch, true},
    {"policy_rejected_logps", InputShape::Batch, true},
    {"chosen_lengths", InputShape::Batch, false},
    {"rejected_lengths", InputShape::Batch, false},
};
struct NamedPreset {
  const char *name;
  const std::vector<PresetInput> *inputs;
};
const NamedPreset kPresets[] = {
    {"pairwise", &kPairwise},
    {"pairwise_lengths", &kPairwiseLengths},
    {"reference_free", &kReferenceFree},
};

std::string number(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", d);
  return buf;
}

void printExpr(const AstContext &ctx, ExprId id, std::string &out) {
  const Expr &e = ctx[id];
  switch (e.kind) {
  case ExprKind::Number: out += number(e.number); return;
  case ExprKind::Bool: out += e.boolean ? "true" : "false"; return;
  case ExprKind::Name: out += e.name; return;
  case ExprKind::Call: out += "(call " + e.name; break;
  case ExprKind::Neg: out += "(neg"; break;
  case ExprKind::Plus: out += "(plus"; break;
  case ExprKind::Not: out += "(not"; break;
  case ExprKind::Binary: out += std::string("(") + binaryOpSpelling(e.op); break;
  case ExprKind::If: out += "(if"; break;
  }
  for (ExprId a : e.args) {
    out += ' ';
    printExpr(ctx, a, out);
  }
  out += ')';
}

std::string where(const SourceLoc &loc) {
  return std::to_string(loc.line) + ":" + std::to_string(loc.column);
}

void printBody(const AstContext &ctx, const std::vector<Stmt> &body, const char *indent,
               std::string &out) {
  for (const Stmt &s : body) {
    out += indent;
    if (s.kind == Stmt::Let)
      out += "(let " + s.name.name + " ";
    else
      out += "(return ";
    printExpr(ctx, s.value, out);
    out += ")  ; " + where(s.loc) + "\n";
  }
}
} // namespace

const std::vector<PresetInput> *findPreset(const std::string &name) {
  for (const NamedPreset &p : kPresets)
    if (name == p.name) return p.inputs;
  return nullptr;
}

std::vector<std::string> presetNames() {
  std::vector<std::string> names;
  for (const NamedPreset &p : kPresets)
    names.push_back(p.name);
  return names;
}

void printAst(const AstContext &ctx, const Module &m, const SourceManager &, std::string &out) {
  out += "(module \"" + m.path + "\"\n";
  for (const ImportDecl &i : m.imports)
    out += "  (import " + i.name.name + ")  ; " + where(i.name.loc) + "\n";
  for (const FnDecl &f : m.fns) {
    out += "  (fn " + f.name.name + " (";
    for (size_t i = 0; i < f.params.size(); ++i)
      out += (i ? " " : "") + f.params[i].name;
    out += ")  ; " + where(f.name.loc) + "\n";
    printBody(ctx, f.body, "    ", out);
    out += "  )\n";
  }
  for (const LossDecl &l : m.losses) {
    out += "  (loss " + l.name.name + "  ; " + where(l.name.loc) + "\n";
    for (const InputDecl &in : l.inputs)
      out += "    (input " + in.name.name + (in.shape == InputShape::Batch ? " real[B]" : " real") +
             (in.differentiable ? " diff" : "") + ")\n";
    for (const ParamDecl &p : l.params) {
      out += "    (param " + p.name.name + " ";
      printExpr(ctx, p.defaultValue, out);
      if (p.hasRange) {
        out += p.loOpen ? " (" : " [";
        printExpr(ctx, p.lo, out);
        out += ", ";
        printExpr(ctx, p.hi, out);
        out += p.hiOpen ? ")" : "]";
      }
      out += ")\n";
    }
    printBody(ctx, l.body, "    ", out);
    out += "  )\n";
  }
  out += ")\n";
}

} // namespace lossc
