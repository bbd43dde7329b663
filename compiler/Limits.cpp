// Pre-parse limits: byte checks and a streaming token scan.
#include "Limits.h"

#include <string>
#include <vector>

#include "LossLexer.h"
#include "antlr4-runtime.h"

namespace lossc {

using lossc_grammar::LossLexer;

namespace {
// Length of the UTF-8 sequence starting at s[i], or 0 when it is malformed (overlong forms,
// surrogates and code points above U+10FFFF included).
size_t utf8SequenceLength(const std::string &s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0)
    n = 2, cp = c & 0x1F;
  else if ((c & 0xF0) == 0xE0)
    n = 3, cp = c & 0x0F;
  else if ((c & 0xF8) == 0xF0)
    n = 4, cp = c & 0x07;
  else
    return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    unsigned char d = static_cast<unsigned char>(s[i + k]);
    if ((d & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (d & 0x3F);
  }
  static const uint32_t minimum[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < minimum[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

SourceLoc tokenLoc(uint32_t file, const antlr4::Token &t) {
  uint32_t length = static_cast<uint32_t>(t.getStopIndex() - t.getStartIndex() + 1);
  return {file, static_cast<uint32_t>(t.getLine()),
          static_cast<uint32_t>(t.getCharPositionInLine() + 1), length};
}
} // namespace

bool checkSourceBytes(const SourceManager &sources, uint32_t file, const Limits &limits,
                      DiagEngine &diags) {
  const std::string &text = sources.text(file);
  if (text.size() > limits.maxSourceBytes) {
    diags
        .report(DiagId::E0002, sources.locForOffset(file, 0),
                "source file is larger than the limit of " + std::to_string(limits.maxSourceBytes) +
                    " bytes")
        .help("a loss is a few lines; split helpers into modules and `import` them");
    return false;
  }
  for (size_t i = 0; i < text.size();) {
    if (text[i] == '\0') {
      diags.report(DiagId::E0004, sources.locForOffset(file, i),
                   "source contains a NUL byte (is this a binary file?)");
      return false;
    }
    size_t n = utf8SequenceLength(text, i);
    if (n == 0) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(text[i]));
      diags
          .report(DiagId::E0003, sources.locForOffset(file, i),
                  std::string("invalid UTF-8 byte ") + hex + " in the source")
          .help("save the file as UTF-8");
      return false;
    }
    i += n;
  }
  return true;
}

bool checkTokens(antlr4::Lexer &lexer, const SourceManager &, uint32_t file, const Limits &limits,
                 DiagEngine &diags) {
  // Nesting is estimated conservatively from tokens alone: every open bracket, and every prefix
  // or right-associative operator (unary -, +, not, !, if/then/else, **) since the start of the
  // statement in the enclosing bracket, costs one level of parser recursion.
  std::vector<uint32_t> chains{0}; // per open bracket: prefix operators seen in it
  uint32_t depth = 0;
  size_t count = 0;
  bool ok = true;
  size_t prevType = antlr4::Token::INVALID_TYPE;
  auto operandEnded = [&] {
    return prevType == LossLexer::NUMBER || prevType == LossLexer::IDENT ||
           prevType == LossLexer::RPAREN || prevType == LossLexer::RBRACK ||
           prevType == LossLexer::TRUE || prevType == LossLexer::FALSE;
  };
  for (;;) {
    std::unique_ptr<antlr4::Token> t = lexer.nextToken();
    size_t type = t->getType();
    if (type == antlr4::Token::EOF) break;
    if (type == LossLexer::UNTERMINATED_COMMENT) {
      SourceLoc open = tokenLoc(file, *t);
      open.length = 2;
      diags.report(DiagId::E0103, open, "unterminated /* comment").help("close it with */");
      return false;
    }
    if (t->getChannel() != antlr4::Token::DEFAULT_CHANNEL) continue;
    SourceLoc loc = tokenLoc(file, *t);
    if (type == LossLexer::STRAY) {
      std::string text = t->getText();
      std::string message = "unexpected character '" + text + "'";
      auto d = diags.report(DiagId::E0101, loc, message);
      if (text == "%")
        d.help("there is no remainder operator");
      else if (text == "\"" || text == "'")
        d.help("the language has no strings");
      else if (text == ".")
        d.help("a number needs a digit: write 0.5, not .");
      ok = false;
      prevType = type;
      continue;
    }
    if (++count > limits.maxTokens) {
      diags.report(DiagId::E0005, loc,
                   "more than " + std::to_string(limits.maxTokens) + " tokens in one file");
      return false;
    }
    if (type == LossLexer::IDENT && t->getText().size() > limits.maxIdentifier) {
      diags.report(DiagId::E0007, {loc.file, loc.line, loc.column, 1},
                   "identifier is longer than " + std::to_string(limits.maxIdentifier) +
                       " characters");
      ok = false;
    }
    bool deeper = false;
    switch (type) {
    case LossLexer::LPAREN:
    case LossLexer::LBRACK:
    case LossLexer::LBRACE:
      chains.push_back(0);
      ++depth;
      deeper = true;
      break;
    case LossLexer::RPAREN:
    case LossLexer::RBRACK:
    case LossLexer::RBRACE:
      if (chains.size() > 1) {
        depth -= 1 + chains.back();
        chains.pop_back();
      }
      break;
    case LossLexer::SEMI:
      depth -= chains.back();
      chains.back() = 0;
      break;
    case LossLexer::MINUS:
    case LossLexer::PLUS:
      if (operandEnded()) break;
      [[fallthrough]];
    case LossLexer::NOT:
    case LossLexer::BANG:
    case LossLexer::IF:
    case LossLexer::THEN:
    case LossLexer::ELSE:
    case LossLexer::POW:
      ++chains.back();
      ++depth;
      deeper = true;
      break;
    default: break;
    }
    if (deeper && depth > limits.maxNesting) {
      diags
          .report(DiagId::E0006, loc,
                  "expression nested deeper than " + std::to_string(limits.maxNesting) + " levels")
          .help("name intermediate values with `let`");
      return false;
    }
    prevType = type;
  }
  return ok;
}

} // namespace lossc
