// LLVM code generation for kernels: the ABI entry points, the batch loops, the metadata.
#include "Codegen.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>

#include "Simplify.h"
#include "Version.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Analysis/TargetLibraryInfo.h"
#include "llvm/Analysis/ValueTracking.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/InlineAsm.h"
#include "llvm/IR/IntrinsicInst.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"

namespace lossc {

using namespace llvm;

std::unique_ptr<TargetMachine> createHostTargetMachine(std::string &error) {
  static bool initialised = [] {
    InitializeNativeTarget();
    InitializeNativeTargetAsmPrinter();
    return true;
  }();
  (void)initialised;
  std::string triple = sys::getProcessTriple();
  const Target *target = TargetRegistry::lookupTarget(triple, error);
  if (!target) return nullptr;
  SubtargetFeatures features;
  for (const auto &[name, enabled] : sys::getHostCPUFeatures())
    features.AddFeature(name, enabled);
  TargetOptions options;
  return std::unique_ptr<TargetMachine>(
      target->createTargetMachine(triple, sys::getHostCPUName(), features.getString(), options,
                                  Reloc::PIC_, CodeModel::Small, CodeGenOptLevel::Aggressive));
}

namespace {

// Status codes of abi.h.
constexpr int kStatusOk = 0, kStatusBatch = 1, kStatusParam = 2, kStatusNull = 3, kStatusMemory = 4;

// Which loop over the batch a value becomes available in: leaves are at level 0, a reduction
// one level above its operand, anything else at its operands' highest level.
std::vector<int> computeLevels(const Kernel &k) {
  std::vector<int> level(k.insts.size(), 0);
  for (size_t i = 0; i < k.insts.size(); ++i) {
    const Inst &inst = k.insts[i];
    int l = 0;
    for (int a = 0; a < opInfo(inst.op).arity; ++a)
      l = std::max(l, level[inst.operands[a]]);
    level[i] = isReduction(inst.op) ? l + 1 : l;
  }
  return level;
}

class ModuleEmitter {
public:
  ModuleEmitter(LLVMContext &ctx, Module &m, const LossIr &ir, DiagEngine &diags)
      : ctx_(ctx), m_(m), ir_(ir), diags_(diags), b_(ctx) {}

  bool emitAll(const KernelPair &kernels, const ModuleInfo &info);

private:
  struct Entry {
    const Kernel *kernel;
    bool f64;
    bool withGradient;
    const char *name;
  };

  // Per-element evaluation inside a loop body.
  struct LoopCtx {
    Value *i = nullptr;             // i64 index
    std::vector<Value *> inputPtrs; // per input (null for scalar inputs)
    Value *goutPtr = nullptr;       // gout, or null when gout is all ones
    Value *goutIndex = nullptr;     // the index to read gout at
    std::vector<Value *> perm;      // per sort slot: i64 p, sorted position -> example
    std::vector<Value *> permInv;   // per sort slot: i64 p^-1, example -> sorted position
    std::vector<Value *> sorted;    // per sort slot: the operand's values in sorted order
    std::vector<Value *> cache;     // per instruction
  };

  // The same loop state at another example index (a gather through a permutation).
  LoopCtx at(const LoopCtx &c, Value *j) {
    LoopCtx d = c;
    d.i = j;
    d.goutIndex = j;
    d.cache.assign(k_->insts.size(), nullptr);
    return d;
  }

  llvm::Type *realTy() { return f64_ ? b_.getDoubleTy() : b_.getFloatTy(); }
  Value *realConst(double v) { return ConstantFP::get(realTy(), v); }

  // What the part of an entry after the argument checks works on.
  struct Body {
    Function *f;
    Value *n;
    std::vector<Value *> inputPtrs;
    Value *gout; // null: all ones
    Value *out;
    std::vector<Value *> gradPtrs;
    int finalLevel;
  };

  bool emitEntry(const Entry &e);
  void emitBody(const Entry &e, const Body &body);
  Value *emitOp(const Inst &inst, Value *x, Value *y, Value *z);
  Value *callMath(const char *f32, const char *f64, Value *x);
  struct LogisticTerms {
    Value *e = nullptr;        // exp(-|x|)
    Value *log1pE = nullptr;   // log1p(exp(-|x|))
    Value *recip1pE = nullptr; // 1 / (1 + exp(-|x|)), made by the first sigmoid
  };
  LogisticTerms &logisticTerms(Value *x);
  // e^x and ln(1 + x): in f64 libm's (vectorized through libmvec); in f32 inline polynomial
  // forms that the loop vectorizer widens to the machine's full vector width.
  Value *emitExp(Value *x);
  Value *emitLog1p(Value *x);
  Value *elem(ValueId id, LoopCtx &c);
  Value *loadInput(Value *ptr, Value *i) {
    return b_.CreateLoad(realTy(), b_.CreateInBoundsGEP(realTy(), ptr, i));
  }
  Function *emitFinalLoop(const Entry &e, bool guarded, bool goutNull,
                          const std::vector<ValueId> &scalarArgs);
  void emitMeta(const ModuleInfo &info);
  // Sorting: the kernel's sort slots (one per distinct sorted operand), the scratch buffer,
  // the key loop and the stable argsort of one slot.
  void collectSortSlots();
  bool allocateScratch(Function *f, Value *n);
  void emitReturn(int status);
  Value *emitMalloc(Function *f, Value *n, uint64_t bytesPerExample, const char *name);
  void emitFree(Value *p);
  void emitSortsAt(int level, const LoopCtx &proto, Value *n);
  Function *argsortFunction();
  void emitStatusMessage();

  LLVMContext &ctx_;
  Module &m_;
  const LossIr &ir_;
  DiagEngine &diags_;
  IRBuilder<> b_;

