// The IR's op table, builder (hash-consing, constant folding), dead-code elimination, printer.
#include "Ir.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

namespace lossc {

namespace {
const OpInfo kOpTable[] = {
#define LOSSC_OP(e, name, arity, cls) {name, arity, DiffClass::cls},
#include "Ops.def"
};

double stableLog1pExpNeg(double a) {
  return std::log1p(std::exp(-std::fabs(a)));
}
} // namespace

const OpInfo &opInfo(Op op) {
  return kOpTable[static_cast<size_t>(op)];
}

bool isReduction(Op op) {
  switch (op) {
  case Op::Sum:
  case Op::Mean:
  case Op::Var:
  case Op::Std:
  case Op::ReduceMin:
  case Op::ReduceMax: return true;
  default: return false;
  }
}

bool isBatchCoupling(Op op) {
  return isReduction(op) || op == Op::Sort || op == Op::Unsort || op == Op::Index ||
         op == Op::BatchSize;
}

double evalElementwise(Op op, double x, double y, double z) {
  switch (op) {
  case Op::Neg: return -x;
  case Op::Add: return x + y;
  case Op::Sub: return x - y;
  case Op::Mul: return x * y;
  case Op::Div: return x / y;
  case Op::Pow: return std::pow(x, y);
  case Op::Exp: return std::exp(x);
  case Op::Log: return std::log(x);
  case Op::Log1p: return std::log1p(x);
  case Op::Expm1: return std::expm1(x);
  case Op::Sqrt: return std::sqrt(x);
  case Op::Sigmoid: return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x));
  case Op::LogSigmoid: return std::fmin(x, 0.0) - stableLog1pExpNeg(x);
  case Op::Softplus: return std::fmax(x, 0.0) + stableLog1pExpNeg(x);
  case Op::Tanh: return std::tanh(x);
  case Op::Abs: return std::fabs(x);
  case Op::Relu: return x > 0 ? x : 0.0;
  case Op::Min: return std::isnan(x) || std::isnan(y) ? NAN : std::fmin(x, y);
  case Op::Max: return std::isnan(x) || std::isnan(y) ? NAN : std::fmax(x, y);
  case Op::Lt: return x < y;
  case Op::Le: return x <= y;
  case Op::Gt: return x > y;
  case Op::Ge: return x >= y;
  case Op::Eq: return x == y;
  case Op::Ne: return x != y;
  case Op::And: return x != 0 && y != 0;
  case Op::Or: return x != 0 || y != 0;
  case Op::Not: return x == 0;
  case Op::Select: return x != 0 ? y : z;
  case Op::StopGrad: return x;
  default: return std::numeric_limits<double>::quiet_NaN();
  }
}

IrBuilder::IrBuilder(std::vector<Inst> &insts) : insts_(insts) {
  for (size_t i = 0; i < insts_.size(); ++i)
    table_.emplace(key(insts_[i]), static_cast<ValueId>(i));
}

// Every field but the location: equal instructions are one value.
std::string IrBuilder::key(const Inst &inst) {
  std::string key(reinterpret_cast<const char *>(&inst.op), sizeof inst.op);
  key.append(reinterpret_cast<const char *>(&inst.type.elem), sizeof inst.type.elem);
  key.append(reinterpret_cast<const char *>(&inst.type.shape), sizeof inst.type.shape);
  key.append(reinterpret_cast<const char *>(inst.operands), sizeof inst.operands);
  uint64_t bits;
  std::memcpy(&bits, &inst.value, sizeof bits);
  key.append(reinterpret_cast<const char *>(&bits), sizeof bits);
  key.append(reinterpret_cast<const char *>(&inst.index), sizeof inst.index);
  return key;
}

ValueId IrBuilder::intern(const Inst &inst) {
  auto [it, inserted] = table_.emplace(key(inst), static_cast<ValueId>(insts_.size()));
  if (inserted) insts_.push_back(inst);
  return it->second;
}

ValueId IrBuilder::constant(double v, SourceLoc loc, Elem elem) {
  Inst inst{Op::Const, {elem, Shape::Scalar}};
  inst.value = v;
  inst.loc = loc;
  return intern(inst);
}

ValueId IrBuilder::leaf(Op op, Type type, uint32_t index, SourceLoc loc) {
  Inst inst{op, type};
  inst.index = index;
  inst.loc = loc;
  return intern(inst);
}

