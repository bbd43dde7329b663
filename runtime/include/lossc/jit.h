// Compiling a .loss file in process: the front end and the LLVM ORC JIT of lossc, giving the
// same verified rt::Loss as a shared object does. Links the compiler (LLVM), not libtorch.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lossc/runtime.h"

namespace lossc::rt {

struct CompileOptions {
  std::vector<std::string> importPaths; // searched after the file's own directory
  std::string stdlibDir;                // "" for the default ($LOSSC_STDLIB or the build's)
};

// Compiles a .loss file; throws Error carrying the rendered diagnostics if it has errors.
std::shared_ptr<Loss> compile(const std::string &path, const CompileOptions &options = {});
// The same on text in memory; `name` appears in diagnostics.
std::shared_ptr<Loss> compileText(const std::string &name, const std::string &text,
                                  const CompileOptions &options = {});

// The stdlib directory used when CompileOptions::stdlibDir is empty.
std::string defaultStdlibDirectory();

} // namespace lossc::rt
