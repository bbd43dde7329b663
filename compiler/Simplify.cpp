// Rewriting passes on kernels. Each pass rebuilds the list front to back through an IrBuilder,
// so operands are already rewritten when their user is looked at, and CSE and folding apply to
// every new instruction.
#include "Simplify.h"

#include <cmath>

namespace lossc {

namespace {

class Rewriter {
public:
  explicit Rewriter(const Kernel &k) : old_(k), b_(out_) {}

  // Rebuilds the kernel; `rewrite` may return a replacement for an instruction whose operands
  // are already mapped, or kNoValue to keep it.
  template <class F> Kernel run(F rewrite) {
    map_.assign(old_.insts.size(), kNoValue);
    for (size_t i = 0; i < old_.insts.size(); ++i) {
      Inst inst = old_.insts[i];
      for (int k = 0; k < opInfo(inst.op).arity; ++k)
        inst.operands[k] = map_[inst.operands[k]];
      loc_ = inst.loc;
      ValueId r = rewrite(inst);
      map_[i] = r != kNoValue ? r : copy(inst);
    }
    Kernel k;
    k.insts = std::move(out_);
    k.withGradient = old_.withGradient;
    k.loss = map_[old_.loss];
    for (ValueId g : old_.grads)
      k.grads.push_back(g == kNoValue ? kNoValue : map_[g]);
    std::vector<ValueId *> roots{&k.loss};
    for (ValueId &g : k.grads)
      roots.push_back(&g);
    eliminateDeadCode(k.insts, roots);
    return k;
  }

  const Inst &at(ValueId v) const { return b_[v]; }
  bool isConst(ValueId v, double c) const { return at(v).op == Op::Const && at(v).value == c; }
  Shape shapeOf(ValueId v) const { return at(v).type.shape; }

