// The reference interpreter.
#include "Interp.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace lossc {

namespace {
std::vector<size_t> stableArgsort(const std::vector<double> &x) {
  std::vector<size_t> p(x.size());
  std::iota(p.begin(), p.end(), 0);
  std::stable_sort(p.begin(), p.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  return p;
}
} // namespace

InterpResult interpret(const Kernel &k, const LossIr &ir, int64_t n,
                       const std::vector<std::vector<double>> &inputs,
                       const std::vector<double> &params, const std::vector<double> &gout) {
  size_t N = static_cast<size_t>(n);
  std::vector<std::vector<double>> v(k.insts.size());
  for (size_t i = 0; i < k.insts.size(); ++i) {
    const Inst &inst = k.insts[i];
    size_t len = inst.type.isBatch() ? N : 1;
    std::vector<double> &out = v[i];
    auto arg = [&](int a, size_t j) {
      const std::vector<double> &src = v[inst.operands[a]];
      return src.size() == 1 ? src[0] : src[j];
    };
    switch (inst.op) {
    case Op::Const: out.assign(1, inst.value); break;
    case Op::Input: out = inputs[inst.index]; break;
    case Op::Param: out.assign(1, params[inst.index]); break;
    case Op::Index:
      out.resize(N);
      for (size_t j = 0; j < N; ++j)
        out[j] = static_cast<double>(j);
      break;
    case Op::BatchSize: out.assign(1, static_cast<double>(N)); break;
    case Op::GradOut: out = gout.empty() ? std::vector<double>(N, 1.0) : gout; break;
    case Op::Sum:
    case Op::Mean:
    case Op::Var:
    case Op::Std:
    case Op::ReduceMin:
    case Op::ReduceMax: {
      const std::vector<double> &x = v[inst.operands[0]];
      double s = 0;
      if (inst.op == Op::ReduceMin || inst.op == Op::ReduceMax) {
        s = x[0];
        for (double e : x) {
          if (std::isnan(e) || std::isnan(s))
            s = NAN;
          else
            s = inst.op == Op::ReduceMin ? std::min(s, e) : std::max(s, e);
        }
      } else {
        for (double e : x)
          s += e;
        double m = s / static_cast<double>(N);
        if (inst.op == Op::Mean) s = m;
        if (inst.op == Op::Var || inst.op == Op::Std) {
          double q = 0;
          for (double e : x)
            q += (e - m) * (e - m);
          s = q / static_cast<double>(N - 1);
          if (inst.op == Op::Std) s = std::sqrt(s);
        }
      }
      out.assign(1, s);
      break;
    }
    case Op::Sort: {
      const std::vector<double> &x = v[inst.operands[0]];
      out.resize(N);
      std::vector<size_t> p = stableArgsort(x);
      for (size_t j = 0; j < N; ++j)
        out[j] = x[p[j]];
      break;
    }
    case Op::Unsort: {
      std::vector<size_t> p = stableArgsort(v[inst.operands[0]]);
      out.resize(N);
      for (size_t j = 0; j < N; ++j)
        out[p[j]] = arg(1, j);
      break;
    }
    default:
      out.resize(len);
      for (size_t j = 0; j < len; ++j) {
        double a = arg(0, j);
        double b = opInfo(inst.op).arity > 1 ? arg(1, j) : 0;
        double c = opInfo(inst.op).arity > 2 ? arg(2, j) : 0;
        out[j] = evalElementwise(inst.op, a, b, c);
      }
    }
  }
  auto expand = [&](ValueId id, size_t len) {
    std::vector<double> r = v[id];
    if (r.size() == 1 && len != 1) r.assign(len, r[0]);
    return r;
  };
  InterpResult r;
  r.loss = expand(k.loss, N);
  r.grads.resize(k.grads.size());
  for (size_t g = 0; g < k.grads.size(); ++g) {
    if (!ir.inputs[g].differentiable) continue;
    size_t len = ir.inputs[g].shape == Shape::Batch ? N : 1;
    r.grads[g] = k.grads[g] == kNoValue ? std::vector<double>(len, 0.0) : expand(k.grads[g], len);
  }
  return r;
}

} // namespace lossc
