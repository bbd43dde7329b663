// Back end: module building, the JIT, shared-object emission, textual stages.
#include "Backend.h"

#include <cstdio>
#include <filesystem>
#include <unistd.h>

#include "Autodiff.h"
#include "Codegen.h"
#include "lossc/sha256.h"
#include "llvm/ExecutionEngine/Orc/ExecutionUtils.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/DynamicLibrary.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"

namespace lossc {

using namespace llvm;

BackendModule::BackendModule() = default;
BackendModule::BackendModule(BackendModule &&) noexcept = default;
BackendModule::~BackendModule() = default;
JitLoss::~JitLoss() = default;

std::unique_ptr<BackendModule> buildModule(Frontend &fe, const BuildOptions &options) {
  if (!fe.ok()) return nullptr;
  auto bm = std::make_unique<BackendModule>();
  std::string error;
  bm->target = createHostTargetMachine(error);
  if (!bm->target) {
    fe.diags.report(DiagId::E0505, fe.ir->loc, "no LLVM target for this machine: " + error);
    return nullptr;
  }
  bm->context = std::make_unique<LLVMContext>();
  KernelPair kernels = buildKernels(*fe.ir);
  ModuleInfo info{sha256Hex(fe.sources.text(1)), options.entries};
  if (options.quick) bm->target->setOptLevel(CodeGenOptLevel::Less);
  bm->module = emitLossModule(*bm->context, *fe.ir, kernels, info, *bm->target, fe.diags);
  if (!bm->module) return nullptr;
  if (options.optimize) optimizeModule(*bm->module, *bm->target, options.quick);
  std::string why;
  if (!verifyConfinement(*bm->module, why)) {
    fe.diags.report(DiagId::E0503, fe.ir->loc,
                    "internal error: the generated code is not confined (" + why +
                        "); refusing to run or write it");
    return nullptr;
  }
  return bm;
}

std::unique_ptr<JitLoss> JitLoss::compile(Frontend &fe, const BuildOptions &options) {
  std::unique_ptr<BackendModule> bm = buildModule(fe, options);
  if (!bm) return nullptr;
  auto fail = [&](Error e) -> std::unique_ptr<JitLoss> {
    fe.diags.report(DiagId::E0505, fe.ir->loc, "JIT compilation failed: " + toString(std::move(e)));
    return nullptr;
  };
  // The vector math functions live in libmvec, which the process need not have loaded.
  static bool mvec = !sys::DynamicLibrary::LoadLibraryPermanently("libmvec.so.1");
  (void)mvec;
  auto jtmb = orc::JITTargetMachineBuilder::detectHost();
  if (!jtmb) return fail(jtmb.takeError());
  jtmb->setCPU(bm->target->getTargetCPU().str());
  jtmb->addFeatures(std::vector<std::string>{bm->target->getTargetFeatureString().str()});
  jtmb->setCodeGenOptLevel(options.quick ? CodeGenOptLevel::Less : CodeGenOptLevel::Aggressive);
  auto jit = orc::LLJITBuilder().setJITTargetMachineBuilder(std::move(*jtmb)).create();
  if (!jit) return fail(jit.takeError());
  auto generator = orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
      (*jit)->getDataLayout().getGlobalPrefix());
  if (!generator) return fail(generator.takeError());
  (*jit)->getMainJITDylib().addGenerator(std::move(*generator));
  bm->module->setDataLayout((*jit)->getDataLayout());
  if (Error e =
          (*jit)->addIRModule(orc::ThreadSafeModule(std::move(bm->module), std::move(bm->context))))
    return fail(std::move(e));

  std::unique_ptr<JitLoss> loss(new JitLoss());
  auto lookup = [&](const char *name, auto &slot) -> bool {
    auto sym = (*jit)->lookup(name);
    if (!sym) {
      fe.diags.report(DiagId::E0505, fe.ir->loc,
                      std::string("JIT: cannot find ") + name + ": " + toString(sym.takeError()));
      return false;
    }
    slot = sym->toPtr<std::remove_reference_t<decltype(slot)>>();
    return true;
  };
  LossFunctions &f = loss->fns_;
  unsigned e = options.entries;
  if (!lookup("lossc_get_meta", f.getMeta) || !lookup("lossc_status_message", f.statusMessage) ||
      ((e & kForwardF32) && !lookup("lossc_forward_f32", f.forwardF32)) ||
      ((e & kForwardF64) && !lookup("lossc_forward_f64", f.forwardF64)) ||
      ((e & kForwardBackwardF32) && !lookup("lossc_forward_backward_f32", f.forwardBackwardF32)) ||
      ((e & kForwardBackwardF64) && !lookup("lossc_forward_backward_f64", f.forwardBackwardF64)))
    return nullptr;
  loss->jit_ = std::move(*jit);
  return loss;
}