  // State of the entry being emitted.
  bool f64_ = false;
  const Kernel *k_ = nullptr;
  std::vector<int> level_;
  std::vector<Value *> scalar_; // values of scalar instructions, once computed
  // Shared logistic terms by the (sign-stripped) value they are of. Keys are SSA values, so an
  // entry is only ever found from code its value dominates: each loop body and the scalar code
  // compute their own.
  std::map<Value *, LogisticTerms> logistic_;
  std::vector<ValueId> sortSlots_; // the operands x of Sort(x) / Unsort(x, g)
  Value *scratch_ = nullptr;       // malloc'd in the entry when there are sort slots
  Value *keysA_ = nullptr, *keysB_ = nullptr;
  std::vector<Value *> perm_, permInv_, sorted_;
  Function *argsort_[2] = {nullptr, nullptr}; // f32, f64
  size_t slotOf(ValueId x) const {
    return std::find(sortSlots_.begin(), sortSlots_.end(), x) - sortSlots_.begin();
  }
};

Value *ModuleEmitter::callMath(const char *f32, const char *f64, Value *x) {
  FunctionType *ft = FunctionType::get(realTy(), {realTy()}, false);
  FunctionCallee callee = m_.getOrInsertFunction(f64_ ? f64 : f32, ft);
  if (auto *f = dyn_cast<Function>(callee.getCallee())) {
    f->setDoesNotThrow();
    f->setDoesNotAccessMemory();
    f->setWillReturn();
  }
  CallInst *call = b_.CreateCall(callee, {x});
  call->setDoesNotAccessMemory();
  call->setDoesNotThrow();
  return call;
}

// f32 e^x (Cephes expf): k = rint(x log2 e), r = x - k ln 2 (Cody-Waite, two parts),
// e^r = 1 + r + r^2 P(r) with a degree-5 P, times 2^k applied as two factors 2^(k/2) so that
// results down to the subnormals round once and overflow gives +inf. x is clamped to
// [-104, 89] first (beyond, the result is 0 or +inf anyway); NaN passes through. Measured
// against libm in tests/unit/BackendTest.cpp: at most 2 ulp.
Value *ModuleEmitter::emitExp(Value *x) {
  if (f64_) return b_.CreateUnaryIntrinsic(Intrinsic::exp, x);
  auto c = [&](float v) { return ConstantFP::get(b_.getFloatTy(), v); };
  auto fma = [&](Value *a, Value *m, Value *add) {
    return b_.CreateIntrinsic(Intrinsic::fma, {b_.getFloatTy()}, {a, m, add});
  };
  Value *xc = b_.CreateBinaryIntrinsic(
      Intrinsic::minnum, b_.CreateBinaryIntrinsic(Intrinsic::maxnum, x, c(-104.0f)), c(89.0f));
  Value *k = b_.CreateUnaryIntrinsic(Intrinsic::rint, b_.CreateFMul(xc, c(1.44269504088896341f)));
  Value *r = fma(b_.CreateFNeg(k), c(0.693359375f), xc);
  r = fma(b_.CreateFNeg(k), c(-2.12194440e-4f), r);
  Value *p = c(1.9875691500e-4f);
  for (float coeff :
       {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f})
    p = fma(p, r, c(coeff));
  Value *y = fma(b_.CreateFMul(p, r), r, b_.CreateFAdd(r, c(1.0f)));
  Value *ki = b_.CreateFPToSI(k, b_.getInt32Ty());
  Value *k1 = b_.CreateAShr(ki, 1), *k2 = b_.CreateSub(ki, k1);
  auto pow2 = [&](Value *e) {
    return b_.CreateBitCast(b_.CreateShl(b_.CreateAdd(e, b_.getInt32(127)), 23), b_.getFloatTy());
  };
  Value *scaled = b_.CreateFMul(b_.CreateFMul(y, pow2(k1)), pow2(k2));
  return b_.CreateSelect(b_.CreateFCmpUNO(x, x), x, scaled);
}

// f32 ln(1 + x) (fdlibm log1pf/logf): u = 1 + x rounded, c = (x - (u - 1)) / u the rounding's
// correction; u = 2^k m with m in [sqrt(1/2), sqrt(2)), ln m = f - (f^2/2 - s (f^2/2 + R(s^2)))
// with f = m - 1, s = f / (2 + f); result k ln 2 + ln m + c. Special values: -1 gives -inf,
// below -1 NaN, +inf +inf, NaN NaN. Measured against libm: at most 2 ulp.
Value *ModuleEmitter::emitLog1p(Value *x) {
  if (f64_) return callMath("log1pf", "log1p", x);
  llvm::Type *fl = b_.getFloatTy(), *i32 = b_.getInt32Ty();
  auto c = [&](float v) { return ConstantFP::get(fl, v); };
  auto fma = [&](Value *a, Value *m, Value *add) {
    return b_.CreateIntrinsic(Intrinsic::fma, {fl}, {a, m, add});
  };
  Value *u = b_.CreateFAdd(x, c(1.0f));
  Value *corr = b_.CreateFDiv(b_.CreateFSub(x, b_.CreateFSub(u, c(1.0f))), u);
  Value *ix = b_.CreateSub(b_.CreateBitCast(u, i32), b_.getInt32(0x3f3504f3));
  Value *k = b_.CreateSIToFP(b_.CreateAShr(ix, 23), fl);
  Value *m = b_.CreateBitCast(
      b_.CreateAdd(b_.CreateAnd(ix, b_.getInt32(0x007fffff)), b_.getInt32(0x3f3504f3)), fl);
  Value *f = b_.CreateFSub(m, c(1.0f));
  Value *s = b_.CreateFDiv(f, b_.CreateFAdd(f, c(2.0f)));
  Value *z = b_.CreateFMul(s, s), *w = b_.CreateFMul(z, z);
  Value *t1 = b_.CreateFMul(w, fma(w, c(0.24279078841f), c(0.40000972152f)));
  Value *t2 = b_.CreateFMul(z, fma(w, c(0.28498786688f), c(0.66666662693f)));
  Value *hfsq = b_.CreateFMul(c(0.5f), b_.CreateFMul(f, f));
  Value *lnM = b_.CreateFSub(
      f, b_.CreateFSub(hfsq, b_.CreateFMul(s, b_.CreateFAdd(hfsq, b_.CreateFAdd(t1, t2)))));
  Value *low = fma(k, c(9.0580006145e-06f), corr);
  Value *result = fma(k, c(6.9313812256e-01f), b_.CreateFAdd(lnM, low));
  // u = 0: -inf; u < 0: NaN; u = +inf: +inf; NaN: NaN.
  Value *inf = c(INFINITY);
  result = b_.CreateSelect(b_.CreateFCmpOEQ(u, inf), inf, result);
  result = b_.CreateSelect(b_.CreateFCmpOEQ(u, c(0.0f)), c(-INFINITY), result);
  result = b_.CreateSelect(b_.CreateFCmpULT(u, c(0.0f)), c(NAN), result);
  return result;
}

// exp(-|x|) and log1p(exp(-|x|)) of a value, computed once per loop body for x and -x alike:
// softplus, logsigmoid and sigmoid of the same margin (a loss and its derivative) share them.
ModuleEmitter::LogisticTerms &ModuleEmitter::logisticTerms(Value *x) {
  Value *base = x;
  if (auto *neg = dyn_cast<UnaryOperator>(x); neg && neg->getOpcode() == Instruction::FNeg)
    base = neg->getOperand(0);
  auto it = logistic_.find(base);
  if (it != logistic_.end()) return it->second;
  LogisticTerms t;
  Value *absX = b_.CreateUnaryIntrinsic(Intrinsic::fabs, base);
  t.e = emitExp(b_.CreateFNeg(absX));
  t.log1pE = emitLog1p(t.e);
  return logistic_[base] = t;
}

// One op on scalar LLVM values (the same code serves per-example values in loops and
// batch-wide scalars). Stable forms: softplus(x) = max(x, 0) + log1p(e^-|x|), logsigmoid(x) =
// min(x, 0) - log1p(e^-|x|), sigmoid(x) = (x >= 0 ? 1 : e^-|x|) / (1 + e^-|x|).
Value *ModuleEmitter::emitOp(const Inst &inst, Value *x, Value *y, Value *z) {
  auto unary = [&](Intrinsic::ID id, Value *a) { return b_.CreateUnaryIntrinsic(id, a); };
  auto binary = [&](Intrinsic::ID id, Value *a, Value *c) {
    return b_.CreateBinaryIntrinsic(id, a, c);
  };
  auto tail = [&](Value *a) { return logisticTerms(a).log1pE; };
  switch (inst.op) {
  case Op::Neg: return b_.CreateFNeg(x);
  case Op::Add: return b_.CreateFAdd(x, y);
  case Op::Sub: return b_.CreateFSub(x, y);
  case Op::Mul: return b_.CreateFMul(x, y);
  case Op::Div:
    // x / s for a batch-wide s: x * (1 / s), whose reciprocal the loop's invariant code motion
    // hoists (one division per batch, not per example; at most 1 ulp from x / s)
    if (inst.type.isBatch() && !k_->insts[inst.operands[1]].type.isBatch())
      return b_.CreateFMul(x, b_.CreateFDiv(realConst(1), y));
    return b_.CreateFDiv(x, y);
  case Op::Pow: return binary(Intrinsic::pow, x, y);
  case Op::Exp: return emitExp(x);
  case Op::Log: return unary(Intrinsic::log, x);
  case Op::Log1p: return emitLog1p(x);
  case Op::Expm1: return callMath("expm1f", "expm1", x);
  case Op::Sqrt: return unary(Intrinsic::sqrt, x);
  case Op::Tanh: return callMath("tanhf", "tanh", x);
  case Op::Sigmoid: {
    // 1 / (1 + e) for x >= 0, e / (1 + e) below, e = exp(-|x|): exact limits at both ends
    LogisticTerms &t = logisticTerms(x);
    if (!t.recip1pE) t.recip1pE = b_.CreateFDiv(realConst(1), b_.CreateFAdd(realConst(1), t.e));
    Value *num = b_.CreateSelect(b_.CreateFCmpOGE(x, realConst(0)), realConst(1), t.e);
    return b_.CreateFMul(num, t.recip1pE);
  }
  case Op::LogSigmoid: return b_.CreateFSub(binary(Intrinsic::minnum, x, realConst(0)), tail(x));
  case Op::Softplus: return b_.CreateFAdd(binary(Intrinsic::maxnum, x, realConst(0)), tail(x));
  case Op::Abs: return unary(Intrinsic::fabs, x);
  case Op::Relu: return b_.CreateSelect(b_.CreateFCmpOLT(x, realConst(0)), realConst(0), x);
  case Op::Min: return binary(Intrinsic::minimum, x, y);
  case Op::Max: return binary(Intrinsic::maximum, x, y);
  case Op::Lt: return b_.CreateFCmpOLT(x, y);
  case Op::Le: return b_.CreateFCmpOLE(x, y);
  case Op::Gt: return b_.CreateFCmpOGT(x, y);
  case Op::Ge: return b_.CreateFCmpOGE(x, y);
  case Op::Eq: return b_.CreateFCmpOEQ(x, y);
  case Op::Ne: return b_.CreateFCmpUNE(x, y);
  case Op::And: return b_.CreateAnd(x, y);
  case Op::Or: return b_.CreateOr(x, y);
  case Op::Not: return b_.CreateNot(x);
  case Op::Select: return b_.CreateSelect(x, y, z);
  case Op::StopGrad: return x;
  default: return nullptr;
  }
}

// The value of instruction `id` for the example of the loop's index.
Value *ModuleEmitter::elem(ValueId id, LoopCtx &c) {
  const Inst &inst = k_->insts[id];
  if (!inst.type.isBatch()) return scalar_[id];
  if (c.cache[id]) return c.cache[id];
  Value *v = nullptr;
  switch (inst.op) {
  case Op::Input: v = loadInput(c.inputPtrs[inst.index], c.i); break;
  case Op::Index: v = b_.CreateUIToFP(c.i, realTy()); break;
  case Op::GradOut: v = c.goutPtr ? loadInput(c.goutPtr, c.goutIndex) : realConst(1); break;
  // sort(x)_i = x_p(i), read from the slot's sorted values;  unsort(x, g)_j = g_p^-1(j), g
  // evaluated at the permuted index  (p: the stable argsort of x)
  case Op::Sort: v = loadInput(c.sorted[slotOf(inst.operands[0])], c.i); break;
  case Op::Unsort: {
    Value *table = c.permInv[slotOf(inst.operands[0])];
    Value *j = b_.CreateLoad(b_.getInt64Ty(), b_.CreateInBoundsGEP(b_.getInt64Ty(), table, c.i));
    LoopCtx there = at(c, j);
    v = elem(inst.operands[1], there);
    break;
  }
  default: {
    Value *ops[3] = {nullptr, nullptr, nullptr};
    for (int a = 0; a < opInfo(inst.op).arity; ++a)
      ops[a] = elem(inst.operands[a], c);
    v = emitOp(inst, ops[0], ops[1], ops[2]);
  }
  }
  c.cache[id] = v;
  return v;
}

// The final loop, as a function of its own whose pointer parameters are noalias (the ABI says
// outputs do not overlap inputs), so that the loop vectorizer needs no runtime alias checks.
// `guarded`: outputs may be NULL and are stored only when present. `goutNull`: gout is all ones.
Function *ModuleEmitter::emitFinalLoop(const Entry &e, bool guarded, bool goutNull,
                                       const std::vector<ValueId> &scalarArgs) {
  std::vector<llvm::Type *> params{b_.getInt64Ty()};
  size_t nIn = ir_.inputs.size();
  for (size_t k = 0; k < nIn; ++k)
    params.push_back(b_.getPtrTy()); // inputs
  params.push_back(b_.getPtrTy());   // gout
  for (size_t s = 0; s < 3 * sortSlots_.size(); ++s)
    params.push_back(b_.getPtrTy()); // perm, permInv, sorted
  for (ValueId s : scalarArgs)
    params.push_back(k_->insts[s].type.isBool() ? b_.getInt1Ty() : realTy());
  params.push_back(b_.getPtrTy()); // out
  for (size_t k = 0; k < nIn; ++k)
    params.push_back(b_.getPtrTy()); // grads
  FunctionType *ft = FunctionType::get(b_.getVoidTy(), params, false);
  std::string name =
      std::string(e.name) + (guarded ? ".guarded" : ".all") + (goutNull ? ".ones" : "");
  Function *f = Function::Create(ft, GlobalValue::InternalLinkage, name + ".final", m_);
  for (unsigned a = 1; a < f->arg_size(); ++a)
    if (f->getArg(a)->getType()->isPointerTy()) f->addParamAttr(a, Attribute::NoAlias);

  IRBuilderBase::InsertPointGuard guard(b_);
  BasicBlock *entry = BasicBlock::Create(ctx_, "entry", f);
  BasicBlock *loop = BasicBlock::Create(ctx_, "loop", f);
  BasicBlock *exit = BasicBlock::Create(ctx_, "exit", f);
  b_.SetInsertPoint(entry);
  b_.CreateBr(loop);
  b_.SetInsertPoint(loop);
  PHINode *i = b_.CreatePHI(b_.getInt64Ty(), 2, "i");
  i->addIncoming(b_.getInt64(0), entry);

  LoopCtx c;
  c.i = i;
  c.cache.assign(k_->insts.size(), nullptr);
  logistic_.clear();
  unsigned a = 1;
  for (size_t k = 0; k < nIn; ++k, ++a)
    c.inputPtrs.push_back(ir_.inputs[k].shape == Shape::Batch ? f->getArg(a) : nullptr);
  c.goutPtr = goutNull ? nullptr : f->getArg(a);
  c.goutIndex = i;
  ++a;
  for (size_t s = 0; s < sortSlots_.size(); ++s) {
    c.perm.push_back(f->getArg(a++));
    c.permInv.push_back(f->getArg(a++));
    c.sorted.push_back(f->getArg(a++));
  }
  std::vector<Value *> saved = scalar_;
  for (ValueId s : scalarArgs)
    scalar_[s] = f->getArg(a++);
  Value *out = f->getArg(a++);
  std::vector<Value *> gradPtrs;
  for (size_t k = 0; k < nIn; ++k)
    gradPtrs.push_back(f->getArg(a++));

  auto store = [&](Value *value, Value *ptr) {
    Value *slot = b_.CreateInBoundsGEP(realTy(), ptr, i);
    if (!guarded) {
      b_.CreateStore(value, slot);
      return;
    }
    BasicBlock *yes = BasicBlock::Create(ctx_, "store", f);
    BasicBlock *next = BasicBlock::Create(ctx_, "next", f);
    b_.CreateCondBr(b_.CreateIsNotNull(ptr), yes, next);
    b_.SetInsertPoint(yes);
    b_.CreateStore(value, slot);
    b_.CreateBr(next);
    b_.SetInsertPoint(next);
  };
  store(elem(k_->loss, c), out);
  if (e.withGradient)
    for (size_t k = 0; k < nIn; ++k) {
      if (!ir_.inputs[k].differentiable || ir_.inputs[k].shape != Shape::Batch) continue;
      ValueId g = k_->grads[k];
      store(g == kNoValue ? realConst(0) : elem(g, c), gradPtrs[k]);
    }
  Value *next = b_.CreateAdd(i, b_.getInt64(1), "i.next", true, true);
  i->addIncoming(next, b_.GetInsertBlock());
  b_.CreateCondBr(b_.CreateICmpSLT(next, f->getArg(0)), loop, exit);
  b_.SetInsertPoint(exit);
  b_.CreateRetVoid();
  scalar_ = saved;
  logistic_.clear();
  return f;
}

bool ModuleEmitter::emitEntry(const Entry &e) {
  f64_ = e.f64;
  k_ = e.kernel;
  level_ = computeLevels(*k_);
  scalar_.assign(k_->insts.size(), nullptr);
  size_t nIn = ir_.inputs.size(), nParams = ir_.params.size();
  llvm::Type *i64 = b_.getInt64Ty(), *ptr = b_.getPtrTy(), *i32 = b_.getInt32Ty();

  std::vector<llvm::Type *> params{i64, ptr, ptr};
  if (e.withGradient) params.push_back(ptr); // gout
  params.push_back(ptr);                     // out
  if (e.withGradient) params.push_back(ptr); // grads
  Function *f = Function::Create(FunctionType::get(i32, params, false),
                                 GlobalValue::ExternalLinkage, e.name, m_);
  Value *n = f->getArg(0), *inputs = f->getArg(1), *paramsArg = f->getArg(2);
  Value *gout = e.withGradient ? f->getArg(3) : nullptr;
  Value *out = f->getArg(e.withGradient ? 4 : 3);
  Value *grads = e.withGradient ? f->getArg(5) : nullptr;

  BasicBlock *entry = BasicBlock::Create(ctx_, "entry", f);
  b_.SetInsertPoint(entry);
  auto failIf = [&](Value *cond, int status) {
    BasicBlock *fail = BasicBlock::Create(ctx_, "fail", f);
    BasicBlock *ok = BasicBlock::Create(ctx_, "ok", f);
    b_.CreateCondBr(cond, fail, ok);
    b_.SetInsertPoint(fail);
    b_.CreateRet(b_.getInt32(status));
    b_.SetInsertPoint(ok);
  };

  // Argument checks.
  failIf(b_.CreateICmpSLT(n, b_.getInt64(ir_.minBatch)), kStatusBatch);
  failIf(b_.CreateIsNull(inputs), kStatusNull);
  if (!e.withGradient) failIf(b_.CreateIsNull(out), kStatusNull);
  std::vector<Value *> inputPtrs;
  for (size_t k = 0; k < nIn; ++k) {
    Value *p = b_.CreateLoad(ptr, b_.CreateConstInBoundsGEP1_64(ptr, inputs, k));
    failIf(b_.CreateIsNull(p), kStatusNull);
    inputPtrs.push_back(p);
  }
  // Parameters: the given values or the defaults, then their ranges (NaN fails every test).
  std::vector<Value *> paramValues(nParams);
  if (nParams) {
    BasicBlock *given = BasicBlock::Create(ctx_, "params.given", f);
    BasicBlock *join = BasicBlock::Create(ctx_, "params", f);
    BasicBlock *from = b_.GetInsertBlock();
    b_.CreateCondBr(b_.CreateIsNull(paramsArg), join, given);
    b_.SetInsertPoint(given);
    std::vector<Value *> loaded;
    for (size_t k = 0; k < nParams; ++k)
      loaded.push_back(b_.CreateLoad(
          b_.getDoubleTy(), b_.CreateConstInBoundsGEP1_64(b_.getDoubleTy(), paramsArg, k)));
    b_.CreateBr(join);
    b_.SetInsertPoint(join);
    for (size_t k = 0; k < nParams; ++k) {
      PHINode *phi = b_.CreatePHI(b_.getDoubleTy(), 2, ir_.params[k].name);
      phi->addIncoming(ConstantFP::get(b_.getDoubleTy(), ir_.params[k].defaultValue), from);
      phi->addIncoming(loaded[k], given);
      paramValues[k] = phi;
    }
    for (size_t k = 0; k < nParams; ++k) {
      const IrParam &p = ir_.params[k];
      Value *v = paramValues[k];
      Value *lo = ConstantFP::get(b_.getDoubleTy(), p.lo),
            *hi = ConstantFP::get(b_.getDoubleTy(), p.hi);
      Value *okLo = p.loOpen ? b_.CreateFCmpOGT(v, lo) : b_.CreateFCmpOGE(v, lo);
      Value *okHi = p.hiOpen ? b_.CreateFCmpOLT(v, hi) : b_.CreateFCmpOLE(v, hi);
      // A parameter must be a number even where the range is unbounded.
      Value *isNum = b_.CreateFCmpORD(v, v);
      failIf(b_.CreateNot(b_.CreateAnd(isNum, b_.CreateAnd(okLo, okHi))), kStatusParam);
    }
  }
  std::vector<Value *> gradPtrs(nIn, ConstantPointerNull::get(b_.getPtrTy()));
  if (e.withGradient) {
    BasicBlock *given = BasicBlock::Create(ctx_, "grads.given", f);
    BasicBlock *join = BasicBlock::Create(ctx_, "grads", f);
    BasicBlock *from = b_.GetInsertBlock();
    b_.CreateCondBr(b_.CreateIsNull(grads), join, given);
    b_.SetInsertPoint(given);
    std::vector<Value *> loaded(nIn);
    for (size_t k = 0; k < nIn; ++k)
      if (ir_.inputs[k].differentiable)
        loaded[k] = b_.CreateLoad(ptr, b_.CreateConstInBoundsGEP1_64(ptr, grads, k));
    b_.CreateBr(join);
    b_.SetInsertPoint(join);
    for (size_t k = 0; k < nIn; ++k) {
      if (!ir_.inputs[k].differentiable) continue;
      PHINode *phi = b_.CreatePHI(ptr, 2);
      phi->addIncoming(ConstantPointerNull::get(b_.getPtrTy()), from);
      phi->addIncoming(loaded[k], given);
      gradPtrs[k] = phi;
    }
  }

  collectSortSlots();
  if (!sortSlots_.empty()) allocateScratch(f, n);

  // Level-0 scalars: parameters, scalar inputs, N.
  for (size_t i = 0; i < k_->insts.size(); ++i) {
    const Inst &inst = k_->insts[i];
    if (inst.type.isBatch()) continue;
    if (inst.op == Op::Param) {
      Value *v = paramValues[inst.index];
      scalar_[i] = f64_ ? v : b_.CreateFPTrunc(v, realTy());
    } else if (inst.op == Op::Input) {
      scalar_[i] = b_.CreateLoad(realTy(), inputPtrs[inst.index]);
    } else if (inst.op == Op::BatchSize) {
      scalar_[i] = b_.CreateSIToFP(n, realTy());
    } else if (inst.op == Op::Const) {
      scalar_[i] = inst.type.isBool() ? static_cast<Value *>(b_.getInt1(inst.value != 0))
                                      : realConst(inst.value);
    }
  }

  int finalLevel = level_[k_->loss];
  for (ValueId g : k_->grads)
    if (g != kNoValue) finalLevel = std::max(finalLevel, level_[g]);
  Body body{f, n, inputPtrs, nullptr, out, gradPtrs, finalLevel};
  if (!e.withGradient) {
    emitBody(e, body);
    return true;
  }
  // gout may be NULL (all ones): the rest is emitted once per case, so that no loop tests it.
  BasicBlock *ones = BasicBlock::Create(ctx_, "gout.ones", f);
  BasicBlock *given = BasicBlock::Create(ctx_, "gout.given", f);
  b_.CreateCondBr(b_.CreateIsNull(gout), ones, given);
  std::vector<Value *> level0 = scalar_;
  b_.SetInsertPoint(ones);
  emitBody(e, body);
  scalar_ = level0;
  b_.SetInsertPoint(given);
  body.gout = gout;
  emitBody(e, body);
  return true;
}

void ModuleEmitter::emitBody(const Entry &e, const Body &body) {
  Function *f = body.f;
  logistic_.clear(); // emitBody runs once per gout branch: neither dominates the other
  Value *n = body.n, *gout = body.gout, *out = body.out;
  const std::vector<Value *> &inputPtrs = body.inputPtrs, &gradPtrs = body.gradPtrs;
  int finalLevel = body.finalLevel;
  size_t nIn = ir_.inputs.size();
  llvm::Type *i64 = b_.getInt64Ty();
  auto computeScalars = [&](int upTo) {
    for (size_t i = 0; i < k_->insts.size(); ++i) {
      const Inst &inst = k_->insts[i];
      if (inst.type.isBatch() || scalar_[i] || level_[i] > upTo || isReduction(inst.op)) continue;
      Value *ops[3] = {nullptr, nullptr, nullptr};
      for (int a = 0; a < opInfo(inst.op).arity; ++a)
        ops[a] = scalar_[inst.operands[a]];
      scalar_[i] = emitOp(inst, ops[0], ops[1], ops[2]);
    }
  };

  // One loop per level of reductions.
  LoopCtx proto;
  for (size_t k = 0; k < nIn; ++k)
    proto.inputPtrs.push_back(ir_.inputs[k].shape == Shape::Batch ? inputPtrs[k] : nullptr);
  proto.goutPtr = gout;
  proto.perm = perm_;
  proto.permInv = permInv_;
  proto.sorted = sorted_;
  for (int level = 0; level < finalLevel; ++level) {
    computeScalars(level);
    emitSortsAt(level, proto, n);
    std::vector<ValueId> reductions;
    for (size_t i = 0; i < k_->insts.size(); ++i)
      if (isReduction(k_->insts[i].op) && level_[i] == level + 1) reductions.push_back(i);
    if (reductions.empty()) continue;
    BasicBlock *pre = b_.GetInsertBlock();
    BasicBlock *loop = BasicBlock::Create(ctx_, "reduce", f);
    BasicBlock *done = BasicBlock::Create(ctx_, "reduced", f);
    b_.CreateBr(loop);
    b_.SetInsertPoint(loop);
    PHINode *i = b_.CreatePHI(i64, 2, "i");
    i->addIncoming(b_.getInt64(0), pre);
    LoopCtx c;
    c.i = i;
    c.cache.assign(k_->insts.size(), nullptr);
    for (size_t k = 0; k < nIn; ++k)
      c.inputPtrs.push_back(ir_.inputs[k].shape == Shape::Batch ? inputPtrs[k] : nullptr);
    // f32 kernels sum in double: 1e7 float additions would lose digits.
    llvm::Type *accTy = b_.getDoubleTy();
    std::vector<PHINode *> accs;
    std::vector<Value *> nexts;
    for (ValueId r : reductions) {
      Op op = k_->insts[r].op;
      llvm::Type *t = op == Op::Sum ? accTy : realTy();
      PHINode *acc = b_.CreatePHI(t, 2);
      double init = op == Op::Sum ? 0.0 : op == Op::ReduceMin ? INFINITY : -INFINITY;
      acc->addIncoming(ConstantFP::get(t, init), pre);
      accs.push_back(acc);
    }
    c.goutPtr = gout;
    c.goutIndex = i;
    c.perm = perm_;
    c.permInv = permInv_;
    c.sorted = sorted_;
    logistic_.clear();
    for (size_t r = 0; r < reductions.size(); ++r) {
      const Inst &inst = k_->insts[reductions[r]];
      Value *x = elem(inst.operands[0], c);
      Value *next;
      if (inst.op == Op::Sum) {
        Value *wide = f64_ ? x : b_.CreateFPExt(x, accTy);
        next = b_.CreateFAdd(accs[r], wide);
        FastMathFlags fmf;
        fmf.setAllowReassoc();
        cast<Instruction>(next)->setFastMathFlags(fmf);
      } else {
        Intrinsic::ID id = inst.op == Op::ReduceMin ? Intrinsic::minimum : Intrinsic::maximum;
        next = b_.CreateBinaryIntrinsic(id, accs[r], x);
      }
      nexts.push_back(next);
    }
    Value *inext = b_.CreateAdd(i, b_.getInt64(1), "i.next", true, true);
    BasicBlock *latch = b_.GetInsertBlock();
    i->addIncoming(inext, latch);
    for (size_t r = 0; r < reductions.size(); ++r)
      accs[r]->addIncoming(nexts[r], latch);
    b_.CreateCondBr(b_.CreateICmpSLT(inext, n), loop, done);
    b_.SetInsertPoint(done);
    logistic_.clear();
    for (size_t r = 0; r < reductions.size(); ++r) {
      Value *v = nexts[r];
      if (k_->insts[reductions[r]].op == Op::Sum && !f64_) v = b_.CreateFPTrunc(v, realTy());
      scalar_[reductions[r]] = v;
    }
  }
  computeScalars(finalLevel);
  emitSortsAt(finalLevel, proto, n);

  // Scalar inputs' gradients: one value each.
  if (e.withGradient)
    for (size_t k = 0; k < nIn; ++k) {
      if (!ir_.inputs[k].differentiable || ir_.inputs[k].shape != Shape::Scalar) continue;
      ValueId g = k_->grads[k];
      Value *v = g == kNoValue ? realConst(0) : scalar_[g];
      BasicBlock *yes = BasicBlock::Create(ctx_, "store.scalar.grad", f);
      BasicBlock *next = BasicBlock::Create(ctx_, "next", f);
      b_.CreateCondBr(b_.CreateIsNotNull(gradPtrs[k]), yes, next);
      b_.SetInsertPoint(yes);
      b_.CreateStore(v, gradPtrs[k]);
      b_.CreateBr(next);
      b_.SetInsertPoint(next);
    }

  // The final loop, in the variant the arguments allow.
  std::vector<ValueId> scalarArgs;
  for (size_t i = 0; i < k_->insts.size(); ++i)
    if (!k_->insts[i].type.isBatch() && scalar_[i] && k_->insts[i].op != Op::Const)
      scalarArgs.push_back(static_cast<ValueId>(i));
  auto callFinal = [&](Function *fn, Value *out, const std::vector<Value *> &gradPtrs) {
    std::vector<Value *> args{n};
    for (size_t k = 0; k < nIn; ++k)
      args.push_back(inputPtrs[k]);
    args.push_back(gout ? gout : ConstantPointerNull::get(b_.getPtrTy()));
    for (size_t s = 0; s < sortSlots_.size(); ++s)
      args.push_back(perm_[s]), args.push_back(permInv_[s]), args.push_back(sorted_[s]);
    for (ValueId s : scalarArgs)
      args.push_back(scalar_[s]);
    args.push_back(out);
    for (size_t k = 0; k < nIn; ++k)
      args.push_back(gradPtrs[k]);
    b_.CreateCall(fn, args);
  };
  if (!e.withGradient) {
    callFinal(emitFinalLoop(e, false, true, scalarArgs), out, gradPtrs);
    emitReturn(kStatusOk);
    return;
  }
  // Outputs the caller does not want (NULL) are written to a discard block of their own, so
  // that one loop, with every store unconditional, serves every call.
  std::vector<size_t> outputs; // the diff [B] inputs whose gradients the loop writes
  for (size_t k = 0; k < nIn; ++k)
    if (ir_.inputs[k].differentiable && ir_.inputs[k].shape == Shape::Batch) outputs.push_back(k);
  Value *allPresent = b_.CreateIsNotNull(out);
  for (size_t k : outputs)
    allPresent = b_.CreateAnd(allPresent, b_.CreateIsNotNull(gradPtrs[k]));
  Function *fn = emitFinalLoop(e, false, gout == nullptr, scalarArgs);
  BasicBlock *fast = BasicBlock::Create(ctx_, "fast", f);
  BasicBlock *slow = BasicBlock::Create(ctx_, "discard", f);
  b_.CreateCondBr(allPresent, fast, slow);
  b_.SetInsertPoint(fast);
  callFinal(fn, out, gradPtrs);
  emitReturn(kStatusOk);

  b_.SetInsertPoint(slow);
  Value *discard = emitMalloc(f, n, (outputs.size() + 1) * (f64_ ? 8 : 4), "discard");
  auto orDiscard = [&](Value *p, uint64_t slot) {
    Value *spare =
        b_.CreateInBoundsGEP(realTy(), discard, b_.CreateMul(n, b_.getInt64(slot), "", true, true));
    return b_.CreateSelect(b_.CreateIsNull(p), spare, p);
  };
  std::vector<Value *> grads = gradPtrs;
  for (size_t j = 0; j < outputs.size(); ++j)
    grads[outputs[j]] = orDiscard(gradPtrs[outputs[j]], j + 1);
  callFinal(fn, orDiscard(out, 0), grads);
  emitFree(discard);
  emitReturn(kStatusOk);
}

void ModuleEmitter::collectSortSlots() {
  sortSlots_.clear();
  for (const Inst &inst : k_->insts)
    if ((inst.op == Op::Sort || inst.op == Op::Unsort) &&
        slotOf(inst.operands[0]) == sortSlots_.size())
      sortSlots_.push_back(inst.operands[0]);
  scratch_ = keysA_ = keysB_ = nullptr;
  perm_.clear();
  permInv_.clear();
  sorted_.clear();
}

// malloc(n * bytesPerExample) at the insertion point, which continues where it succeeded. An n
// too large for the size to be computed, or a failed allocation, returns status 4 (freeing the
// sort scratch if it already exists).
Value *ModuleEmitter::emitMalloc(Function *f, Value *n, uint64_t bytesPerExample,
                                 const char *name) {
  std::string base = name;
  BasicBlock *alloc = BasicBlock::Create(ctx_, base + ".alloc", f);
  BasicBlock *fail = BasicBlock::Create(ctx_, base + ".fail", f);
  BasicBlock *ok = BasicBlock::Create(ctx_, base + ".ok", f);
  b_.CreateCondBr(b_.CreateICmpUGT(n, b_.getInt64((uint64_t{1} << 40) / bytesPerExample)), fail,
                  alloc);
  b_.SetInsertPoint(alloc);
  FunctionCallee mallocFn =
      m_.getOrInsertFunction("malloc", FunctionType::get(b_.getPtrTy(), {b_.getInt64Ty()}, false));
  Value *p =
      b_.CreateCall(mallocFn, {b_.CreateMul(n, b_.getInt64(bytesPerExample), "", true, true)});
  b_.CreateCondBr(b_.CreateIsNull(p), fail, ok);
  b_.SetInsertPoint(fail);
  emitReturn(kStatusMemory);
  b_.SetInsertPoint(ok);
  return p;
}

void ModuleEmitter::emitFree(Value *p) {
  FunctionCallee freeFn =
      m_.getOrInsertFunction("free", FunctionType::get(b_.getVoidTy(), {b_.getPtrTy()}, false));
  b_.CreateCall(freeFn, {p});
}

// One malloc'd block of n i64 words per buffer: the radix sort's two key buffers, then p, p^-1
// and the sorted values of each slot. Every later return frees the block.
bool ModuleEmitter::allocateScratch(Function *f, Value *n) {
  llvm::Type *i64 = b_.getInt64Ty();
  scratch_ = emitMalloc(f, n, (2 + 3 * sortSlots_.size()) * 8, "scratch");
  auto part = [&](uint64_t k) {
    return b_.CreateInBoundsGEP(i64, scratch_, b_.CreateMul(n, b_.getInt64(k), "", true, true));
  };
  keysA_ = part(0);
  keysB_ = part(1);
  for (size_t s = 0; s < sortSlots_.size(); ++s) {
    perm_.push_back(part(2 + 3 * s));
    permInv_.push_back(part(3 + 3 * s));
    sorted_.push_back(part(4 + 3 * s));
  }
  return true;
}

void ModuleEmitter::emitReturn(int status) {
  if (scratch_) emitFree(scratch_);
  b_.CreateRet(b_.getInt32(status));
}

namespace {
// for (i = 0; i < count; ++i) body(i), for count >= 1, at the builder's insertion point.
void emitLoop(IRBuilder<> &b, Value *count, const std::function<void(Value *)> &body) {
  Function *f = b.GetInsertBlock()->getParent();
  BasicBlock *pre = b.GetInsertBlock();
  BasicBlock *loop = BasicBlock::Create(b.getContext(), "loop", f);
  BasicBlock *done = BasicBlock::Create(b.getContext(), "loop.done", f);
  b.CreateBr(loop);
  b.SetInsertPoint(loop);
  PHINode *i = b.CreatePHI(b.getInt64Ty(), 2, "i");
  i->addIncoming(b.getInt64(0), pre);
  body(i);
  Value *next = b.CreateAdd(i, b.getInt64(1), "i.next", true, true);
  i->addIncoming(next, b.GetInsertBlock());
  b.CreateCondBr(b.CreateICmpSLT(next, count), loop, done);
  b.SetInsertPoint(done);
}
} // namespace

// The sort slots whose operand is available at `level`: a loop writes each example's key (the
// value's bits, mapped so that unsigned order is numeric order; -0 as +0), then the argsort.
void ModuleEmitter::emitSortsAt(int level, const LoopCtx &proto, Value *n) {
  for (size_t s = 0; s < sortSlots_.size(); ++s) {
    ValueId x = sortSlots_[s];
    if (level_[x] != level) continue;
    logistic_.clear();
    emitLoop(b_, n, [&](Value *i) {
      LoopCtx c = at(proto, i);
      Value *v = b_.CreateFAdd(elem(x, c), realConst(0));
      unsigned bits = f64_ ? 64 : 32;
      llvm::Type *intTy = b_.getIntNTy(bits);
      Value *u = b_.CreateBitCast(v, intTy);
      Value *flip = b_.CreateOr(b_.CreateAShr(u, bits - 1),
                                ConstantInt::get(intTy, APInt::getSignMask(bits)));
      Value *key = b_.CreateZExt(b_.CreateXor(u, flip), b_.getInt64Ty());
      b_.CreateStore(key, b_.CreateInBoundsGEP(b_.getInt64Ty(), keysA_, i));
    });
    logistic_.clear();
    b_.CreateCall(argsortFunction(), {n, keysA_, keysB_, perm_[s], permInv_[s], sorted_[s]});
  }
}

// argsort(n, keys, spare, p, pinv, sorted): p = the stable argsort of the n unsigned keys (a least
// significant digit first radix sort, 8 bits a pass, 4 passes for f32 keys and 8 for f64,
// skipping passes whose digit is the same for every key), pinv = p^-1. keys and spare are
// clobbered; p and pinv double as the index buffers of the passes; sorted = the values in order.
Function *ModuleEmitter::argsortFunction() {
  Function *&fn = argsort_[f64_];
  if (fn) return fn;
  llvm::Type *i64 = b_.getInt64Ty(), *ptr = b_.getPtrTy();
  fn = Function::Create(FunctionType::get(b_.getVoidTy(), {i64, ptr, ptr, ptr, ptr, ptr}, false),
                        GlobalValue::InternalLinkage,
                        f64_ ? "lossc.argsort.f64" : "lossc.argsort.f32", m_);
  for (unsigned a = 1; a < 6; ++a)
    fn->addParamAttr(a, Attribute::NoAlias);
  IRBuilderBase::InsertPointGuard guard(b_);
  b_.SetInsertPoint(BasicBlock::Create(ctx_, "entry", fn));
  Value *n = fn->getArg(0), *keys = fn->getArg(1), *spare = fn->getArg(2), *p = fn->getArg(3),
        *pinv = fn->getArg(4), *sorted = fn->getArg(5);
  const unsigned digits = f64_ ? 8 : 4;
  ArrayType *histTy = ArrayType::get(i64, digits * 256);
  Value *hist = b_.CreateAlloca(histTy);
  b_.CreateMemSet(hist, b_.getInt8(0), digits * 256 * 8, MaybeAlign(8));
  auto slot = [&](Value *base, Value *i) { return b_.CreateInBoundsGEP(i64, base, i); };
  auto digitOf = [&](Value *key, unsigned d) {
    return b_.CreateAnd(b_.CreateLShr(key, 8 * d), b_.getInt64(255));
  };
  auto bucket = [&](unsigned d, Value *digit) {
    return slot(hist, b_.CreateAdd(digit, b_.getInt64(256 * d)));
  };
  // All histograms in one pass; p starts as the identity.
  emitLoop(b_, n, [&](Value *i) {
    Value *key = b_.CreateLoad(i64, slot(keys, i));
    b_.CreateStore(i, slot(p, i));
    for (unsigned d = 0; d < digits; ++d) {
      Value *h = bucket(d, digitOf(key, d));
      b_.CreateStore(b_.CreateAdd(b_.CreateLoad(i64, h), b_.getInt64(1)), h);
    }
  });
  Value *srcK = keys, *dstK = spare, *srcI = p, *dstI = pinv;
  for (unsigned d = 0; d < digits; ++d) {
    BasicBlock *from = b_.GetInsertBlock();
    BasicBlock *pass = BasicBlock::Create(ctx_, "pass", fn);
    BasicBlock *join = BasicBlock::Create(ctx_, "pass.done", fn);
    Value *first = digitOf(b_.CreateLoad(i64, srcK), d);
    b_.CreateCondBr(b_.CreateICmpEQ(b_.CreateLoad(i64, bucket(d, first)), n), join, pass);
    b_.SetInsertPoint(pass);
    // Exclusive prefix sums: the first position of each digit.
    {
      BasicBlock *pre = b_.GetInsertBlock();
      BasicBlock *loop = BasicBlock::Create(ctx_, "prefix", fn);
      BasicBlock *done = BasicBlock::Create(ctx_, "prefix.done", fn);
      b_.CreateBr(loop);
      b_.SetInsertPoint(loop);
      PHINode *k = b_.CreatePHI(i64, 2), *sum = b_.CreatePHI(i64, 2);
      k->addIncoming(b_.getInt64(0), pre);
      sum->addIncoming(b_.getInt64(0), pre);
      Value *h = bucket(d, k);
      Value *count = b_.CreateLoad(i64, h);
      b_.CreateStore(sum, h);
      Value *kNext = b_.CreateAdd(k, b_.getInt64(1));
      k->addIncoming(kNext, loop);
      sum->addIncoming(b_.CreateAdd(sum, count), loop);
      b_.CreateCondBr(b_.CreateICmpULT(kNext, b_.getInt64(256)), loop, done);
      b_.SetInsertPoint(done);
    }
    emitLoop(b_, n, [&](Value *i) {
      Value *key = b_.CreateLoad(i64, slot(srcK, i));
      Value *h = bucket(d, digitOf(key, d));
      Value *pos = b_.CreateLoad(i64, h);
      b_.CreateStore(b_.CreateAdd(pos, b_.getInt64(1)), h);
      b_.CreateStore(key, slot(dstK, pos));
      b_.CreateStore(b_.CreateLoad(i64, slot(srcI, i)), slot(dstI, pos));
    });
    BasicBlock *passEnd = b_.GetInsertBlock();
    b_.CreateBr(join);
    b_.SetInsertPoint(join);
    auto merge = [&](Value *kept, Value *swapped) {
      PHINode *phi = b_.CreatePHI(ptr, 2);
      phi->addIncoming(kept, from);
      phi->addIncoming(swapped, passEnd);
      return phi;
    };
    Value *nsK = merge(srcK, dstK), *ndK = merge(dstK, srcK);
    Value *nsI = merge(srcI, dstI), *ndI = merge(dstI, srcI);
    srcK = nsK, dstK = ndK, srcI = nsI, dstI = ndI;
  }
  // The sorted keys back to values (the key mapping inverted: a set top bit marks a number that
  // was positive), read in order by every sort(x)_i.
  {
    unsigned bits = f64_ ? 64 : 32;
    llvm::Type *intTy = b_.getIntNTy(bits);
    Value *sortedKeys = srcK;
    emitLoop(b_, n, [&](Value *i) {
      Value *k = b_.CreateTrunc(b_.CreateLoad(i64, slot(sortedKeys, i)), intTy);
      Value *wasPositive = b_.CreateICmpSLT(k, ConstantInt::get(intTy, 0));
      Value *u = b_.CreateSelect(wasPositive,
                                 b_.CreateXor(k, ConstantInt::get(intTy, APInt::getSignMask(bits))),
                                 b_.CreateNot(k));
      b_.CreateStore(b_.CreateBitCast(u, realTy()), b_.CreateInBoundsGEP(realTy(), sorted, i));
    });
  }
  // The sorted order ended in p or in pinv: bring it to p, then invert it into pinv.
  BasicBlock *copy = BasicBlock::Create(ctx_, "copy", fn);
  BasicBlock *invert = BasicBlock::Create(ctx_, "invert", fn);
  b_.CreateCondBr(b_.CreateICmpEQ(srcI, p), invert, copy);
  b_.SetInsertPoint(copy);
  emitLoop(b_, n, [&](Value *i) { b_.CreateStore(b_.CreateLoad(i64, slot(pinv, i)), slot(p, i)); });
  b_.CreateBr(invert);
  b_.SetInsertPoint(invert);
  emitLoop(b_, n, [&](Value *i) { b_.CreateStore(i, slot(pinv, b_.CreateLoad(i64, slot(p, i)))); });
  b_.CreateRetVoid();
  return fn;
}

void ModuleEmitter::emitMeta(const ModuleInfo &info) {
  auto str = [&](const std::string &s) -> Constant * {
    return b_.CreateGlobalStringPtr(s, ".str", 0, &m_);
  };
  llvm::Type *ptr = b_.getPtrTy(), *i32 = b_.getInt32Ty(), *dbl = b_.getDoubleTy();
  StructType *inputInfo = StructType::create(ctx_, {ptr, i32}, "lossc_input_info");
  StructType *paramInfo = StructType::create(ctx_, {ptr, dbl, dbl, dbl}, "lossc_param_info");
  StructType *meta = StructType::create(
      ctx_, {i32, ptr, ptr, ptr, i32, ptr, i32, ptr, i32, b_.getInt64Ty()}, "lossc_meta");

  std::vector<Constant *> inputs;
  for (const IrInput &in : ir_.inputs)
    inputs.push_back(
        ConstantStruct::get(inputInfo, {str(in.name), b_.getInt32(in.differentiable)}));
  std::vector<Constant *> params;
  for (const IrParam &p : ir_.params) {
    // Open bounds become the next double inside them.
    double lo = p.loOpen ? std::nextafter(p.lo, INFINITY) : p.lo;
    double hi = p.hiOpen ? std::nextafter(p.hi, -INFINITY) : p.hi;
    if (std::isinf(p.lo)) lo = p.lo;
    if (std::isinf(p.hi)) hi = p.hi;
    params.push_back(
        ConstantStruct::get(paramInfo, {str(p.name), ConstantFP::get(dbl, p.defaultValue),
                                        ConstantFP::get(dbl, lo), ConstantFP::get(dbl, hi)}));
  }
  auto table = [&](StructType *t, std::vector<Constant *> &items, const char *name) -> Constant * {
    if (items.empty()) return ConstantPointerNull::get(b_.getPtrTy());
    ArrayType *at = ArrayType::get(t, items.size());
    return new GlobalVariable(m_, at, true, GlobalValue::PrivateLinkage,
                              ConstantArray::get(at, items), name);
  };
  Constant *m = ConstantStruct::get(
      meta, {b_.getInt32(1), str(ir_.name), str(info.sourceSha256), str(LOSSC_VERSION_STRING),
             b_.getInt32(ir_.inputs.size()), table(inputInfo, inputs, "lossc.inputs"),
             b_.getInt32(ir_.params.size()), table(paramInfo, params, "lossc.params"),
             b_.getInt32(ir_.batchCoupled), b_.getInt64(ir_.minBatch)});
  auto *g = new GlobalVariable(m_, meta, true, GlobalValue::PrivateLinkage, m, "lossc.meta");
  Function *f = Function::Create(FunctionType::get(ptr, false), GlobalValue::ExternalLinkage,
                                 "lossc_get_meta", m_);
  b_.SetInsertPoint(BasicBlock::Create(ctx_, "entry", f));
  b_.CreateRet(g);
}

void ModuleEmitter::emitStatusMessage() {
  Function *f = Function::Create(FunctionType::get(b_.getPtrTy(), {b_.getInt32Ty()}, false),
                                 GlobalValue::ExternalLinkage, "lossc_status_message", m_);
  BasicBlock *entry = BasicBlock::Create(ctx_, "entry", f);
  BasicBlock *other = BasicBlock::Create(ctx_, "other", f);
  b_.SetInsertPoint(entry);
  SwitchInst *sw = b_.CreateSwitch(f->getArg(0), other, 5);
  const char *messages[] = {
      "ok",
      "the batch is smaller than the loss's min_batch",
      "a parameter is outside its declared range (or NaN)",
      "a required pointer is NULL (inputs, an input buffer, or out)",
      "out of memory for the scratch buffers of sort",
  };
  for (int s = 0; s < 5; ++s) {
    BasicBlock *bb = BasicBlock::Create(ctx_, "case", f);
    sw->addCase(b_.getInt32(s), bb);
    b_.SetInsertPoint(bb);
    b_.CreateRet(b_.CreateGlobalStringPtr(messages[s], ".msg", 0, &m_));
  }
  b_.SetInsertPoint(other);
  b_.CreateRet(b_.CreateGlobalStringPtr("unknown status", ".msg", 0, &m_));
}

bool ModuleEmitter::emitAll(const KernelPair &kernels, const ModuleInfo &info) {
  Kernel fwd = kernels.forward, grad = kernels.gradient;
  expandReductions(fwd);
  expandReductions(grad);
  emitMeta(info);
  emitStatusMessage();
  const Entry entries[] = {
      {&fwd, false, false, "lossc_forward_f32"},
      {&fwd, true, false, "lossc_forward_f64"},
      {&grad, false, true, "lossc_forward_backward_f32"},
      {&grad, true, true, "lossc_forward_backward_f64"},
  };
  const unsigned bits[] = {kForwardF32, kForwardF64, kForwardBackwardF32, kForwardBackwardF64};
  for (int k = 0; k < 4; ++k)
    if ((info.entries & bits[k]) && !emitEntry(entries[k])) return false;
  return true;
}

} // namespace

std::unique_ptr<Module> emitLossModule(LLVMContext &ctx, const LossIr &ir,
                                       const KernelPair &kernels, const ModuleInfo &info,
                                       TargetMachine &tm, DiagEngine &diags) {
  auto m = std::make_unique<Module>("loss." + ir.name, ctx);
  m->setTargetTriple(tm.getTargetTriple().str());
  m->setDataLayout(tm.createDataLayout());
  ModuleEmitter emitter(ctx, *m, ir, diags);
  if (!emitter.emitAll(kernels, info)) return nullptr;
  std::string error;
  raw_string_ostream os(error);
  if (verifyModule(*m, &os)) {
    diags.report(DiagId::E0502, ir.loc,
                 "internal error: the generated module is invalid: " + os.str());
    return nullptr;
  }
  return m;
}

void optimizeModule(Module &m, TargetMachine &tm, bool quick) {
  Triple triple(m.getTargetTriple());
  auto tlii = std::make_unique<TargetLibraryInfoImpl>(triple);
  bool avx2 = tm.getTargetFeatureString().contains("+avx2");
  if (avx2) {
    tlii->addVectorizableFunctionsFromVecLib(TargetLibraryInfoImpl::LIBMVEC_X86, triple);
    // libmvec has these since glibc 2.35; LLVM 19's table lists only exp, log, pow, sin, cos.
    static const VecDesc extra[] = {
        {"log1pf", "_ZGVdN8v_log1pf", ElementCount::getFixed(8), false, "_ZGV_LLVM_N8v"},
        {"expm1f", "_ZGVdN8v_expm1f", ElementCount::getFixed(8), false, "_ZGV_LLVM_N8v"},
        {"tanhf", "_ZGVdN8v_tanhf", ElementCount::getFixed(8), false, "_ZGV_LLVM_N8v"},
        {"log1p", "_ZGVdN4v_log1p", ElementCount::getFixed(4), false, "_ZGV_LLVM_N4v"},
        {"expm1", "_ZGVdN4v_expm1", ElementCount::getFixed(4), false, "_ZGV_LLVM_N4v"},
        {"tanh", "_ZGVdN4v_tanh", ElementCount::getFixed(4), false, "_ZGV_LLVM_N4v"},
    };
    tlii->addVectorizableFunctions(extra);
  }
  LoopAnalysisManager lam;
  FunctionAnalysisManager fam;
  CGSCCAnalysisManager cgam;
  ModuleAnalysisManager mam;
  PipelineTuningOptions pto;
  // Vector code is what makes the kernels fast, and also most of their instruction selection
  // time; a quick build (screening: a few thousand small calls) goes without.
  pto.LoopVectorization = !quick;
  pto.SLPVectorization = !quick;
  PassBuilder pb(&tm, pto);
  fam.registerPass([&] { return TargetLibraryAnalysis(*tlii); });
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  ModulePassManager mpm =
      pb.buildPerModuleDefaultPipeline(quick ? OptimizationLevel::O1 : OptimizationLevel::O3);
  mpm.run(m, mam);
}

namespace {
bool allowedCallee(const Function &f) {
  static const char *const kMath[] = {"expf",   "exp",   "logf",  "log",  "log1pf", "log1p",
                                      "expm1f", "expm1", "tanhf", "tanh", "powf",   "pow"};
  StringRef name = f.getName();
  if (f.isIntrinsic()) {
    // Intrinsics that touch no memory are arithmetic (is.fpclass, minimum, vector.reduce, ...).
    if (f.doesNotAccessMemory()) return true;
    // The memory ones that optimised kernels use; their pointers are checked at each call.
    static const char *const kMemory[] = {"llvm.memset.",
                                          "llvm.memcpy.",
                                          "llvm.memmove.",
                                          "llvm.masked.gather.",
                                          "llvm.masked.scatter.",
                                          "llvm.masked.load.",
                                          "llvm.masked.store.",
                                          "llvm.load.relative.",
                                          "llvm.lifetime.",
                                          "llvm.assume",
                                          "llvm.experimental.noalias.scope.decl"};
    for (const char *p : kMemory)
      if (name.starts_with(p)) return true;
    return false;
  }
  // The scratch buffers of sort, allocated and freed by the kernel itself.
  if (name == "malloc" || name == "free") return true;
  // A libmvec vector variant: _ZGV<isa><mask><len><params>_<scalar name>.
  if (name.starts_with("_ZGV")) name = name.substr(name.find('_', 4) + 1);
  for (const char *m : kMath)
    if (name == m) return true;
  return false;
}

// The object a pointer is based on must be an argument, or a pointer loaded from an argument
// (inputs[k], grads[k]), or a constant table of the module, or a stack slot, or the kernel's
// own scratch block (malloc).
bool allowedPointer(const Value *p, bool isStore) {
  const Value *base = getUnderlyingObject(p, 12);
  if (isa<Argument>(base) || isa<AllocaInst>(base)) return true;
  if (auto *call = dyn_cast<CallBase>(base))
    if (const Function *callee = call->getCalledFunction()) return callee->getName() == "malloc";
  if (auto *g = dyn_cast<GlobalVariable>(base)) return !isStore && g->isConstant();
  if (auto *load = dyn_cast<LoadInst>(base))
    return isa<Argument>(getUnderlyingObject(load->getPointerOperand(), 12));
  if (auto *phi = dyn_cast<PHINode>(base)) {
    for (const Value *in : phi->incoming_values())
      if (!isa<ConstantPointerNull>(in) && !allowedPointer(in, isStore)) return false;
    return true;
  }
  if (auto *fr = dyn_cast<FreezeInst>(base)) return allowedPointer(fr->getOperand(0), isStore);
  if (auto *sel = dyn_cast<SelectInst>(base))
    return allowedPointer(sel->getTrueValue(), isStore) &&
           allowedPointer(sel->getFalseValue(), isStore);
  return false;
}
// A vector of pointers (a gather's or scatter's addresses) is checked through the scalar
// pointer it is computed from: a GEP's base, or the scalar a splat broadcasts.
bool allowedPointerVector(const Value *v, bool isStore) {
  for (int depth = 0; depth < 12 && v->getType()->isVectorTy(); ++depth) {
    if (auto *gep = dyn_cast<GEPOperator>(v))
      v = gep->getPointerOperand();
    else if (auto *shuffle = dyn_cast<ShuffleVectorInst>(v))
      v = shuffle->getOperand(0);
    else if (auto *insert = dyn_cast<InsertElementInst>(v))
      v = insert->getOperand(1);
    else
      return false;
  }
  return !v->getType()->isVectorTy() && allowedPointer(v, isStore);
}
} // namespace

bool verifyConfinement(const Module &m, std::string &why) {
  for (const GlobalVariable &g : m.globals())
    // llvm.used / llvm.compiler.used are linker directives, not memory the code touches.
    if (!g.isConstant() && g.getSection() != "llvm.metadata") {
      why = "a writable global variable '" + g.getName().str() + "'";
      return false;
    }
  for (const Function &f : m) {
    if (f.isDeclaration()) {
      if (!allowedCallee(f)) {
        why = "a call of '" + f.getName().str() + "', which is not an allowed math function";
        return false;
      }
      continue;
    }
    for (const BasicBlock &bb : f)
      for (const Instruction &inst : bb) {
        if (auto *call = dyn_cast<CallBase>(&inst)) {
          if (call->isInlineAsm()) {
            why = "inline assembly in '" + f.getName().str() + "'";
            return false;
          }
          const Function *callee = call->getCalledFunction();
          if (!callee) {
            why = "an indirect call in '" + f.getName().str() + "'";
            return false;
          }
          if (callee->isDeclaration() && !allowedCallee(*callee)) {
            why = "a call of '" + callee->getName().str() + "'";
            return false;
          }
          if (auto *mi = dyn_cast<MemIntrinsic>(call)) {
            auto *mt = dyn_cast<MemTransferInst>(mi);
            if (!allowedPointer(mi->getDest(), true) ||
                (mt && !allowedPointer(mt->getSource(), false))) {
              why = "a memory intrinsic on a pointer not derived from the arguments";
              return false;
            }
          }
          if (auto *ii = dyn_cast<IntrinsicInst>(call)) {
            if (ii->getIntrinsicID() == Intrinsic::load_relative &&
                !allowedPointer(ii->getArgOperand(0), false)) {
              why = "a relative load from outside the module's constant tables";
              return false;
            }
            if (ii->getIntrinsicID() == Intrinsic::masked_load &&
                !allowedPointer(ii->getArgOperand(0), false)) {
              why = "a masked load through a pointer not derived from the arguments";
              return false;
            }
            if (ii->getIntrinsicID() == Intrinsic::masked_gather &&
                !allowedPointerVector(ii->getArgOperand(0), false)) {
              why = "a gather through pointers not derived from the arguments";
              return false;
            }
            if (ii->getIntrinsicID() == Intrinsic::masked_scatter &&
                !allowedPointerVector(ii->getArgOperand(1), true)) {
              why = "a scatter through pointers not derived from the arguments";
              return false;
            }
            if (ii->getIntrinsicID() == Intrinsic::masked_store &&
                !allowedPointer(ii->getArgOperand(1), true)) {
              why = "a masked store through a pointer not derived from the arguments";
              return false;
            }
          }
        } else if (auto *load = dyn_cast<LoadInst>(&inst)) {
          if (!allowedPointer(load->getPointerOperand(), false)) {
            std::string base;
            raw_string_ostream os(base);
            getUnderlyingObject(load->getPointerOperand(), 12)->print(os);
            why = "a load through a pointer not derived from the arguments in '" +
                  f.getName().str() + "' (based on" + os.str() + ")";
            return false;
          }
        } else if (auto *store = dyn_cast<StoreInst>(&inst)) {
          if (!allowedPointer(store->getPointerOperand(), true)) {
            why = "a store through a pointer not derived from the arguments in '" +
                  f.getName().str() + "'";
            return false;
          }
        } else if (isa<AtomicRMWInst>(inst) || isa<AtomicCmpXchgInst>(inst) ||
                   isa<FenceInst>(inst)) {
          why = "an atomic operation";
          return false;
        }
      }
  }
  return true;
}

} // namespace lossc
