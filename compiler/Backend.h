// The back end of lossc: from a checked front end to runnable code. It builds the kernels
// (autodiff, simplification), emits and optimises the LLVM module, checks its confinement,
// and then either JIT-compiles it in process (JitLoss) or writes a shared object exporting
// exactly the pinned C ABI. Also the --emit stages grad, llvm and asm.
#pragma once

#include "Entries.h"

#include <memory>
#include <string>

#include "Pipeline.h"
#include "lossc/runtime.h"

namespace llvm {
class LLVMContext;
class Module;
class TargetMachine;
namespace orc {
class LLJIT;
}
} // namespace llvm

namespace lossc {

struct BackendModule {
  std::unique_ptr<llvm::LLVMContext> context;
  std::unique_ptr<llvm::TargetMachine> target;
  std::unique_ptr<llvm::Module> module;
  BackendModule();
  BackendModule(BackendModule &&) noexcept;
  ~BackendModule();
};

struct BuildOptions {
  bool optimize = true;
  unsigned entries = kAllEntries; // EntryMask: which kernel entry points to define
  bool quick = false;    // O1 and a faster instruction selection: compile time over speed
};

// Kernels, LLVM module, O3, confinement. Errors go to fe.diags; returns null on failure.
std::unique_ptr<BackendModule> buildModule(Frontend &fe, const BuildOptions &options = {});

// The ABI's functions, as one compiled loss provides them.
using LossFunctions = rt::Functions;

// A loss compiled in process with ORC LLJIT.
class JitLoss {
public:
  ~JitLoss();
  const LossFunctions &functions() const { return fns_; }

  // Compiles the front end's loss; null (with diagnostics in fe.diags) on failure. Entry
  // points left out by `options.entries` are null in functions().
  static std::unique_ptr<JitLoss> compile(Frontend &fe, const BuildOptions &options = {});

private:
  JitLoss() = default;
  std::unique_ptr<llvm::orc::LLJIT> jit_;
  LossFunctions fns_;
};

// Writes a shared object with the ABI to `path` (atomically: a temporary file, then rename).
bool writeSharedObject(Frontend &fe, BackendModule &bm, const std::string &path);

// Textual stages: "llvm" (the optimised module), "asm" (host assembly).
std::string printLlvmIr(BackendModule &bm);
std::string printAssembly(BackendModule &bm);
// The gradient kernel's IR ("grad" stage).
std::string printGradientIr(const Frontend &fe);

} // namespace lossc
