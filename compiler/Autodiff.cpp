// Reverse mode: one rule per op. In each rule x, y, c are the operands, z the result and g the
// cotangent of z; a rule adds its contribution to the cotangent of each operand that carries
// gradient. A scalar operand of a [B] operation receives the batch sum of its contribution.
#include "Autodiff.h"

#include <cmath>

#include "Simplify.h"

namespace lossc {

Kernel forwardKernel(const LossIr &ir) {
  Kernel k;
  k.insts = ir.insts;
  k.loss = ir.result;
  k.grads.assign(ir.inputs.size(), kNoValue);
  return k;
}

namespace {

class ReverseMode {
public:
  ReverseMode(const LossIr &ir, const Kernel &forward)
      : ir_(ir), result_(forward.loss), insts_(forward.insts), b_(insts_) {}

  Kernel run();

private:
  Type typeOf(ValueId v) const { return b_[v].type; }
  Shape shapeOf(ValueId v) const { return b_[v].type.shape; }
  SourceLoc locOf(ValueId v) const { return b_[v].loc; }

  ValueId cst(double v) { return b_.constant(v); }
  ValueId bin(Op op, ValueId a, ValueId c) {
    return b_.op(op, Type::real(joinShapes(shapeOf(a), shapeOf(c))), loc_, a, c);
  }
  ValueId cmp(Op op, ValueId a, ValueId c) {
    return b_.op(op, Type::boolean(joinShapes(shapeOf(a), shapeOf(c))), loc_, a, c);
  }
  ValueId un(Op op, ValueId a) { return b_.op(op, typeOf(a), loc_, a); }
  ValueId add(ValueId a, ValueId c) { return bin(Op::Add, a, c); }
  ValueId sub(ValueId a, ValueId c) { return bin(Op::Sub, a, c); }
  ValueId mul(ValueId a, ValueId c) { return bin(Op::Mul, a, c); }
  ValueId div(ValueId a, ValueId c) { return bin(Op::Div, a, c); }
  ValueId neg(ValueId a) { return un(Op::Neg, a); }
  ValueId select(ValueId cond, ValueId a, ValueId c) {
    Shape s = joinShapes(shapeOf(cond), joinShapes(shapeOf(a), shapeOf(c)));
    return b_.op(Op::Select, Type::real(s), loc_, cond, a, c);
  }
  ValueId sum(ValueId a) { return b_.op(Op::Sum, Type::real(), loc_, a); }
  ValueId mean(ValueId a) { return b_.op(Op::Mean, Type::real(), loc_, a); }
  ValueId batchSize() { return b_.leaf(Op::BatchSize, Type::real(), 0, loc_); }

  // Adds `contribution` to the cotangent of v.
  void accumulate(ValueId v, ValueId contribution) {
    if (!needs_[v]) return;
    if (shapeOf(v) == Shape::Scalar && shapeOf(contribution) == Shape::Batch)
      contribution = sum(contribution);
    adj_[v] = adj_[v] == kNoValue ? contribution : add(adj_[v], contribution);
  }

  void backward(ValueId z, ValueId g);

