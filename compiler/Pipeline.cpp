// Front-end pipeline: sources, imports, parse, sema, differentiability.
#include "Pipeline.h"

#include <cstdlib>
#include <filesystem>
#include <set>

#include "Parse.h"

#ifndef LOSSC_STDLIB_DIR
#define LOSSC_STDLIB_DIR ""
#endif

namespace lossc {

namespace fs = std::filesystem;

std::string defaultStdlibDir() {
  if (const char *env = std::getenv("LOSSC_STDLIB"); env && *env) return env;
  return LOSSC_STDLIB_DIR;
}

namespace {

std::string canonical(const std::string &path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(path, ec);
  return ec ? path : p.string();
}

// A path as diagnostics show it: relative to the working directory when it lies below it.
std::string displayPath(const fs::path &p) {
  std::error_code ec;
  fs::path cwd = fs::current_path(ec);
  if (ec || !p.is_absolute()) return p.lexically_normal().string();
  fs::path rel = p.lexically_normal().lexically_relative(cwd);
  if (rel.empty() || *rel.begin() == "..") return p.lexically_normal().string();
  return rel.string();
}

// Finds `name`.loss for an import in `importer`'s directory, then the import paths, then the
// stdlib's lib/ directory. Returns "" when it is nowhere; `searched` lists where it looked.
std::string findModule(const std::string &name, const std::string &importer,
                       const FrontendOptions &options, std::vector<std::string> &searched) {
  std::vector<fs::path> dirs;
  fs::path parent = fs::path(importer).parent_path();
  dirs.push_back(parent.empty() ? fs::path(".") : parent);
  for (const std::string &p : options.importPaths)
    dirs.push_back(p);
  std::string stdlib = options.stdlibDir.empty() ? defaultStdlibDir() : options.stdlibDir;
  if (!stdlib.empty()) dirs.push_back(fs::path(stdlib) / "lib");
  for (const fs::path &d : dirs) {
    fs::path candidate = d / (name + ".loss");
    searched.push_back(d.string());
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec)) return displayPath(candidate);
  }
  return "";
}

void runFrom(Frontend &fe, uint32_t mainFile, const FrontendOptions &options) {
  Program &program = fe.program;
  program.modules.emplace_back();
  if (!parseModule(fe.sources, mainFile, options.limits, program.ast, program.modules[0], fe.diags))
    return;

  // Load imports breadth-first; each module once, however often it is imported.
  std::set<std::string> loaded{canonical(fe.sources.path(mainFile))};
  bool importsOk = true;
  for (size_t m = 0; m < program.modules.size(); ++m) {
    std::vector<ImportDecl> imports = program.modules[m].imports;
    std::string importer = program.modules[m].path;
    for (const ImportDecl &imp : imports) {
      std::vector<std::string> searched;
      std::string path = findModule(imp.name.name, importer, options, searched);
      if (path.empty()) {
        std::string where;
        for (const std::string &s : searched)
          where += (where.empty() ? "" : ", ") + s;
        fe.diags.report(DiagId::E0206, imp.name.loc, "no module '" + imp.name.name + "' to import")
            .note("looked for " + imp.name.name + ".loss in " + where)
            .help("add a directory to the search path with -I DIR");
        importsOk = false;
        continue;
      }
      if (!loaded.insert(canonical(path)).second) continue;
      if (program.modules.size() > options.limits.maxImports) {
        fe.diags.report(DiagId::E0207, imp.name.loc,
                        "more than " + std::to_string(options.limits.maxImports) +
                            " modules imported");
        return;
      }
      std::string text, error;
      if (!readFile(path, options.limits.maxSourceBytes, text, error)) {
        fe.diags.report(DiagId::E0001, imp.name.loc, "cannot read module '" + path + "': " + error);
        importsOk = false;
        continue;
      }
      uint32_t file = fe.sources.add(path, std::move(text));
      Module module;
      bool parsed = parseModule(fe.sources, file, options.limits, program.ast, module, fe.diags);
      if (parsed && !module.losses.empty()) {
        fe.diags
            .report(DiagId::E0207, imp.name.loc,
                    "'" + path + "' declares a loss and cannot be imported")
            .note("the loss is declared here", module.losses[0].name.loc)
            .help("only files of `fn` declarations can be imported; move the shared "
                  "functions into a module of their own");
        parsed = false;
      }
      importsOk &= parsed;
      if (parsed) program.modules.push_back(std::move(module));
    }
  }
  if (!importsOk) return;

  fe.ir = analyze(program, options.limits, fe.diags);
  if (fe.ir) fe.diff = analyzeDifferentiability(*fe.ir, fe.diags);
  if (fe.diags.hasErrors()) fe.ir.reset();
}

} // namespace

std::unique_ptr<Frontend> runFrontendOnText(const std::string &name, std::string text,
                                            const FrontendOptions &options) {
  auto fe = std::make_unique<Frontend>();
  uint32_t file = fe->sources.add(name, std::move(text));
  runFrom(*fe, file, options);
  return fe;
}

std::unique_ptr<Frontend> runFrontend(const std::string &path, const FrontendOptions &options) {
  std::string text, error;
  if (!readFile(path, options.limits.maxSourceBytes, text, error)) {
    auto fe = std::make_unique<Frontend>();
    fe->diags.report(DiagId::E0001, {}, "cannot read '" + path + "': " + error);
    return fe;
  }
  return runFrontendOnText(path, std::move(text), options);
}

} // namespace lossc