ValueId IrBuilder::op(Op op, Type type, SourceLoc loc, ValueId a, ValueId b, ValueId c) {
  Inst inst{op, type, {a, b, c}};
  inst.loc = loc;
  const OpInfo &info = opInfo(op);
  // Fold elementwise ops whose operands are all constants (bools fold to 0/1 constants only when
  // the result is real, so the IR stays well typed).
  bool foldable = !isReduction(op) && op != Op::Sort && op != Op::Unsort && info.arity > 0 &&
                  type.isReal() && type.shape == Shape::Scalar;
  double args[3] = {0, 0, 0};
  for (int i = 0; foldable && i < info.arity; ++i) {
    const Inst &operand = insts_[inst.operands[i]];
    if (operand.op != Op::Const)
      foldable = false;
    else
      args[i] = operand.value;
  }
  if (foldable && op != Op::StopGrad)
    return constant(evalElementwise(op, args[0], args[1], args[2]), loc);
  return intern(inst);
}

ValueId eliminateDeadCode(std::vector<Inst> &insts, ValueId result) {
  eliminateDeadCode(insts, {&result});
  return result;
}

void eliminateDeadCode(std::vector<Inst> &insts, std::vector<ValueId *> roots) {
  std::vector<bool> live(insts.size(), false);
  for (ValueId *r : roots)
    if (*r != kNoValue) live[*r] = true;
  for (size_t i = insts.size(); i-- > 0;) {
    if (!live[i]) continue;
    for (int k = 0; k < opInfo(insts[i].op).arity; ++k)
      live[insts[i].operands[k]] = true;
  }
  std::vector<ValueId> remap(insts.size(), kNoValue);
  std::vector<Inst> kept;
  for (size_t i = 0; i < insts.size(); ++i) {
    if (!live[i]) continue;
    Inst inst = insts[i];
    for (int k = 0; k < opInfo(inst.op).arity; ++k)
      inst.operands[k] = remap[inst.operands[k]];
    remap[i] = static_cast<ValueId>(kept.size());
    kept.push_back(inst);
  }
  insts = std::move(kept);
  for (ValueId *r : roots)
    if (*r != kNoValue) *r = remap[*r];
}

void printIr(const LossIr &ir, const SourceManager &sources, std::string &out) {
  auto where = [&](const SourceLoc &loc) {
    if (!loc.valid()) return std::string();
    return "  ; " + sources.path(loc.file) + ":" + std::to_string(loc.line) + ":" +
           std::to_string(loc.column);
  };
  out += "loss " + ir.name + "\n";
  for (size_t k = 0; k < ir.inputs.size(); ++k) {
    const IrInput &in = ir.inputs[k];
    out += "  input #" + std::to_string(k) + " " + in.name + ": " + Type::real(in.shape).str() +
           (in.differentiable ? " diff" : "") + "\n";
  }
  for (size_t k = 0; k < ir.params.size(); ++k) {
    const IrParam &p = ir.params[k];
    out += "  param #" + std::to_string(k) + " " + p.name + " = " + formatShortest(p.defaultValue) +
           " in " + (p.loOpen ? "(" : "[") + formatShortest(p.lo) + ", " + formatShortest(p.hi) +
           (p.hiOpen ? ")" : "]") + "\n";
  }
  out += "  batch_coupled " + std::string(ir.batchCoupled ? "true" : "false") + ", min_batch " +
         std::to_string(ir.minBatch) + "\n";
  for (size_t i = 0; i < ir.insts.size(); ++i) {
    const Inst &inst = ir.insts[i];
    const OpInfo &info = opInfo(inst.op);
    std::string line = "  %" + std::to_string(i) + " = " + info.name;
    if (inst.op == Op::Const) line += " " + formatShortest(inst.value);
    if (inst.op == Op::Input) line += " " + ir.inputs[inst.index].name;
    if (inst.op == Op::Param) line += " " + ir.params[inst.index].name;
    for (int k = 0; k < info.arity; ++k)
      line += (k ? ", %" : " %") + std::to_string(inst.operands[k]);
    line += " : " + inst.type.str();
    out += line + where(inst.loc) + "\n";
  }
  out += "  return %" + std::to_string(ir.result) + "\n";
}

} // namespace lossc
