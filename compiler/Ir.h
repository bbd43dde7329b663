// The typed IR: a loss as a pure, topologically ordered SSA list of instructions. Each
// instruction is a small plain struct (op, type, up to three operand ids, a constant or an
// index, its source location), stored in one vector; an operand always precedes its user, so
// reverse mode is one backward loop and code generation one forward loop.
#pragma once

#include "lossc/text.h"

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "Source.h"
#include "Types.h"

namespace lossc {

enum class Op : uint8_t {
#define LOSSC_OP(e, name, arity, cls) e,
#include "Ops.def"
  Count
};

// How an op's output depends, for the gradient, on its operands.
enum class DiffClass : uint8_t {
  Leaf,              // no operands
  Smooth,            // differentiable wherever defined
  Kink,              // differentiable almost everywhere (abs, relu, min, max)
  PiecewiseConstant, // zero derivative (comparisons, logic)
  Select,            // derivative to the branches, none to the condition
  Blocked,           // stopgrad: zero derivative by definition
  Permutation,       // sort: the values' derivative follows the permutation
};

struct OpInfo {
  const char *name;
  uint8_t arity;
  DiffClass diffClass;
};
const OpInfo &opInfo(Op op);
constexpr size_t opCount() {
  return static_cast<size_t>(Op::Count);
}

bool isReduction(Op op); // Sum, Mean, Var, Std, ReduceMin, ReduceMax
// Ops whose per-example value depends on other examples or on N.
bool isBatchCoupling(Op op);

// The scalar semantics of an elementwise op (bools as 0/1), in stable forms; the reference for
// constant folding and for tests. Not defined for leaves, reductions and Sort.
double evalElementwise(Op op, double x, double y, double z);

using ValueId = uint32_t;
constexpr ValueId kNoValue = UINT32_MAX;

struct Inst {
  Op op;
  Type type;
  ValueId operands[3] = {kNoValue, kNoValue, kNoValue};
  double value = 0;   // Const
  uint32_t index = 0; // Input, Param
  SourceLoc loc;
};

struct IrInput {
  std::string name;
  Shape shape;
  bool differentiable;
  SourceLoc loc;
};

struct IrParam {
  std::string name;
  double defaultValue;
  double lo, hi; // bounds; infinite when unbounded
  bool loOpen, hiOpen;
  SourceLoc loc;
};

struct LossIr {
  std::string name;
  SourceLoc loc;               // the loss's name in its declaration
  std::vector<IrInput> inputs; // declaration order: the ABI's input order
  std::vector<IrParam> params; // declaration order: the ABI's parameter order
  std::vector<Inst> insts;     // topologically ordered
  ValueId result = kNoValue;   // real[B]
  bool batchCoupled = false;
  int64_t minBatch = 1;
};

// Appends instructions with hash-consing (a structurally equal instruction is reused, which is
// CSE) and folds elementwise ops on constants.
class IrBuilder {
public:
  // Instructions already in `insts` are indexed, so that new ones are merged with them.
  explicit IrBuilder(std::vector<Inst> &insts);

  ValueId constant(double v, SourceLoc loc = {}, Elem elem = Elem::Real);
  ValueId leaf(Op op, Type type, uint32_t index, SourceLoc loc);
  ValueId op(Op op, Type type, SourceLoc loc, ValueId a, ValueId b = kNoValue,
             ValueId c = kNoValue);

  size_t size() const { return insts_.size(); }

  const Inst &operator[](ValueId id) const { return insts_[id]; }

private:
  static std::string key(const Inst &inst);
  ValueId intern(const Inst &inst);
  std::vector<Inst> &insts_;
  std::unordered_map<std::string, ValueId> table_;
};

// Removes instructions the result does not use, keeping the order. Returns the new result id.
ValueId eliminateDeadCode(std::vector<Inst> &insts, ValueId result);
// The same for several roots, renumbered in place (kNoValue roots stay kNoValue).
void eliminateDeadCode(std::vector<Inst> &insts, std::vector<ValueId *> roots);

// `--emit=ir`: a readable listing with types and source positions.
void printIr(const LossIr &ir, const SourceManager &sources, std::string &out);

} // namespace lossc
