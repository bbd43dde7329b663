// rt::compile: the front end, then the JIT; errors become rt::Error with the diagnostics.
#include "lossc/jit.h"

#include "Backend.h"
#include "Pipeline.h"

namespace lossc::rt {

namespace {
std::shared_ptr<Loss> finish(std::unique_ptr<Frontend> fe, const std::string &name) {
  std::shared_ptr<JitLoss> jit;
  if (fe->ok()) jit = JitLoss::compile(*fe);
  if (!jit) {
    std::string text;
    fe->diags.renderText(text);
    throw Error("cannot compile '" + name + "':\n" + text);
  }
  return Loss::fromFunctions(jit->functions(), jit, name);
}

FrontendOptions frontendOptions(const CompileOptions &options) {
  FrontendOptions f;
  f.importPaths = options.importPaths;
  f.stdlibDir = options.stdlibDir;
  return f;
}
} // namespace

std::shared_ptr<Loss> compile(const std::string &path, const CompileOptions &options) {
  return finish(runFrontend(path, frontendOptions(options)), path);
}

std::shared_ptr<Loss> compileText(const std::string &name, const std::string &text,
                                  const CompileOptions &options) {
  return finish(runFrontendOnText(name, text, frontendOptions(options)), name);
}

std::string defaultStdlibDirectory() { return defaultStdlibDir(); }

} // namespace lossc::rt