namespace {
std::string findLinker(bool &isLld) {
  for (const char *name : {"ld.lld-19", "ld.lld"}) {
    if (auto p = sys::findProgramByName(name)) {
      isLld = true;
      return *p;
    }
  }
  isLld = false;
  if (auto p = sys::findProgramByName("cc")) return *p;
  return "";
}
} // namespace

bool writeSharedObject(Frontend &fe, BackendModule &bm, const std::string &path) {
  auto fail = [&](const std::string &message) {
    fe.diags.report(DiagId::E0504, {}, message);
    return false;
  };
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  std::string stem =
      dir + "/." + std::filesystem::path(path).filename().string() + "." + std::to_string(getpid());
  std::string objectPath = stem + ".o", soPath = stem + ".so";
  {
    std::error_code ec;
    raw_fd_ostream os(objectPath, ec, sys::fs::OF_None);
    if (ec) return fail("cannot write '" + objectPath + "': " + ec.message());
    legacy::PassManager pm;
    if (bm.target->addPassesToEmitFile(pm, os, nullptr, CodeGenFileType::ObjectFile))
      return fail("LLVM cannot emit an object file for this target");
    pm.run(*bm.module);
  }
  bool isLld = false;
  std::string linker = findLinker(isLld);
  if (linker.empty()) {
    std::remove(objectPath.c_str());
    return fail("no linker found (ld.lld-19, ld.lld or cc)");
  }
  std::vector<std::string> args{linker, "-shared", "-o", soPath, objectPath};
  if (isLld)
    for (const char *a : {"-L/lib/x86_64-linux-gnu", "-L/usr/lib/x86_64-linux-gnu", "--as-needed",
                          "-lmvec", "-lm", "-lc", "--no-undefined", "-z", "noexecstack"})
      args.push_back(a);
  else
    for (const char *a : {"-lmvec", "-lm"})
      args.push_back(a);
  std::vector<StringRef> argRefs(args.begin(), args.end());
  std::string errorMessage;
  std::string logPath = stem + ".log";
  std::optional<StringRef> redirects[] = {std::nullopt, StringRef(logPath), StringRef(logPath)};
  int rc = sys::ExecuteAndWait(linker, argRefs, std::nullopt, redirects, 60, 0, &errorMessage);
  std::remove(objectPath.c_str());
  if (rc != 0) {
    std::string log;
    if (auto buf = MemoryBuffer::getFile(logPath)) log = (*buf)->getBuffer().str();
    std::remove(logPath.c_str());
    std::remove(soPath.c_str());
    return fail("linking '" + path + "' failed: " + (errorMessage.empty() ? log : errorMessage));
  }
  std::remove(logPath.c_str());
  if (std::rename(soPath.c_str(), path.c_str()) != 0) {
    std::remove(soPath.c_str());
    return fail("cannot write '" + path + "': " + std::strerror(errno));
  }
  return true;
}

std::string printLlvmIr(BackendModule &bm) {
  std::string out;
  raw_string_ostream os(out);
  bm.module->print(os, nullptr);
  return os.str();
}

std::string printAssembly(BackendModule &bm) {
  SmallString<0> out;
  raw_svector_ostream os(out);
  legacy::PassManager pm;
  if (bm.target->addPassesToEmitFile(pm, os, nullptr, CodeGenFileType::AssemblyFile)) return "";
  pm.run(*bm.module);
  return std::string(out.str());
}

std::string printGradientIr(const Frontend &fe) {
  KernelPair k = buildKernels(*fe.ir);
  LossIr view = *fe.ir;
  view.insts = k.gradient.insts;
  view.result = k.gradient.loss;
  std::string out;
  printIr(view, fe.sources, out);
  for (size_t g = 0; g < k.gradient.grads.size(); ++g)
    if (fe.ir->inputs[g].differentiable)
      out += "  grad " + fe.ir->inputs[g].name + " = " +
             (k.gradient.grads[g] == kNoValue ? std::string("0")
                                              : "%" + std::to_string(k.gradient.grads[g])) +
             "\n";
  return out;
}

} // namespace lossc
