// Name resolution, inlining, type and shape checking: AST -> typed IR.
#include "Sema.h"

#include <cmath>
#include <map>
#include <unordered_map>

#include "Builtins.h"

namespace lossc {

namespace {

struct Value {
  ValueId id = kNoValue;
  Type type = Type::error();
  bool ok() const { return !type.isError(); }
};

class Sema {
public:
  Sema(const Program &program, const Limits &limits, DiagEngine &diags)
      : ast_(program.ast), modules_(program.modules), limits_(limits), diags_(diags) {}

  std::optional<LossIr> run();

private:
  // ---- Declarations --------------------------------------------------------------------------
  struct FnInfo {
    const FnDecl *decl;
    bool recursive = false;
    std::vector<size_t> callees;
  };

  const LossDecl *findLoss();
  void collectFunctions();
  void findRecursion();

  // ---- Name resolution: every name and call checked, with or without types ------------------
  struct ScopeEntry {
    std::string name;
    SourceLoc loc;
    enum Kind : uint8_t { Input, Param, Let, FnParam } kind;
    bool used = false;
  };
  struct ResolveScope {
    std::vector<ScopeEntry> entries;
    int fn = -1; // the function being resolved, or -1 for the loss body
    ScopeEntry *find(const std::string &name) {
      for (size_t i = entries.size(); i-- > 0;)
        if (entries[i].name == name) return &entries[i];
      return nullptr;
    }
  };
  void resolveBody(const std::vector<Stmt> &body, ResolveScope &scope, const Ident &owner,
                   const char *ownerKind);
  void resolveExpr(ExprId id, ResolveScope &scope);
  void reportUnknownName(const Expr &e, ResolveScope &scope);
  void reportUnknownFunction(const Expr &e);
  void define(ResolveScope &scope, const Ident &name, ScopeEntry::Kind kind);
  void warnUnused(const ResolveScope &scope, size_t from); // entries from `from` on

  // ---- Constants (parameter defaults and ranges) --------------------------------------------
  std::optional<double> evalConst(ExprId id);
  void lowerParams(const LossDecl &loss, LossIr &ir);

  // ---- Lowering with types --------------------------------------------------------------------
  using Bindings = std::vector<std::pair<std::string, Value>>;
  Value lowerBody(const std::vector<Stmt> &body, Bindings &scope, uint32_t depth);
  Value lowerExpr(ExprId id, Bindings &scope, uint32_t depth);
  Value lowerCall(const Expr &e, Bindings &scope, uint32_t depth);
  Value lowerBuiltin(const Builtin &b, const Expr &e, std::vector<Value> &args);
  Value inlineCall(size_t fn, const Expr &e, const std::vector<Value> &args, uint32_t depth);
  Value emit(Op op, Type type, SourceLoc loc, ValueId a, ValueId b = kNoValue,
             ValueId c = kNoValue);

  bool requireReal(const Value &v, ExprId where, const std::string &context);
  bool requireBool(const Value &v, ExprId where, const std::string &context);
  bool requireBatch(const Value &v, ExprId where, const std::string &context);
  void checkResult(const Value &v, const Stmt &ret, LossIr &ir);

  const AstContext &ast_;
  const std::vector<Module> &modules_;
  const Limits &limits_;
  DiagEngine &diags_;

  std::vector<FnInfo> fns_;
  std::unordered_map<std::string, size_t> fnIndex_;
  std::vector<std::string> lossNames_; // inputs and params: for the help in functions