  const LossIr &ir_;
  ValueId result_;
  std::vector<Inst> insts_;
  IrBuilder b_;
  std::vector<ValueId> adj_;
  std::vector<bool> needs_; // carries gradient from a differentiable input
  SourceLoc loc_;           // the location given to the instructions being made
};

void ReverseMode::backward(ValueId z, ValueId g) {
  const Inst inst = b_[z];
  ValueId x = inst.operands[0], y = inst.operands[1], c = inst.operands[2];
  loc_ = inst.loc;
  switch (inst.op) {
  // d(-x) = -g
  case Op::Neg: accumulate(x, neg(g)); break;
  // d(x + y) = g, g
  case Op::Add: accumulate(x, g), accumulate(y, g); break;
  // d(x - y) = g, -g
  case Op::Sub: accumulate(x, g), accumulate(y, neg(g)); break;
  // d(x y) = g y, g x
  case Op::Mul:
    if (needs_[x]) accumulate(x, mul(g, y));
    if (needs_[y]) accumulate(y, mul(g, x));
    break;
  // d(x / y) = g / y, -g z / y
  case Op::Div:
    if (needs_[x]) accumulate(x, div(g, y));
    if (needs_[y]) accumulate(y, neg(div(mul(g, z), y)));
    break;
  // d(x ** y) = g y x^(y-1), g z ln x
  case Op::Pow:
    if (needs_[x]) {
      const Inst &e = b_[y];
      ValueId d = e.op == Op::Const && e.value == 2 ? mul(cst(2), x)
                                                    : mul(y, bin(Op::Pow, x, sub(y, cst(1))));
      accumulate(x, mul(g, d));
    }
    if (needs_[y]) accumulate(y, mul(g, mul(z, un(Op::Log, x))));
    break;
  // d e^x = g e^x
  case Op::Exp: accumulate(x, mul(g, z)); break;
  // d ln x = g / x
  case Op::Log: accumulate(x, div(g, x)); break;
  // d ln(1 + x) = g / (1 + x)
  case Op::Log1p: accumulate(x, div(g, add(cst(1), x))); break;
  // d (e^x - 1) = g e^x
  case Op::Expm1: accumulate(x, mul(g, un(Op::Exp, x))); break;
  // d sqrt x = g / (2 z)
  case Op::Sqrt: accumulate(x, div(g, mul(cst(2), z))); break;
  // d sigmoid x = g sigmoid(x) sigmoid(-x)   (not z (1 - z), which cancels for z near 1)
  case Op::Sigmoid: accumulate(x, mul(g, mul(z, un(Op::Sigmoid, neg(x))))); break;
  // d log sigmoid x = g sigmoid(-x)
  case Op::LogSigmoid: accumulate(x, mul(g, un(Op::Sigmoid, neg(x)))); break;
  // d softplus x = g sigmoid(x)
  case Op::Softplus: accumulate(x, mul(g, un(Op::Sigmoid, x))); break;
  // d tanh x = g (1 - z^2)
  case Op::Tanh: accumulate(x, mul(g, sub(cst(1), mul(z, z)))); break;
  // d |x| = g sign(x), sign(0) = 0
  case Op::Abs:
    accumulate(x,
               select(cmp(Op::Gt, x, cst(0)), g, select(cmp(Op::Lt, x, cst(0)), neg(g), cst(0))));
    break;
  // d relu x = g [x > 0]
  case Op::Relu: accumulate(x, select(cmp(Op::Gt, x, cst(0)), g, cst(0))); break;
  // d min(x, y) = g [x < y] + g/2 [x == y] for x, symmetrically for y (max: reversed)
  case Op::Min:
  case Op::Max: {
    Op wins = inst.op == Op::Min ? Op::Lt : Op::Gt;
    ValueId half = mul(g, cst(0.5));
    ValueId tie = cmp(Op::Eq, x, y);
    if (needs_[x]) accumulate(x, select(cmp(wins, x, y), g, select(tie, half, cst(0))));
    if (needs_[y]) accumulate(y, select(cmp(wins, y, x), g, select(tie, half, cst(0))));
    break;
  }
  // d (c ? x : y) = g [c], g [not c]; nothing to c
  case Op::Select:
    if (needs_[y]) accumulate(y, select(x, g, cst(0)));
    if (needs_[c]) accumulate(c, select(x, cst(0), g));
    break;
  // d sum_i x_i / d x_j = g
  case Op::Sum: accumulate(x, g); break;
  // d mean / d x_j = g / N
  case Op::Mean: accumulate(x, div(g, batchSize())); break;
  // d var / d x_j = g 2 (x_j - mean) / (N - 1)
  case Op::Var:
    accumulate(x, mul(g, div(mul(cst(2), sub(x, mean(x))), sub(batchSize(), cst(1)))));
    break;
  // d std / d x_j = g (x_j - mean) / ((N - 1) z), and 0 where z = 0
  case Op::Std: {
    ValueId d = div(sub(x, mean(x)), mul(sub(batchSize(), cst(1)), z));
    accumulate(x, select(cmp(Op::Gt, z, cst(0)), mul(g, d), cst(0)));
    break;
  }
  // d min_i x_i / d x_j = g [x_j == z] / #{i : x_i == z}   (max likewise)
  case Op::ReduceMin:
  case Op::ReduceMax: {
    ValueId hit = select(cmp(Op::Eq, x, z), cst(1), cst(0));
    accumulate(x, div(mul(g, hit), sum(hit)));
    break;
  }
  // d sort(x)_i / d x_p(i) = 1: each cotangent goes back to the example sorted into its place
  case Op::Sort:
    if (shapeOf(g) == Shape::Scalar)
      accumulate(x, g);
    else
      accumulate(x, b_.op(Op::Unsort, Type::real(Shape::Batch), loc_, x, g));
    break;
  default: break; // leaves, piecewise-constant ops and stopgrad pass nothing back
  }
}

Kernel ReverseMode::run() {
  size_t n = insts_.size();
  needs_.assign(n, false);
  for (size_t i = 0; i < n; ++i) {
    const Inst &inst = insts_[i];
    if (inst.op == Op::Input) {
      needs_[i] = ir_.inputs[inst.index].differentiable;
      continue;
    }
    DiffClass cls = opInfo(inst.op).diffClass;
    for (int k = 0; k < opInfo(inst.op).arity; ++k) {
      bool passes = cls == DiffClass::Smooth || cls == DiffClass::Kink ||
                    cls == DiffClass::Permutation || (cls == DiffClass::Select && k > 0);
      if (passes && needs_[inst.operands[k]]) needs_[i] = true;
    }
  }
  adj_.assign(n, kNoValue);
  ValueId seed = b_.leaf(Op::GradOut, Type::real(Shape::Batch), 0, insts_[result_].loc);
  adj_.resize(insts_.size(), kNoValue);
  needs_.resize(insts_.size(), false);
  adj_[result_] = seed;
  for (size_t i = n; i-- > 0;) {
    if (!needs_[i] || adj_[i] == kNoValue) continue;
    backward(static_cast<ValueId>(i), adj_[i]);
    // The rules append instructions; keep the side tables as long as the list.
    adj_.resize(insts_.size(), kNoValue);
    needs_.resize(insts_.size(), false);
  }

  Kernel k;
  k.withGradient = true;
  k.loss = result_;
  k.grads.assign(ir_.inputs.size(), kNoValue);
  for (size_t i = 0; i < n; ++i)
    if (insts_[i].op == Op::Input && ir_.inputs[insts_[i].index].differentiable)
      k.grads[insts_[i].index] = adj_[i];
  std::vector<ValueId *> roots{&k.loss};
  for (ValueId &g : k.grads)
    roots.push_back(&g);
  k.insts = std::move(insts_);
  eliminateDeadCode(k.insts, roots);
  return k;
}

} // namespace

Kernel reverseMode(const LossIr &ir, const Kernel &forward) {
  return ReverseMode(ir, forward).run();
}

KernelPair buildKernels(const LossIr &ir) {
  KernelPair p;
  p.forward = forwardKernel(ir);
  simplify(p.forward);
  p.gradient = reverseMode(ir, p.forward);
  simplify(p.gradient);
  return p;
}

} // namespace lossc
