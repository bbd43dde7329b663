// Diagnostics: the records every stage reports (code, location, message, notes), the engine that
// collects them, and their rendering as text (file:line:col: error[E0301]: ..., source line,
// caret, note:/help: lines) or as JSON for LLM repair loops.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "Source.h"

namespace lossc {

class JsonWriter;

enum class DiagId : uint16_t {
#define LOSSC_DIAG(code, sev, name, summary) code,
#include "Diagnostics.def"
  Count
};

enum class Severity : uint8_t { Error, Warning };

struct DiagInfo {
  const char *code; // "E0301"
  Severity severity;
  const char *name; // "scalar-return"
  const char *summary;
};
const DiagInfo &diagInfo(DiagId id);
constexpr size_t diagCount() {
  return static_cast<size_t>(DiagId::Count);
}

struct DiagNote {
  enum Kind : uint8_t { Note, Help } kind;
  std::string message;
  SourceLoc loc; // optional: invalid when the note has no location
};

struct Diagnostic {
  DiagId id;
  SourceLoc loc;
  std::string message;
  std::vector<DiagNote> notes;

  Severity severity() const { return diagInfo(id).severity; }
};

// A builder returned by DiagEngine::report; notes are chained onto it.
class DiagBuilder {
public:
  explicit DiagBuilder(Diagnostic *d) : d_(d) {}
  DiagBuilder &note(std::string message, SourceLoc loc = {});
  DiagBuilder &help(std::string message);

private:
  Diagnostic *d_; // null when the diagnostic was suppressed
};

class DiagEngine {
public:
  explicit DiagEngine(const SourceManager &sources, size_t maxErrors = 50)
      : sources_(sources), maxErrors_(maxErrors) {}

  // Records a diagnostic. An exact repeat (same code, place and message, as when one inlined
  // function is called twice) is dropped, and so is everything past maxErrors errors.
  DiagBuilder report(DiagId id, SourceLoc loc, std::string message);

  const std::deque<Diagnostic> &diagnostics() const { return diags_; }
  size_t errorCount() const { return errors_; }
  size_t warningCount() const { return warnings_; }
  bool hasErrors() const { return errors_ != 0; }

  void renderText(std::string &out) const;
  void renderJson(std::string &out) const;
  // Writes the keys "diagnostics", "errors" and "warnings" into the object being written.
  void writeJson(JsonWriter &w) const;

  // Every code reported by any engine in this process (for the test that each code is exercised).
  static const std::set<DiagId> &codesSeen();

private:
  // In source order (file, line, column); the too-many-errors marker last.
  std::vector<const Diagnostic *> sorted() const;

  const SourceManager &sources_;
  size_t maxErrors_;
  size_t errors_ = 0, warnings_ = 0;
  bool truncated_ = false;
  std::deque<Diagnostic> diags_; // a deque: a DiagBuilder's pointer stays valid
  std::set<std::tuple<DiagId, uint32_t, uint32_t, uint32_t, std::string>> seen_;
};

// Renders one diagnostic the way renderText does (used for single messages in tools).
void renderDiagnostic(const SourceManager &sources, const Diagnostic &d, std::string &out);

} // namespace lossc