  ValueId copy(const Inst &inst) {
    if (opInfo(inst.op).arity == 0) {
      if (inst.op == Op::Const) return b_.constant(inst.value, inst.loc, inst.type.elem);
      return b_.leaf(inst.op, inst.type, inst.index, inst.loc);
    }
    return b_.op(inst.op, inst.type, inst.loc, inst.operands[0], inst.operands[1],
                 inst.operands[2]);
  }
  ValueId un(Op op, ValueId a) { return b_.op(op, at(a).type, loc_, a); }
  ValueId bin(Op op, ValueId a, ValueId c) {
    return b_.op(op, Type::real(joinShapes(shapeOf(a), shapeOf(c))), loc_, a, c);
  }
  ValueId cst(double v) { return b_.constant(v, loc_); }
  ValueId cmp(Op op, ValueId a, ValueId c) {
    return b_.op(op, Type::boolean(joinShapes(shapeOf(a), shapeOf(c))), loc_, a, c);
  }
  ValueId select(ValueId cond, ValueId a, ValueId c) {
    Shape s = joinShapes(shapeOf(cond), joinShapes(shapeOf(a), shapeOf(c)));
    return b_.op(Op::Select, Type::real(s), loc_, cond, a, c);
  }
  ValueId sum(ValueId a) { return b_.op(Op::Sum, Type::real(), loc_, a); }
  ValueId batchSize() { return b_.leaf(Op::BatchSize, Type::real(), 0, loc_); }

private:
  const Kernel &old_;
  std::vector<Inst> out_;
  IrBuilder b_;
  std::vector<ValueId> map_;
  SourceLoc loc_;
};

// The factors of a product, looking through nested products.
void collectFactors(const Rewriter &r, ValueId v, std::vector<ValueId> &out, int depth) {
  const Inst &inst = r.at(v);
  if (inst.op == Op::Mul && depth < 8) {
    collectFactors(r, inst.operands[0], out, depth + 1);
    collectFactors(r, inst.operands[1], out, depth + 1);
  } else {
    out.push_back(v);
  }
}

ValueId stableProduct(Rewriter &r, const Inst &mul) {
  std::vector<ValueId> factors;
  collectFactors(r, mul.operands[0], factors, 0);
  collectFactors(r, mul.operands[1], factors, 0);
  auto positiveConst = [&](ValueId f) {
    const Inst &inst = r.at(f);
    return inst.op == Op::Const && inst.type.isReal() && inst.value > 0 && inst.value != 1 &&
           std::isfinite(inst.value);
  };
  size_t exps = 0, others = 0;
  for (ValueId f : factors) {
    exps += r.at(f).op == Op::Exp;
    others += r.at(f).op == Op::Sigmoid || positiveConst(f);
  }
  if (exps == 0 || exps + others < 2) return kNoValue;
  // c exp(b1) exp(b2) sigmoid(a) ... = exp(b1 + b2 + logsigmoid(a) + ln c ...): one exp of the
  // sum, which overflows or underflows only where the product does (0.5 e^88.9 is finite in f32).
  ValueId exponent = kNoValue, rest = kNoValue;
  for (ValueId f : factors) {
    const Inst &inst = r.at(f);
    ValueId term = kNoValue;
    if (inst.op == Op::Exp)
      term = inst.operands[0];
    else if (inst.op == Op::Sigmoid)
      term = r.un(Op::LogSigmoid, inst.operands[0]);
    else if (positiveConst(f))
      term = r.cst(std::log(inst.value));
    if (term != kNoValue)
      exponent = exponent == kNoValue ? term : r.bin(Op::Add, exponent, term);
    else
      rest = rest == kNoValue ? f : r.bin(Op::Mul, rest, f);
  }
  ValueId e = r.un(Op::Exp, exponent);
  ValueId result = rest == kNoValue ? e : r.bin(Op::Mul, rest, e);
  // Keep the product's own shape: a scalar factor list stays scalar, [B] stays [B].
  return r.shapeOf(result) == mul.type.shape ? result : kNoValue;
}

} // namespace

void simplify(Kernel &k) {
  Rewriter r(k);
  k = r.run([&](const Inst &inst) -> ValueId {
    ValueId x = inst.operands[0], y = inst.operands[1];
    switch (inst.op) {
    case Op::Log: {
      const Inst &a = r.at(x);
      if (a.op == Op::Sigmoid) return r.un(Op::LogSigmoid, a.operands[0]);
      if (a.op == Op::Exp) return a.operands[0];
      // log(1 + e^u) = softplus(u), which does not overflow with e^u
      if (a.op == Op::Add && r.isConst(a.operands[0], 1) && r.at(a.operands[1]).op == Op::Exp)
        return r.un(Op::Softplus, r.at(a.operands[1]).operands[0]);
      if (a.op == Op::Add && r.isConst(a.operands[1], 1) && r.at(a.operands[0]).op == Op::Exp)
        return r.un(Op::Softplus, r.at(a.operands[0]).operands[0]);
      if (a.op == Op::Add && r.isConst(a.operands[0], 1)) return r.un(Op::Log1p, a.operands[1]);
      if (a.op == Op::Add && r.isConst(a.operands[1], 1)) return r.un(Op::Log1p, a.operands[0]);
      // log(1 - e^u) = log(-expm1(u)): log1p(-e^u) where e^u is small (u < -ln 2), else
      // log(-expm1(u)); each branch is accurate where it is taken (Maechler's log1mexp). The
      // untaken branch of each select gets a harmless argument (1, or u = -1), so that neither
      // its value nor its derivative is infinite there: a zero cotangent times an infinite
      // derivative would be NaN. The log's argument also keeps the rule off its own output.
      if (a.op == Op::Neg && r.at(a.operands[0]).op == Op::Expm1) {
        ValueId u = r.at(a.operands[0]).operands[0];
        ValueId cond = r.cmp(Op::Lt, u, r.cst(-std::log(2.0)));
        ValueId uFar = r.select(cond, u, r.cst(-1));
        ValueId far = r.un(Op::Log1p, r.un(Op::Neg, r.un(Op::Exp, uFar)));
        return r.select(cond, far, r.un(Op::Log, r.select(cond, r.cst(1), x)));
      }
      return kNoValue;
    }
    case Op::Log1p:
      if (r.at(x).op == Op::Exp) return r.un(Op::Softplus, r.at(x).operands[0]);
      return kNoValue;
    case Op::Sub:
      if (r.at(x).op == Op::Exp && r.isConst(y, 1)) return r.un(Op::Expm1, r.at(x).operands[0]);
      // 1 - e^u = -expm1(u), exact where e^u is near 1
      if (r.isConst(x, 1) && r.at(y).op == Op::Exp)
        return r.un(Op::Neg, r.un(Op::Expm1, r.at(y).operands[0]));
      if (r.isConst(x, 1) && r.at(y).op == Op::Sigmoid)
        return r.un(Op::Sigmoid, r.un(Op::Neg, r.at(y).operands[0]));
      if (r.isConst(y, 0) && r.shapeOf(x) == inst.type.shape) return x;
      return kNoValue;
    case Op::Neg:
      if (r.at(x).op == Op::Neg) return r.at(x).operands[0];
      return kNoValue;
    case Op::Add:
      if (r.isConst(y, 0) && r.shapeOf(x) == inst.type.shape) return x;
      if (r.isConst(x, 0) && r.shapeOf(y) == inst.type.shape) return y;
      return kNoValue;
    case Op::Mul:
      if (r.isConst(y, 1) && r.shapeOf(x) == inst.type.shape) return x;
      if (r.isConst(x, 1) && r.shapeOf(y) == inst.type.shape) return y;
      return stableProduct(r, inst);
    default: return kNoValue;
    }
  });
}

void expandReductions(Kernel &k) {
  Rewriter r(k);
  k = r.run([&](const Inst &inst) -> ValueId {
    ValueId x = inst.operands[0];
    switch (inst.op) {
    case Op::Mean: return r.bin(Op::Div, r.sum(x), r.batchSize());
    case Op::Var:
    case Op::Std: {
      ValueId m = r.bin(Op::Div, r.sum(x), r.batchSize());
      ValueId d = r.bin(Op::Sub, x, m);
      ValueId v =
          r.bin(Op::Div, r.sum(r.bin(Op::Mul, d, d)), r.bin(Op::Sub, r.batchSize(), r.cst(1)));
      return inst.op == Op::Var ? v : r.un(Op::Sqrt, v);
    }
    default: return kNoValue;
    }
  });
}

} // namespace lossc
