// LLVM code generation: a loss's kernels (forward, forward + VJP) become one LLVM module that
// defines the pinned C ABI of runtime/include/lossc/abi.h in f32 and f64: lossc_get_meta,
// lossc_status_message, lossc_forward_{f32,f64}, lossc_forward_backward_{f32,f64}.
//
// Shape of the generated code: argument checks (n >= min_batch, NULL pointers, parameter
// ranges), then one loop over the batch per level of batch reductions (each loop recomputes
// the elementwise values it needs from the inputs, so no temporary buffers exist), then the
// final loop writing the loss and the gradients. A loss with sort mallocs one scratch block
// (per sorted operand: its stable argsort, the inverse, and the values in sorted order); sort(x)
// reads the sorted values, and the gradient's unsort gathers through the inverse permutation. The module is optimised at O3 with libmvec's
// vector math, and verified to be confined before anything runs or is written.
#pragma once

#include "Entries.h"

#include <memory>
#include <string>

#include "Autodiff.h"
#include "Diagnostics.h"
#include "Ir.h"

namespace llvm {
class LLVMContext;
class Module;
class TargetMachine;
} // namespace llvm

namespace lossc {

// A TargetMachine for this host (its CPU and features), position-independent for shared
// objects. Returns null and sets `error` if LLVM has no target for the host.
std::unique_ptr<llvm::TargetMachine> createHostTargetMachine(std::string &error);


struct ModuleInfo {
  std::string sourceSha256; // hex digest of the .loss text
  unsigned entries = kAllEntries;
};

// Builds the module. Reports a located diagnostic and returns null for what the code
// generator cannot compile.
std::unique_ptr<llvm::Module> emitLossModule(llvm::LLVMContext &ctx, const LossIr &ir,
                                             const KernelPair &kernels, const ModuleInfo &info,
                                             llvm::TargetMachine &tm, DiagEngine &diags);

// The O3 pipeline with the host's libmvec vector functions; `quick`: the O1 pipeline, for
// kernels that are compiled to be run a few times (screening), where compile time dominates.
void optimizeModule(llvm::Module &m, llvm::TargetMachine &tm, bool quick = false);

// The confinement check of generated code: calls only to the allow-listed math functions,
// intrinsics and malloc/free (the scratch block of sort), no inline assembly, no indirect calls, and no memory access but through the
// arguments (and the module's own constant tables). Returns false with the reason otherwise.
bool verifyConfinement(const llvm::Module &m, std::string &why);

} // namespace lossc
