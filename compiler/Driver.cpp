// The lossc command line: parses options (Boost.Program_options), runs the pipeline, prints
// the requested stage or report. Exit status: 0 success, 1 errors in the input, 2 usage errors.
#include <boost/program_options.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "Backend.h"
#include "Check.h"
#include "Eval.h"
#include "Json.h"
#include "Parse.h"
#include "Pipeline.h"
#include "Plot.h"
#include "Screen.h"
#include "Version.h"
#include <optional>

#include "LanguageReference.inc" // kLanguageReference: docs/language.md

namespace po = boost::program_options;

namespace {

constexpr int kExitOk = 0, kExitInputError = 1, kExitUsage = 2;

const char kUsage[] =
    "usage: lossc FILE.loss -o OUT.so          compile to a shared object (the C ABI of abi.h)\n"
    "       lossc FILE.loss                    check a loss and compile it, writing nothing\n"
    "       lossc --emit=STAGE FILE.loss       print a stage: tokens, ast, ir, grad, llvm, asm\n"
    "       lossc check FILE.loss [--json]     static checks and differentiability report\n"
    "       lossc eval FILE.loss --inputs IN.csv [--param k=v]...\n"
    "                                          run the kernel: per-example loss and gradients\n"
    "       lossc plot A.loss [B.loss ...] -o OUT.svg [--param k=v]... [--range LO:HI]\n"
    "                                          loss and gradient against the margin rho\n"
    "       lossc reference                    print the language reference (for LLM prompts)\n"
    "\n"
    "Diagnostics go to stderr as `file:line:col: error[E0301]: message`, or as JSON with\n"
    "--diagnostics-format=json. Exit status: 0 success, 1 errors in the input, 2 usage.\n";

int usageError(const std::string &message) {
  std::cerr << "lossc: error: " << message << "\n"
            << "try 'lossc --help'\n";
  return kExitUsage;
}

void printDiagnostics(const lossc::Frontend &fe, bool json) {
  std::string out;
  if (json)
    fe.diags.renderJson(out);
  else
    fe.diags.renderText(out);
  std::fputs(out.c_str(), stderr);
}

} // namespace