  std::vector<Inst> insts_;
  IrBuilder builder_{insts_};
  std::map<std::pair<size_t, std::vector<ValueId>>, Value> inlineMemo_;
  size_t inlinedCalls_ = 0;
  bool tooLarge_ = false;
};

// ---- Declarations ------------------------------------------------------------------------------

const LossDecl *Sema::findLoss() {
  const Module &main = modules_[0];
  if (main.losses.empty()) {
    diags_.report(DiagId::E0209, SourceLoc{main.file, 1, 1, 1}, "no loss declaration in this file")
        .help("a loss file declares `loss NAME { ... }`; a file of helper functions is "
              "imported with `import NAME;` from a loss file");
    return nullptr;
  }
  for (size_t i = 1; i < main.losses.size(); ++i)
    diags_
        .report(DiagId::E0209, main.losses[i].name.loc,
                "a second loss '" + main.losses[i].name.name + "' in one file")
        .note("the first is '" + main.losses[0].name.name + "'", main.losses[0].name.loc)
        .help("put each loss in its own .loss file");
  return &main.losses[0];
}

void Sema::collectFunctions() {
  for (const Module &m : modules_) {
    for (const FnDecl &f : m.fns) {
      if (findBuiltin(f.name.name)) {
        diags_
            .report(DiagId::E0204, f.name.loc, "function '" + f.name.name + "' redefines a builtin")
            .help("builtins cannot be replaced; choose another name");
        continue;
      }
      auto [it, inserted] = fnIndex_.emplace(f.name.name, fns_.size());
      if (!inserted) {
        diags_.report(DiagId::E0204, f.name.loc, "function '" + f.name.name + "' is defined twice")
            .note("the first definition is here", fns_[it->second].decl->name.loc);
        continue;
      }
      fns_.push_back({&f});
    }
  }
}

// Functions are inlined, so a call cycle would never end. Iterative DFS over the call graph.
void Sema::findRecursion() {
  enum Color : uint8_t { White, Grey, Black };
  std::vector<Color> color(fns_.size(), White);
  std::vector<size_t> parent(fns_.size(), SIZE_MAX);
  for (size_t root = 0; root < fns_.size(); ++root) {
    if (color[root] != White) continue;
    std::vector<std::pair<size_t, size_t>> stack{{root, 0}}; // (fn, next callee)
    color[root] = Grey;
    while (!stack.empty()) {
      auto &[fn, next] = stack.back();
      if (next == fns_[fn].callees.size()) {
        color[fn] = Black;
        stack.pop_back();
        continue;
      }
      size_t callee = fns_[fn].callees[next++];
      if (color[callee] == Grey) {
        // A back edge: the functions on the stack from callee to fn form the cycle.
        std::string cycle = fns_[callee].decl->name.name;
        bool inCycle = false;
        for (auto &[f, unused] : stack) {
          (void)unused;
          if (f == callee) inCycle = true;
          if (inCycle) {
            fns_[f].recursive = true;
            if (f != callee) cycle += " -> " + fns_[f].decl->name.name;
          }
        }
        cycle += " -> " + fns_[callee].decl->name.name;
        diags_
            .report(DiagId::E0205, fns_[callee].decl->name.loc,
                    "function '" + fns_[callee].decl->name.name + "' is recursive: " + cycle)
            .help("functions are inlined into the loss, so they cannot call themselves; write "
                  "the repetition out");
      } else if (color[callee] == White) {
        color[callee] = Grey;
        stack.push_back({callee, 0});
      }
    }
  }
}

// ---- Name resolution ----------------------------------------------------------------------------

void Sema::define(ResolveScope &scope, const Ident &name, ScopeEntry::Kind kind) {
  if (ScopeEntry *prev = scope.find(name.name)) {
    diags_.report(DiagId::E0204, name.loc, "'" + name.name + "' is already defined")
        .note("the earlier definition is here", prev->loc)
        .help("every name is defined once; choose a new name such as '" + name.name + "2'");
    return;
  }
  scope.entries.push_back({name.name, name.loc, kind});
}

void Sema::warnUnused(const ResolveScope &scope, size_t from) {
  for (size_t i = from; i < scope.entries.size(); ++i) {
    const ScopeEntry &e = scope.entries[i];
    if (e.used || e.kind == ScopeEntry::Input || e.name.rfind('_', 0) == 0) continue;
    const char *what = e.kind == ScopeEntry::Let ? "variable" : "parameter";
    diags_.report(DiagId::W0201, e.loc, std::string(what) + " '" + e.name + "' is never used")
        .help("remove it, or prefix its name with '_' to keep it");
  }
}

void Sema::resolveBody(const std::vector<Stmt> &body, ResolveScope &scope, const Ident &owner,
                       const char *ownerKind) {
  bool returned = false;
  for (const Stmt &s : body) {
    if (returned) {
      diags_.report(DiagId::E0211, s.loc, "code after `return` is never run")
          .help("`return` must be the last statement of the body");
      break;
    }
    resolveExpr(s.value, scope);
    if (s.kind == Stmt::Let)
      define(scope, s.name, ScopeEntry::Let);
    else
      returned = true;
  }
  if (!returned)
    diags_
        .report(DiagId::E0210, owner.loc,
                std::string(ownerKind) + " '" + owner.name + "' does not return a value")
        .help("end the body with `return <expression>;`");
  warnUnused(scope, 0);
}

void Sema::reportUnknownName(const Expr &e, ResolveScope &scope) {
  auto d = diags_.report(DiagId::E0201, e.loc, "unknown name '" + e.name + "'");
  bool isLossName = false;
  for (const std::string &n : lossNames_)
    isLossName |= n == e.name;
  if (scope.fn >= 0 && isLossName) {
    d.help("functions see only their own parameters; pass '" + e.name + "' to '" +
           fns_[scope.fn].decl->name.name + "' as an argument");
    return;
  }
  if (fnIndex_.count(e.name) || findBuiltin(e.name)) {
    d.help("'" + e.name + "' is a function; call it as " + e.name + "(...)");
    return;
  }
  std::vector<std::string> candidates = builtinConstantNames();
  for (const ScopeEntry &s : scope.entries)
    candidates.push_back(s.name);
  std::string best = closestMatch(e.name, candidates);
  if (!best.empty()) d.help("did you mean '" + best + "'?");
}

void Sema::reportUnknownFunction(const Expr &e) {
  auto d = diags_.report(DiagId::E0202, e.loc, "unknown function '" + e.name + "'");
  std::vector<std::string> candidates;
  for (const Builtin &b : builtins())
    candidates.push_back(b.name);
  for (const FnInfo &f : fns_)
    candidates.push_back(f.decl->name.name);
  std::string best = closestMatch(e.name, candidates);
  // Common spellings from numpy/torch.
  static const std::pair<const char *, const char *> aliases[] = {{"log_sigmoid", "logsigmoid"},
                                                                  {"logsig", "logsigmoid"},
                                                                  {"sig", "sigmoid"},
                                                                  {"clip", "clamp"},
                                                                  {"maximum", "max"},
                                                                  {"minimum", "min"},
                                                                  {"average", "mean"},
                                                                  {"variance", "var"},
                                                                  {"square", "pow"},
                                                                  {"detach", "stopgrad"},
                                                                  {"stop_gradient", "stopgrad"},
                                                                  {"fabs", "abs"},
                                                                  {"ln", "log"}};
  for (auto [alias, name] : aliases)
    if (e.name == alias) best = name;
  if (!best.empty()) {
    d.help("did you mean '" + best + "'?");
  } else {
    d.help("the builtins are listed by `lossc reference`; a helper function is declared with "
           "`fn NAME(args) = expression;` or imported with `import MODULE;`");
  }
}

void Sema::resolveExpr(ExprId id, ResolveScope &scope) {
  const Expr &e = ast_[id];
  for (ExprId a : e.args)
    resolveExpr(a, scope);
  if (e.kind == ExprKind::Name) {
    double unused;
    if (ScopeEntry *entry = scope.find(e.name))
      entry->used = true;
    else if (!findBuiltinConstant(e.name, unused))
      reportUnknownName(e, scope);
    return;
  }
  if (e.kind != ExprKind::Call) return;
  size_t n = e.args.size();
  if (const Builtin *b = findBuiltin(e.name)) {
    if (n < b->minArgs || n > b->maxArgs) {
      std::string expected = b->minArgs == b->maxArgs
                                 ? std::to_string(b->minArgs)
                                 : std::to_string(b->minArgs) + " or " + std::to_string(b->maxArgs);
      auto d = diags_.report(DiagId::E0203, e.loc,
                             "'" + e.name + "' takes " + expected + " argument" +
                                 (b->maxArgs == 1 ? "" : "s") + ", but " + std::to_string(n) +
                                 (n == 1 ? " was" : " were") + " given");
      if (b->kind == BuiltinKind::MinMax)
        d.help("min(x) and max(x) reduce over the batch; min(x, y) and max(x, y) are "
               "elementwise; nest them for more: max(a, max(b, c))");
      else if (b->kind == BuiltinKind::Reduction || b->kind == BuiltinKind::Sort)
        d.help("'" + e.name + "' works over the batch dimension and takes one [B] argument");
    }
    return;
  }
  auto it = fnIndex_.find(e.name);
  if (it == fnIndex_.end()) {
    reportUnknownFunction(e);
    return;
  }
  const FnDecl &f = *fns_[it->second].decl;
  if (n != f.params.size())
    diags_
        .report(DiagId::E0203, e.loc,
                "'" + e.name + "' takes " + std::to_string(f.params.size()) + " argument" +
                    (f.params.size() == 1 ? "" : "s") + ", but " + std::to_string(n) +
                    (n == 1 ? " was" : " were") + " given")
        .note("'" + e.name + "' is defined here", f.name.loc);
  if (scope.fn >= 0) fns_[scope.fn].callees.push_back(it->second);
}

// ---- Constants
// ------------------------------------------------------------------------------------

std::optional<double> Sema::evalConst(ExprId id) {
  const Expr &e = ast_[id];
  auto notConstant = [&](const std::string &why) -> std::optional<double> {
    diags_.report(DiagId::E0305, e.span, why)
        .help("defaults and bounds are numbers or arithmetic on numbers, inf and pi");
    return std::nullopt;
  };
  switch (e.kind) {
  case ExprKind::Number: return e.number;
  case ExprKind::Name: {
    double v;
    if (findBuiltinConstant(e.name, v)) return v;
    return notConstant("'" + e.name + "' is not a constant");
  }
  case ExprKind::Neg:
  case ExprKind::Plus: {
    auto x = evalConst(e.args[0]);
    if (!x) return x;
    return e.kind == ExprKind::Neg ? -*x : *x;
  }
  case ExprKind::Binary: {
    Op op;
    switch (e.op) {
    case BinaryOp::Add: op = Op::Add; break;
    case BinaryOp::Sub: op = Op::Sub; break;
    case BinaryOp::Mul: op = Op::Mul; break;
    case BinaryOp::Div: op = Op::Div; break;
    case BinaryOp::Pow: op = Op::Pow; break;
    default: return notConstant("a comparison is not a number");
    }
    auto x = evalConst(e.args[0]);
    auto y = evalConst(e.args[1]);
    if (!x || !y) return std::nullopt;
    return evalElementwise(op, *x, *y, 0);
  }
  case ExprKind::Call: {
    const Builtin *b = findBuiltin(e.name);
    if (!b || (b->kind != BuiltinKind::Math && b->kind != BuiltinKind::Binary) ||
        e.args.size() != b->maxArgs)
      return notConstant("a call of '" + e.name + "' is not a constant");
    double args[2] = {0, 0};
    for (size_t i = 0; i < e.args.size(); ++i) {
      auto v = evalConst(e.args[i]);
      if (!v) return std::nullopt;
      args[i] = *v;
    }
    return evalElementwise(b->op, args[0], args[1], 0);
  }
  default: return notConstant("this expression is not a numeric constant");
  }
}

void Sema::lowerParams(const LossDecl &loss, LossIr &ir) {
  for (const ParamDecl &p : loss.params) {
    IrParam out{p.name.name, 0, -INFINITY, INFINITY, true, true, p.name.loc};
    auto def = evalConst(p.defaultValue);
    bool ok = def.has_value();
    if (def) out.defaultValue = *def;
    if (p.hasRange) {
      auto lo = evalConst(p.lo), hi = evalConst(p.hi);
      ok = ok && lo && hi;
      if (lo && hi) {
        out.lo = *lo, out.hi = *hi, out.loOpen = p.loOpen, out.hiOpen = p.hiOpen;
        bool empty = std::isnan(*lo) || std::isnan(*hi) || *lo > *hi ||
                     (*lo == *hi && (p.loOpen || p.hiOpen));
        if (empty) {
          diags_
              .report(DiagId::E0307, p.rangeLoc,
                      "the range of '" + p.name.name + "' contains no value")
              .help("write the lower bound first: `in (0, inf)`; `(` and `)` exclude a bound, "
                    "`[` and `]` include it");
          ok = false;
        }
      }
    }
    if (def && ok) {
      double v = *def;
      bool inside = std::isfinite(v) && (out.loOpen ? v > out.lo : v >= out.lo) &&
                    (out.hiOpen ? v < out.hi : v <= out.hi);
      if (!inside) {
        std::string range = std::string(out.loOpen ? "(" : "[") + formatShortest(out.lo) + ", " +
                            formatShortest(out.hi) + (out.hiOpen ? ")" : "]");
        auto d = diags_.report(DiagId::E0306, ast_[p.defaultValue].span,
                               "default " + formatShortest(v) + " of '" + p.name.name +
                                   "' is outside its range " + range);
        if (!std::isfinite(v)) d.help("a default must be a finite number");
      }
    }
    ir.params.push_back(out);
  }
}

// ---- Lowering
// --------------------------------------------------------------------------------------

Value Sema::emit(Op op, Type type, SourceLoc loc, ValueId a, ValueId b, ValueId c) {
  if (tooLarge_) return {};
  ValueId id = builder_.op(op, type, loc, a, b, c);
  if (builder_.size() > limits_.maxInstructions) {
    tooLarge_ = true;
    diags_
        .report(DiagId::E0308, loc,
                "the loss grows past " + std::to_string(limits_.maxInstructions) +
                    " operations once its functions are inlined")
        .help("functions are inlined at every call; call heavy helpers less often, or bind "
              "shared results with `let`");
    return {};
  }
  return {id, type};
}

bool Sema::requireReal(const Value &v, ExprId where, const std::string &context) {
  if (v.type.isReal()) return true;
  if (v.type.isBool())
    diags_
        .report(DiagId::E0302, ast_[where].span,
                context + " needs a real number, but this is " + v.type.str())
        .help("turn a condition into a number with where(cond, 1.0, 0.0)");
  return false;
}

bool Sema::requireBool(const Value &v, ExprId where, const std::string &context) {
  if (v.type.isBool()) return true;
  if (v.type.isReal())
    diags_
        .report(DiagId::E0303, ast_[where].span,
                context + " needs a condition (bool), but this is " + v.type.str())
        .help("compare it, for example `x > 0`");
  return false;
}

bool Sema::requireBatch(const Value &v, ExprId where, const std::string &context) {
  if (v.type.isBatch()) return true;
  diags_
      .report(DiagId::E0304, ast_[where].span,
              context + " works over the batch and needs a real[B], but this is " + v.type.str())
      .help("a scalar is already the same for every example; use it directly");
  return false;
}

Value Sema::lowerBody(const std::vector<Stmt> &body, Bindings &scope, uint32_t depth) {
  for (const Stmt &s : body) {
    Value v = lowerExpr(s.value, scope, depth);
    if (s.kind == Stmt::Return) return v;
    scope.push_back({s.name.name, v});
  }
  return {};
}

Value Sema::lowerExpr(ExprId id, Bindings &scope, uint32_t depth) {
  if (tooLarge_) return {};
  const Expr &e = ast_[id];
  switch (e.kind) {
  case ExprKind::Number: return {builder_.constant(e.number, e.loc), Type::real()};
  case ExprKind::Bool:
    return {builder_.constant(e.boolean ? 1 : 0, e.loc, Elem::Bool), Type::boolean()};
  case ExprKind::Name: {
    for (size_t i = scope.size(); i-- > 0;)
      if (scope[i].first == e.name) return scope[i].second;
    double v;
    if (findBuiltinConstant(e.name, v)) return {builder_.constant(v, e.loc), Type::real()};
    return {}; // reported by name resolution
  }
  case ExprKind::Neg:
  case ExprKind::Plus: {
    Value x = lowerExpr(e.args[0], scope, depth);
    if (!requireReal(x, e.args[0],
                     std::string("unary '") + (e.kind == ExprKind::Neg ? "-" : "+") + "'"))
      return {};
    return e.kind == ExprKind::Neg ? emit(Op::Neg, x.type, e.loc, x.id) : x;
  }
  case ExprKind::Not: {
    Value x = lowerExpr(e.args[0], scope, depth);
    if (!requireBool(x, e.args[0], "`not`")) return {};
    return emit(Op::Not, x.type, e.loc, x.id);
  }
  case ExprKind::Binary: {
    Value x = lowerExpr(e.args[0], scope, depth);
    Value y = lowerExpr(e.args[1], scope, depth);
    std::string what = std::string("'") + binaryOpSpelling(e.op) + "'";
    bool logical = e.op == BinaryOp::And || e.op == BinaryOp::Or;
    bool ok = logical ? requireBool(x, e.args[0], what) & requireBool(y, e.args[1], what)
                      : requireReal(x, e.args[0], what) & requireReal(y, e.args[1], what);
    if (!ok) return {};
    Shape shape = joinShapes(x.type.shape, y.type.shape);
    static const Op ops[] = {Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Pow, Op::Lt, Op::Le,
                             Op::Gt,  Op::Ge,  Op::Eq,  Op::Ne,  Op::And, Op::Or};
    Op op = ops[static_cast<size_t>(e.op)];
    bool arithmetic = e.op <= BinaryOp::Pow;
    Type type = arithmetic ? Type::real(shape) : Type::boolean(shape);
    if (op == Op::Sub && x.id == y.id) return {builder_.constant(0, e.loc), Type::real(shape)};
    return emit(op, type, e.loc, x.id, y.id);
  }
  case ExprKind::If: {
    Value c = lowerExpr(e.args[0], scope, depth);
    Value a = lowerExpr(e.args[1], scope, depth);
    Value b = lowerExpr(e.args[2], scope, depth);
    bool ok = requireBool(c, e.args[0], "the condition of `if`");
    if (!a.ok() || !b.ok() || !ok) return {};
    if (a.type.elem != b.type.elem) {
      diags_
          .report(DiagId::E0302, ast_[a.type.isBool() ? e.args[1] : e.args[2]].span,
                  "the branches of `if` have different types: " + a.type.str() + " and " +
                      b.type.str())
          .help("both branches must be real numbers (or both conditions)");
      return {};
    }
    Shape shape = joinShapes(c.type.shape, joinShapes(a.type.shape, b.type.shape));
    return emit(Op::Select, {a.type.elem, shape}, e.loc, c.id, a.id, b.id);
  }
  case ExprKind::Call: return lowerCall(e, scope, depth);
  }
  return {};
}

Value Sema::lowerCall(const Expr &e, Bindings &scope, uint32_t depth) {
  std::vector<Value> args;
  for (ExprId a : e.args)
    args.push_back(lowerExpr(a, scope, depth));
  if (const Builtin *b = findBuiltin(e.name)) {
    if (args.size() < b->minArgs || args.size() > b->maxArgs) return {};
    return lowerBuiltin(*b, e, args);
  }
  auto it = fnIndex_.find(e.name);
  if (it == fnIndex_.end() || fns_[it->second].recursive ||
      fns_[it->second].decl->params.size() != args.size())
    return {};
  return inlineCall(it->second, e, args, depth);
}

Value Sema::lowerBuiltin(const Builtin &b, const Expr &e, std::vector<Value> &args) {
  std::string what = "'" + e.name + "'";
  for (const Value &a : args)
    if (!a.ok()) return {};
  switch (b.kind) {
  case BuiltinKind::Math:
    if (!requireReal(args[0], e.args[0], what)) return {};
    return emit(b.op, args[0].type, e.loc, args[0].id);
  case BuiltinKind::Binary:
  case BuiltinKind::MinMax: {
    if (args.size() == 1) { // min(x), max(x): reductions over the batch
      if (!requireReal(args[0], e.args[0], what) || !requireBatch(args[0], e.args[0], what))
        return {};
      return emit(b.reduceOp, Type::real(), e.loc, args[0].id);
    }
    if (!(requireReal(args[0], e.args[0], what) & requireReal(args[1], e.args[1], what))) return {};
    Shape shape = joinShapes(args[0].type.shape, args[1].type.shape);
    return emit(b.op, Type::real(shape), e.loc, args[0].id, args[1].id);
  }
  case BuiltinKind::Reduction:
    if (!requireReal(args[0], e.args[0], what) || !requireBatch(args[0], e.args[0], what))
      return {};
    return emit(b.op, Type::real(), e.loc, args[0].id);
  case BuiltinKind::Sort:
    if (!requireReal(args[0], e.args[0], what) || !requireBatch(args[0], e.args[0], what))
      return {};
    return emit(Op::Sort, args[0].type, e.loc, args[0].id);
  case BuiltinKind::Where: {
    bool ok = requireBool(args[0], e.args[0], "the condition of 'where'");
    ok &= requireReal(args[1], e.args[1], what) & requireReal(args[2], e.args[2], what);
    if (!ok) return {};
    Shape shape =
        joinShapes(args[0].type.shape, joinShapes(args[1].type.shape, args[2].type.shape));
    return emit(Op::Select, Type::real(shape), e.loc, args[0].id, args[1].id, args[2].id);
  }
  case BuiltinKind::Clamp: {
    bool ok = true;
    for (size_t i = 0; i < 3; ++i)
      ok &= requireReal(args[i], e.args[i], what);
    if (!ok) return {};
    Shape lower = joinShapes(args[0].type.shape, args[1].type.shape);
    Value low = emit(Op::Max, Type::real(lower), e.loc, args[0].id, args[1].id);
    if (!low.ok()) return {};
    return emit(Op::Min, Type::real(joinShapes(lower, args[2].type.shape)), e.loc, low.id,
                args[2].id);
  }
  case BuiltinKind::StopGrad:
    if (!requireReal(args[0], e.args[0], what)) return {};
    return emit(Op::StopGrad, args[0].type, e.loc, args[0].id);
  case BuiltinKind::Index:
    return {builder_.leaf(Op::Index, Type::real(Shape::Batch), 0, e.loc), Type::real(Shape::Batch)};
  case BuiltinKind::BatchSize:
    return {builder_.leaf(Op::BatchSize, Type::real(), 0, e.loc), Type::real()};
  }
  return {};
}

Value Sema::inlineCall(size_t fn, const Expr &e, const std::vector<Value> &args, uint32_t depth) {
  if (depth >= limits_.maxInlineDepth) {
    diags_
        .report(DiagId::E0309, e.loc,
                "function calls nest deeper than " + std::to_string(limits_.maxInlineDepth) +
                    " levels")
        .help("flatten the chain of helper functions");
    tooLarge_ = true;
    return {};
  }
  if (++inlinedCalls_ > 16 * limits_.maxInstructions) {
    diags_.report(DiagId::E0308, e.loc, "too many function calls to inline");
    tooLarge_ = true;
    return {};
  }
  std::vector<ValueId> key;
  for (const Value &a : args)
    key.push_back(a.ok() ? a.id : kNoValue);
  auto memo = inlineMemo_.find({fn, key});
  if (memo != inlineMemo_.end()) return memo->second;
  const FnDecl &decl = *fns_[fn].decl;
  Bindings scope;
  for (size_t i = 0; i < args.size(); ++i)
    scope.push_back({decl.params[i].name, args[i]});
  Value result = lowerBody(decl.body, scope, depth + 1);
  inlineMemo_[{fn, key}] = result;
  return result;
}

void Sema::checkResult(const Value &v, const Stmt &ret, LossIr &ir) {
  if (!v.ok()) return;
  const Expr &e = ast_[ret.value];
  if (v.type.isBool()) {
    diags_
        .report(DiagId::E0302, e.span,
                "the loss returns " + v.type.str() + ", but it must return real[B]")
        .help("turn the condition into a number with where(cond, 1.0, 0.0)");
    return;
  }
  if (!v.type.isBatch()) {
    auto d = diags_.report(DiagId::E0301, e.span,
                           "the loss returns a scalar (real), but it must return one value per "
                           "example (real[B])");
    // Point at the reductions that made it a scalar.
    std::vector<bool> inCone(insts_.size(), false);
    inCone[v.id] = true;
    const Inst *reduction = nullptr;
    bool anyInput = false;
    for (size_t i = v.id + 1; i-- > 0;) {
      if (!inCone[i]) continue;
      const Inst &inst = insts_[i];
      if (isReduction(inst.op) && !reduction) reduction = &inst;
      anyInput |= inst.op == Op::Input;
      for (int k = 0; k < opInfo(inst.op).arity; ++k)
        inCone[inst.operands[k]] = true;
    }
    if (reduction) {
      d.note(std::string("'") +
                 (reduction->op == Op::ReduceMin   ? "min"
                  : reduction->op == Op::ReduceMax ? "max"
                                                   : opInfo(reduction->op).name) +
                 "' reduces the batch to one number here",
             reduction->loc);
      d.help("return the per-example values and leave the averaging to the trainer, which "
             "takes the mean over the batch: `return softplus(-beta * rho);`, not "
             "`return mean(softplus(-beta * rho));`");
    } else if (!anyInput) {
      d.help("the result does not depend on any per-example input; build it from the inputs, "
             "such as policy_chosen_logps");
    }
    return;
  }
  ir.result = v.id;
}

// ---- Driver
// -------------------------------------------------------------------------------------------

std::optional<LossIr> Sema::run() {
  const LossDecl *loss = findLoss();
  collectFunctions();
  if (!loss) return std::nullopt;
  for (const InputDecl &in : loss->inputs)
    lossNames_.push_back(in.name.name);
  for (const ParamDecl &p : loss->params)
    lossNames_.push_back(p.name.name);

  // Name resolution of every function (called or not) and of the loss body.
  for (size_t f = 0; f < fns_.size(); ++f) {
    ResolveScope scope;
    scope.fn = static_cast<int>(f);
    for (const Ident &p : fns_[f].decl->params)
      define(scope, p, ScopeEntry::FnParam);
    resolveBody(fns_[f].decl->body, scope, fns_[f].decl->name, "function");
  }
  findRecursion();

  LossIr ir;
  ir.name = loss->name.name;
  ir.loc = loss->name.loc;
  ResolveScope scope;
  if (loss->inputs.empty())
    diags_.report(DiagId::E0212, loss->name.loc, "loss '" + loss->name.name + "' has no inputs")
        .help("start the body with `inputs pairwise;` for the standard TRL inputs "
              "(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, "
              "reference_rejected_logps)");
  if (loss->inputs.size() > limits_.maxInputs || loss->params.size() > limits_.maxInputs)
    diags_.report(DiagId::E0310, loss->name.loc,
                  "a loss has at most " + std::to_string(limits_.maxInputs) +
                      " inputs and as many parameters");
  for (const InputDecl &in : loss->inputs) {
    define(scope, in.name, ScopeEntry::Input);
    ir.inputs.push_back({in.name.name, in.shape == InputShape::Batch ? Shape::Batch : Shape::Scalar,
                         in.differentiable, in.name.loc});
  }
  for (const ParamDecl &p : loss->params)
    define(scope, p.name, ScopeEntry::Param);
  Ident owner = loss->name;
  resolveBody(loss->body, scope, owner, "loss");
  lowerParams(*loss, ir);

  // Lowering goes on after name errors: an unknown name or a bad call has the error type,
  // which absorbs every use of it silently, so type errors elsewhere are still found once.
  Bindings bindings;
  for (size_t k = 0; k < ir.inputs.size(); ++k) {
    Type t = Type::real(ir.inputs[k].shape);
    bindings.push_back(
        {ir.inputs[k].name,
         {builder_.leaf(Op::Input, t, static_cast<uint32_t>(k), ir.inputs[k].loc), t}});
  }
  for (size_t k = 0; k < ir.params.size(); ++k)
    bindings.push_back(
        {ir.params[k].name,
         {builder_.leaf(Op::Param, Type::real(), static_cast<uint32_t>(k), ir.params[k].loc),
          Type::real()}});
  Value result = lowerBody(loss->body, bindings, 0);
  for (const Stmt &s : loss->body)
    if (s.kind == Stmt::Return) {
      checkResult(result, s, ir);
      break;
    }
  if (diags_.hasErrors()) return std::nullopt;

  ir.result = eliminateDeadCode(insts_, ir.result);
  ir.insts = std::move(insts_);
  // A scalar input is shared by every example (and a diff one's gradient sums over the batch):
  // the kernel must see the whole batch, as abi.h defines batch_coupled.
  for (const IrInput &in : ir.inputs)
    ir.batchCoupled |= in.shape == Shape::Scalar;
  for (const Inst &inst : ir.insts) {
    ir.batchCoupled |= isBatchCoupling(inst.op);
    if (inst.op == Op::Var || inst.op == Op::Std) ir.minBatch = 2;
  }
  return ir;
}

} // namespace

std::optional<LossIr> analyze(const Program &program, const Limits &limits, DiagEngine &diags) {
  return Sema(program, limits, diags).run();
}

} // namespace lossc
