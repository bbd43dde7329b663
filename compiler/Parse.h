// Parsing: source text -> AST. Runs the pre-parse limits, the ANTLR lexer and parser (syntax
// errors reported with panic-mode suppression so one mistake gives one error), then lowers the
// ANTLR tree into the AST of Ast.h.
#pragma once

#include <string>

#include "Ast.h"
#include "Diagnostics.h"
#include "Limits.h"
#include "Source.h"

namespace lossc {

// Parses `file` (already in `sources`) into `module`. Returns false when the file has errors, in
// which case `module` holds whatever could be recovered and must not be analysed further.
bool parseModule(const SourceManager &sources, uint32_t file, const Limits &limits, AstContext &ctx,
                 Module &module, DiagEngine &diags);

// `--emit=tokens`: one token per line, `line:col KIND 'text'`. Returns false (with diagnostics)
// when the file fails the pre-parse limits.
bool dumpTokens(const SourceManager &sources, uint32_t file, const Limits &limits,
                DiagEngine &diags, std::string &out);

} // namespace lossc
