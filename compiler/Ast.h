// The AST: what the parser (Parse.cpp) produces from the ANTLR tree and what Sema consumes.
// Expressions live in one arena (AstContext) and refer to each other by 32-bit ids; every node
// carries its source location. Declarations are plain structs owned by their Module.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "Source.h"

namespace lossc {

using ExprId = uint32_t;
constexpr ExprId kNoExpr = UINT32_MAX;

enum class ExprKind : uint8_t {
  Number, // number
  Bool,   // boolean
  Name,   // name
  Call,   // name(args...)
  Neg,    // -args[0]
  Plus,   // +args[0]
  Not,    // not args[0]
  Binary, // args[0] op args[1]
  If,     // if args[0] then args[1] else args[2]
};

enum class BinaryOp : uint8_t { Add, Sub, Mul, Div, Pow, Lt, Le, Gt, Ge, Eq, Ne, And, Or };
const char *binaryOpSpelling(BinaryOp op);

struct Expr {
  ExprKind kind;
  BinaryOp op = BinaryOp::Add; // Binary only
  bool boolean = false;        // Bool only
  double number = 0;           // Number only
  SourceLoc loc;               // the head: the operator, the callee, the literal
  SourceLoc span;              // the whole expression (clipped to its first line)
  std::string name;            // Name, Call (the callee)
  std::vector<ExprId> args;
};

struct AstContext {
  std::vector<Expr> exprs;
  ExprId add(Expr e) {
    exprs.push_back(std::move(e));
    return static_cast<ExprId>(exprs.size() - 1);
  }
  const Expr &operator[](ExprId id) const { return exprs[id]; }
};

struct Ident {
  std::string name;
  SourceLoc loc;
};

struct Stmt {
  enum Kind : uint8_t { Let, Return } kind;
  SourceLoc loc; // the keyword
  Ident name;    // Let only
  ExprId value = kNoExpr;
};

struct FnDecl {
  Ident name;
  std::vector<Ident> params;
  std::vector<Stmt> body; // `fn f(x) = e;` is stored as { return e; }
  uint32_t module = 0;
};

enum class InputShape : uint8_t { Scalar, Batch };

struct InputDecl {
  Ident name;
  InputShape shape = InputShape::Batch;
  bool differentiable = false;
  SourceLoc presetLoc; // valid when the input came from an `inputs` preset
};

struct ParamDecl {
  Ident name;
  ExprId defaultValue = kNoExpr;
  bool hasRange = false;
  ExprId lo = kNoExpr, hi = kNoExpr;
  bool loOpen = false, hiOpen = false;
  SourceLoc rangeLoc;
};

struct LossDecl {
  Ident name;
  std::vector<InputDecl> inputs; // presets expanded in place, declaration order
  std::vector<ParamDecl> params;
  std::vector<Stmt> body;
};

struct ImportDecl {
  Ident name;
};

struct Module {
  uint32_t file = 0;
  std::string path;
  std::vector<ImportDecl> imports;
  std::vector<FnDecl> fns;
  std::vector<LossDecl> losses; // a loss file has exactly one; a module none
};

// The input presets of the language (`inputs pairwise;`).
struct PresetInput {
  const char *name;
  InputShape shape;
  bool differentiable;
};
const std::vector<PresetInput> *findPreset(const std::string &name);
std::vector<std::string> presetNames();

// An S-expression dump of a module for `--emit=ast`.
void printAst(const AstContext &ctx, const Module &m, const SourceManager &sources,
              std::string &out);

} // namespace lossc
