// Limits on the input, checked before ANTLR's recursive-descent parser runs, so that no input,
// however large, deeply nested or malformed, can overflow the stack, hang or exhaust memory.
#pragma once

#include <cstddef>
#include <cstdint>

#include "Diagnostics.h"
#include "Source.h"

namespace antlr4 {
class Lexer;
}

namespace lossc {

struct Limits {
  size_t maxSourceBytes = 1 << 20; // 1 MiB per file
  size_t maxTokens = 100000;       // per file, comments and whitespace excluded
  uint32_t maxNesting = 128;       // brackets plus chains of prefix / right-associative operators
  size_t maxIdentifier = 256;      // characters in one name
  size_t maxInstructions = 100000; // typed IR instructions after inlining
  uint32_t maxInlineDepth = 64;    // nested calls of user functions
  size_t maxInputs = 64;           // inputs of one loss (and, separately, parameters)
  size_t maxImports = 64;          // modules loaded by one compilation
};

// Byte-level checks: size, NUL bytes, UTF-8 well-formedness. Reports and returns false on the
// first violation (the rest of a broken file is not worth reading).
bool checkSourceBytes(const SourceManager &sources, uint32_t file, const Limits &limits,
                      DiagEngine &diags);

// Token-level checks on a fresh lexer over the file: stray characters, unterminated comments,
// token count, nesting depth, identifier length. Tokens are pulled one by one and dropped, so
// memory stays bounded. Returns false when the file must not be parsed.
bool checkTokens(antlr4::Lexer &lexer, const SourceManager &sources, uint32_t file,
                 const Limits &limits, DiagEngine &diags);

} // namespace lossc
