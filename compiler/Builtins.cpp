// Builtin table, constants and name suggestions.
#include "Builtins.h"

#include <algorithm>
#include <cmath>

namespace lossc {

namespace {
const std::vector<Builtin> kBuiltins = {
    {"exp", BuiltinKind::Math, 1, 1, Op::Exp, Op::Exp},
    {"log", BuiltinKind::Math, 1, 1, Op::Log, Op::Log},
    {"log1p", BuiltinKind::Math, 1, 1, Op::Log1p, Op::Log1p},
    {"expm1", BuiltinKind::Math, 1, 1, Op::Expm1, Op::Expm1},
    {"sqrt", BuiltinKind::Math, 1, 1, Op::Sqrt, Op::Sqrt},
    {"abs", BuiltinKind::Math, 1, 1, Op::Abs, Op::Abs},
    {"sigmoid", BuiltinKind::Math, 1, 1, Op::Sigmoid, Op::Sigmoid},
    {"logsigmoid", BuiltinKind::Math, 1, 1, Op::LogSigmoid, Op::LogSigmoid},
    {"softplus", BuiltinKind::Math, 1, 1, Op::Softplus, Op::Softplus},
    {"tanh", BuiltinKind::Math, 1, 1, Op::Tanh, Op::Tanh},
    {"relu", BuiltinKind::Math, 1, 1, Op::Relu, Op::Relu},
    {"pow", BuiltinKind::Binary, 2, 2, Op::Pow, Op::Pow},
    {"min", BuiltinKind::MinMax, 1, 2, Op::Min, Op::ReduceMin},
    {"max", BuiltinKind::MinMax, 1, 2, Op::Max, Op::ReduceMax},
    {"clamp", BuiltinKind::Clamp, 3, 3, Op::Min, Op::Max},
    {"where", BuiltinKind::Where, 3, 3, Op::Select, Op::Select},
    {"mean", BuiltinKind::Reduction, 1, 1, Op::Mean, Op::Mean},
    {"sum", BuiltinKind::Reduction, 1, 1, Op::Sum, Op::Sum},
    {"var", BuiltinKind::Reduction, 1, 1, Op::Var, Op::Var},
    {"std", BuiltinKind::Reduction, 1, 1, Op::Std, Op::Std},
    {"sort", BuiltinKind::Sort, 1, 1, Op::Sort, Op::Sort},
    {"stopgrad", BuiltinKind::StopGrad, 1, 1, Op::StopGrad, Op::StopGrad},
    {"index", BuiltinKind::Index, 0, 0, Op::Index, Op::Index},
    {"batch_size", BuiltinKind::BatchSize, 0, 0, Op::BatchSize, Op::BatchSize},
};
} // namespace

const std::vector<Builtin> &builtins() {
  return kBuiltins;
}

const Builtin *findBuiltin(const std::string &name) {
  for (const Builtin &b : kBuiltins)
    if (name == b.name) return &b;
  return nullptr;
}

bool findBuiltinConstant(const std::string &name, double &value) {
  if (name == "inf")
    value = INFINITY;
  else if (name == "pi")
    value = M_PI;
  else
    return false;
  return true;
}

std::vector<std::string> builtinConstantNames() {
  return {"inf", "pi"};
}

size_t editDistance(const std::string &a, const std::string &b, size_t limit) {
  if (a.size() > b.size() + limit || b.size() > a.size() + limit) return limit + 1;
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closestMatch(const std::string &name, const std::vector<std::string> &candidates) {
  size_t limit = std::max<size_t>(1, name.size() / 3);
  std::string best;
  size_t bestDistance = limit + 1;
  for (const std::string &c : candidates) {
    size_t d = editDistance(name, c, limit);
    if (d < bestDistance) bestDistance = d, best = c;
  }
  return best;
}

} // namespace lossc