int main(int argc, char **argv) {
  po::options_description visible("options");
  // clang-format off
  visible.add_options()
      ("help,h", "print this help")
      ("version", "print the version")
      ("output,o", po::value<std::string>(), "the shared object to write")
      ("emit", po::value<std::string>(),
       "print a stage instead of compiling: tokens, ast, ir, grad, llvm, asm")
      ("diagnostics-format", po::value<std::string>()->default_value("text"), "text or json")
      ("import-path,I", po::value<std::vector<std::string>>()->composing(),
       "add a directory to the import search path")
      ("stdlib", po::value<std::string>(),
       "the stdlib directory (default: $LOSSC_STDLIB or the build's)")
      ("json", "check: print the report as JSON")
      ("strict", "check: fail on warnings too")
      ("static-only", "check: skip the numeric screening battery")
      ("inputs", po::value<std::string>(),
       "eval: a CSV file, one column per input (header: the input names)")
      ("param", po::value<std::vector<std::string>>()->composing(),
       "eval: set a parameter, NAME=VALUE")
      ("f32", "eval: run the float kernel (default: double)")
      ("range", po::value<std::string>(), "plot: the margins drawn, LO:HI (default -60:60)");
  // clang-format on
  po::options_description hidden;
  hidden.add_options()("args", po::value<std::vector<std::string>>(), "command and file");
  po::options_description all;
  all.add(visible).add(hidden);
  po::positional_options_description positional;
  positional.add("args", -1);

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error &e) {
    return usageError(e.what());
  }

  if (vm.count("help")) {
    std::cout << kUsage << "\n" << visible;
    return kExitOk;
  }
  if (vm.count("version")) {
    std::cout << "lossc " << LOSSC_VERSION_STRING << "\n";
    return kExitOk;
  }

  std::vector<std::string> args;
  if (vm.count("args")) args = vm["args"].as<std::vector<std::string>>();
  std::string command;
  if (!args.empty() &&
      (args[0] == "check" || args[0] == "reference" || args[0] == "eval" || args[0] == "plot")) {
    command = args[0];
    args.erase(args.begin());
  }
  if (command == "reference") {
    if (!args.empty()) return usageError("'reference' takes no file");
    std::fputs(kLanguageReference, stdout);
    return kExitOk;
  }

  std::string format = vm["diagnostics-format"].as<std::string>();
  if (format != "text" && format != "json")
    return usageError("--diagnostics-format must be text or json, not '" + format + "'");
  bool json = format == "json";
  if (command == "plot") {
    if (args.empty()) return usageError("plot needs at least one .loss file");
    if (!vm.count("output")) return usageError("plot needs -o OUT.svg");
    double lo = -60, hi = 60;
    if (vm.count("range")) {
      std::string r = vm["range"].as<std::string>();
      size_t colon = r.find(':');
      char *end1 = nullptr, *end2 = nullptr;
      if (colon != std::string::npos) {
        lo = std::strtod(r.substr(0, colon).c_str(), &end1);
        hi = std::strtod(r.substr(colon + 1).c_str(), &end2);
      }
      if (colon == std::string::npos || !end1 || *end1 || !end2 || *end2 || !(lo < hi) ||
          !std::isfinite(lo) || !std::isfinite(hi))
        return usageError("--range takes LO:HI with LO < HI, got '" + r + "'");
    }
    std::vector<std::pair<std::string, double>> params;
    if (vm.count("param"))
      for (const std::string &kv : vm["param"].as<std::vector<std::string>>()) {
        std::pair<std::string, double> setting;
        if (!lossc::parseSetting(kv, setting))
          return usageError("--param takes NAME=VALUE, got '" + kv + "'");
        params.push_back(setting);
      }
    lossc::FrontendOptions options;
    if (vm.count("import-path"))
      options.importPaths = vm["import-path"].as<std::vector<std::string>>();
    if (vm.count("stdlib")) options.stdlibDir = vm["stdlib"].as<std::string>();
    std::vector<double> rho;
    for (int i = 0; i <= 1200; ++i)
      rho.push_back(lo + (hi - lo) * i / 1200);
    std::vector<lossc::PlotSeries> series;
    bool failed = false;
    for (const std::string &file : args) {
      std::unique_ptr<lossc::Frontend> fe = lossc::runFrontend(file, options);
      lossc::MarginSamples samples;
      std::string error;
      if (!fe->ok() || !lossc::sampleMargin(*fe, rho, params, samples, error)) {
        printDiagnostics(*fe, json);
        if (!error.empty() && fe->ok())
          std::cerr << "lossc: error: " << file << ": " << error << "\n";
        failed = true;
        continue;
      }
      std::string label = fe->ir->name;
      for (const lossc::IrParam &p : fe->ir->params) {
        double v = p.defaultValue;
        for (const auto &[name, value] : params)
          if (name == p.name) v = value;
        label +=
            (&p == &fe->ir->params.front() ? " (" : ", ") + p.name + " " + lossc::formatShortest(v);
      }
      if (!fe->ir->params.empty()) label += ")";
      series.push_back({label, std::move(samples.value), std::move(samples.slope)});
    }
    if (failed) return kExitInputError;
    std::string svg = lossc::renderPlotSvg("loss and gradient against the margin", rho, series);
    std::string out = vm["output"].as<std::string>();
    std::string tmp = out + ".tmp";
    FILE *f = std::fopen(tmp.c_str(), "wb");
    if (!f || std::fwrite(svg.data(), 1, svg.size(), f) != svg.size() || std::fclose(f) != 0 ||
        std::rename(tmp.c_str(), out.c_str()) != 0) {
      std::remove(tmp.c_str());
      std::cerr << "lossc: error: cannot write '" << out << "'\n";
      return kExitInputError;
    }
    return kExitOk;
  }

  if (args.empty()) return usageError("no input file");
  if (args.size() > 1)
    return usageError("one input file at a time, got " + std::to_string(args.size()));
  const std::string &path = args[0];

  lossc::FrontendOptions options;
  if (vm.count("import-path"))
    options.importPaths = vm["import-path"].as<std::vector<std::string>>();
  if (vm.count("stdlib")) options.stdlibDir = vm["stdlib"].as<std::string>();

  if (command == "check") {
    if (vm.count("emit") || vm.count("output"))
      return usageError("check takes neither --emit nor -o");
    std::unique_ptr<lossc::Frontend> fe = lossc::runFrontend(path, options);
    lossc::CheckOptions checkOptions;
    checkOptions.strict = vm.count("strict") > 0;
    std::optional<lossc::ScreenReport> screen;
    if (fe->ok() && !vm.count("static-only")) {
      lossc::ScreenOptions screenOptions;
      screenOptions.stdlibDir = options.stdlibDir;
      screen = lossc::screenLoss(*fe, screenOptions);
    }
    lossc::CheckReport report = lossc::runCheck(*fe, checkOptions, screen ? &*screen : nullptr);
    std::string out;
    if (vm.count("json"))
      lossc::renderCheckJson(*fe, report, out);
    else
      lossc::renderCheckText(*fe, report, out);
    std::fputs(out.c_str(), stdout);
    return report.passed ? kExitOk : kExitInputError;
  }
  if (vm.count("json") || vm.count("strict"))
    return usageError("--json and --strict belong to 'check'");
  if (command == "eval") {
    if (!vm.count("inputs")) return usageError("eval needs --inputs IN.csv");
    std::unique_ptr<lossc::Frontend> fe = lossc::runFrontend(path, options);
    lossc::EvalOptions evalOptions;
    evalOptions.csvPath = vm["inputs"].as<std::string>();
    if (vm.count("param")) evalOptions.params = vm["param"].as<std::vector<std::string>>();
    evalOptions.f32 = vm.count("f32") > 0;
    std::string out, error;
    int rc = lossc::runEval(*fe, evalOptions, out, error);
    printDiagnostics(*fe, json);
    std::fputs(out.c_str(), stdout);
    if (!error.empty()) std::cerr << "lossc: error: " << error << "\n";
    return rc;
  }
  if (vm.count("inputs") || vm.count("param") || vm.count("f32"))
    return usageError("--inputs, --param and --f32 belong to 'eval'");

  if (vm.count("emit")) {
    std::string stage = vm["emit"].as<std::string>();
    if (stage == "tokens") {
      lossc::SourceManager sources;
      lossc::DiagEngine diags(sources);
      std::string text, error;
      if (!lossc::readFile(path, options.limits.maxSourceBytes, text, error)) {
        diags.report(lossc::DiagId::E0001, {}, "cannot read '" + path + "': " + error);
      } else {
        std::string out;
        if (lossc::dumpTokens(sources, sources.add(path, std::move(text)), options.limits, diags,
                              out))
          std::fputs(out.c_str(), stdout);
      }
      std::string rendered;
      if (json)
        diags.renderJson(rendered);
      else
        diags.renderText(rendered);
      std::fputs(rendered.c_str(), stderr);
      return diags.hasErrors() ? kExitInputError : kExitOk;
    }
    if (stage != "ast" && stage != "ir" && stage != "grad" && stage != "llvm" && stage != "asm")
      return usageError("unknown stage '" + stage +
                        "' for --emit (tokens, ast, ir, grad, llvm, asm)");
    std::unique_ptr<lossc::Frontend> fe = lossc::runFrontend(path, options);
    std::string out;
    if (stage == "ast") {
      if (!fe->program.modules.empty() && !fe->diags.hasErrors())
        for (const lossc::Module &m : fe->program.modules)
          lossc::printAst(fe->program.ast, m, fe->sources, out);
    } else if (stage == "ir") {
      if (fe->ok()) lossc::printIr(*fe->ir, fe->sources, out);
    } else if (stage == "grad") {
      if (fe->ok()) out = lossc::printGradientIr(*fe);
    } else if (fe->ok()) {
      if (std::unique_ptr<lossc::BackendModule> bm = lossc::buildModule(*fe))
        out = stage == "llvm" ? lossc::printLlvmIr(*bm) : lossc::printAssembly(*bm);
    }
    printDiagnostics(*fe, json);
    if (fe->diags.hasErrors()) return kExitInputError;
    std::fputs(out.c_str(), stdout);
    return kExitOk;
  }

  std::unique_ptr<lossc::Frontend> fe = lossc::runFrontend(path, options);
  std::unique_ptr<lossc::BackendModule> bm;
  if (fe->ok()) bm = lossc::buildModule(*fe);
  bool written = bm && (!vm.count("output") ||
                        lossc::writeSharedObject(*fe, *bm, vm["output"].as<std::string>()));
  printDiagnostics(*fe, json);
  return written ? kExitOk : kExitInputError;
}
