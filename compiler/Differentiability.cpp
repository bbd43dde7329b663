// Differentiability: forward propagation of per-input bit masks over the IR.
//   depends[i]: the inputs instruction i depends on at all;
//   grad[i]:    the inputs with a path of non-zero partial derivatives to instruction i.
#include "Differentiability.h"

#include <cstdint>

namespace lossc {

namespace {
// The operands through which a gradient can flow into an op.
bool passesGradient(const Inst &inst, int operand) {
  switch (opInfo(inst.op).diffClass) {
  case DiffClass::Leaf:
  case DiffClass::PiecewiseConstant:
  case DiffClass::Blocked: return false;
  case DiffClass::Select: return operand != 0;
  case DiffClass::Smooth:
  case DiffClass::Kink:
  case DiffClass::Permutation: return true;
  }
  return false;
}

std::string describeNonSmooth(Op op) {
  switch (op) {
  case Op::Abs: return "abs: not differentiable at 0 (gradient 0 taken there)";
  case Op::Relu: return "relu: not differentiable at 0 (gradient 0 taken there)";
  case Op::Min:
  case Op::Max:
    return std::string(opInfo(op).name) +
           ": not differentiable where the arguments are equal (the gradient goes to the first)";
  case Op::ReduceMin:
  case Op::ReduceMax:
    return std::string(op == Op::ReduceMin ? "min" : "max") +
           " over the batch: the gradient goes to one example only";
  case Op::Sort: return "sort: the gradient follows the sorting permutation, which jumps at ties";
  case Op::Select:
    return "where/if: the condition is piecewise constant; the loss may jump where it flips";
  case Op::Lt:
  case Op::Le:
  case Op::Gt:
  case Op::Ge:
  case Op::Eq:
  case Op::Ne: return "comparison: piecewise constant, zero gradient";
  case Op::StopGrad: return "stopgrad: zero gradient by definition";
  default: return opInfo(op).name;
  }
}
} // namespace

DiffReport analyzeDifferentiability(const LossIr &ir, DiagEngine &diags) {
  DiffReport report;
  size_t n = ir.insts.size();
  std::vector<uint64_t> depends(n, 0), grad(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const Inst &inst = ir.insts[i];
    if (inst.op == Op::Input && ir.inputs[inst.index].differentiable) {
      depends[i] = grad[i] = uint64_t{1} << inst.index;
      continue;
    }
    for (int k = 0; k < opInfo(inst.op).arity; ++k) {
      ValueId a = inst.operands[k];
      depends[i] |= depends[a];
      if (passesGradient(inst, k)) grad[i] |= grad[a];
    }
  }

  // Which instructions feed the result (all of them after dead-code elimination, but the
  // analysis does not rely on it).
  std::vector<bool> live(n, false);
  if (ir.result != kNoValue) live[ir.result] = true;
  for (size_t i = n; i-- > 0;)
    if (live[i])
      for (int k = 0; k < opInfo(ir.insts[i].op).arity; ++k)
        live[ir.insts[i].operands[k]] = true;

  for (size_t i = 0; i < n; ++i) {
    const Inst &inst = ir.insts[i];
    DiffClass cls = opInfo(inst.op).diffClass;
    bool nonSmooth = cls == DiffClass::Kink || cls == DiffClass::Permutation ||
                     cls == DiffClass::Select || cls == DiffClass::PiecewiseConstant ||
                     cls == DiffClass::Blocked;
    // Only ops that something differentiable reaches are worth a remark.
    if (live[i] && nonSmooth && depends[i] != 0)
      report.nonSmooth.push_back({static_cast<ValueId>(i), describeNonSmooth(inst.op), inst.loc});
  }

  bool anyDiff = false, anyFlows = false;
  uint64_t resultDepends = ir.result != kNoValue ? depends[ir.result] : 0;
  uint64_t resultGrad = ir.result != kNoValue ? grad[ir.result] : 0;
  for (size_t k = 0; k < ir.inputs.size(); ++k) {
    if (!ir.inputs[k].differentiable) continue;
    anyDiff = true;
    uint64_t bit = uint64_t{1} << k;
    InputGradient g{ir.inputs[k].name, InputGradient::Flows, {}};
    if (!(resultGrad & bit)) {
      g.status = resultDepends & bit ? InputGradient::CutOff : InputGradient::Unused;
      if (g.status == InputGradient::CutOff) {
        // The first live op where a gradient-carrying operand stops carrying it.
        for (size_t i = 0; i < n && !g.cutAt.valid(); ++i) {
          const Inst &inst = ir.insts[i];
          if (!live[i] || (grad[i] & bit)) continue;
          for (int k2 = 0; k2 < opInfo(inst.op).arity; ++k2)
            if (grad[inst.operands[k2]] & bit) {
              g.cutAt = inst.loc;
              break;
            }
        }
      }
    }
    anyFlows |= g.status == InputGradient::Flows;
    report.inputs.push_back(g);
  }

  if (!anyDiff) {
    diags.report(DiagId::E0401, ir.loc, "loss '" + ir.name + "' has no differentiable input")
        .help("mark the policy's inputs with `diff`, as in `input policy_chosen_logps: real[B] "
              "diff;`, or use `inputs pairwise;`");
    return report;
  }
  for (const InputGradient &g : report.inputs) {
    if (g.status == InputGradient::Flows) continue;
    // With no gradient at all the same facts are notes of the error below.
    if (!anyFlows) continue;
    SourceLoc declared;
    for (const IrInput &in : ir.inputs)
      if (in.name == g.name) declared = in.loc;
    if (g.status == InputGradient::CutOff)
      diags
          .report(DiagId::W0401, g.cutAt,
                  "'" + g.name +
                      "' reaches the loss only through piecewise-constant "
                      "operations: its gradient is identically zero")
          .note("the gradient stops at this operation");
    else
      diags.report(DiagId::W0402, declared,
                   "differentiable input '" + g.name + "' does not affect the loss");
  }
  if (!anyFlows) {
    SourceLoc at = ir.result != kNoValue ? ir.insts[ir.result].loc : SourceLoc{};
    auto d = diags.report(DiagId::E0402, at,
                          "the gradient of loss '" + ir.name +
                              "' is identically zero with respect to every differentiable input: "
                              "training would not move the policy");
    for (const InputGradient &g : report.inputs) {
      if (g.status == InputGradient::CutOff)
        d.note("'" + g.name +
                   "' only reaches the loss through this piecewise-constant "
                   "operation",
               g.cutAt);
      else
        d.note("'" + g.name + "' is not used");
    }
    d.help("build the loss from a smooth function of the policy log-probabilities, such as "
           "softplus(-beta * rho); comparisons, where-conditions and stopgrad carry no gradient");
  }
  return report;
}

} // namespace lossc
