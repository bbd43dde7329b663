// Diagnostic collection and rendering (text with source line and caret, or JSON).
#include "Diagnostics.h"

#include <algorithm>

#include "Json.h"

namespace lossc {

namespace {
const DiagInfo kDiagTable[] = {
#define LOSSC_DIAG(code, sev, name, summary) {#code, Severity::sev, name, summary},
#include "Diagnostics.def"
};

std::set<DiagId> &globalCodesSeen() {
  static std::set<DiagId> seen;
  return seen;
}

const char *severityName(Severity s) {
  return s == Severity::Error ? "error" : "warning";
}

void appendLocation(const SourceManager &sources, SourceLoc loc, std::string &out) {
  out += sources.path(loc.file);
  out += ':' + std::to_string(loc.line) + ':' + std::to_string(loc.column) + ": ";
}

// The source line, then a caret line whose whitespace mirrors the source's (tabs stay tabs).
void appendSnippet(const SourceManager &sources, SourceLoc loc, std::string &out) {
  std::string_view line = sources.lineText(loc.file, loc.line);
  out += "    ";
  out += line;
  out += "\n    ";
  uint32_t column = 1;
  size_t i = 0;
  for (; i < line.size() && column < loc.column; ++i) {
    unsigned char c = static_cast<unsigned char>(line[i]);
    if ((c & 0xC0) == 0x80) continue;
    out += c == '\t' ? '\t' : ' ';
    ++column;
  }
  out += '^';
  // Underline the rest of the span, but never past the end of the line.
  uint32_t remaining = 0;
  for (size_t j = i; j < line.size(); ++j)
    if ((static_cast<unsigned char>(line[j]) & 0xC0) != 0x80) ++remaining;
  for (uint32_t k = 1; k < loc.length && k < remaining; ++k)
    out += '~';
  out += '\n';
}
} // namespace

const DiagInfo &diagInfo(DiagId id) {
  return kDiagTable[static_cast<size_t>(id)];
}

const std::set<DiagId> &DiagEngine::codesSeen() {
  return globalCodesSeen();
}

DiagBuilder &DiagBuilder::note(std::string message, SourceLoc loc) {
  if (d_) d_->notes.push_back({DiagNote::Note, std::move(message), loc});
  return *this;
}

DiagBuilder &DiagBuilder::help(std::string message) {
  if (d_) d_->notes.push_back({DiagNote::Help, std::move(message), {}});
  return *this;
}

DiagBuilder DiagEngine::report(DiagId id, SourceLoc loc, std::string message) {
  globalCodesSeen().insert(id);
  if (truncated_) return DiagBuilder(nullptr);
  if (!seen_.emplace(id, loc.file, loc.line, loc.column, message).second)
    return DiagBuilder(nullptr);
  bool isError = diagInfo(id).severity == Severity::Error;
  if (isError && errors_ == maxErrors_) {
    truncated_ = true;
    ++errors_;
    globalCodesSeen().insert(DiagId::E0008);
    diags_.push_back({DiagId::E0008,
                      {},
                      "too many errors (" + std::to_string(maxErrors_) + "); stopping here",
                      {}});
    return DiagBuilder(nullptr);
  }
  (isError ? errors_ : warnings_)++;
  diags_.push_back({id, loc, std::move(message), {}});
  return DiagBuilder(&diags_.back());
}

void renderDiagnostic(const SourceManager &sources, const Diagnostic &d, std::string &out) {
  const DiagInfo &info = diagInfo(d.id);
  if (d.loc.valid())
    appendLocation(sources, d.loc, out);
  else
    out += "lossc: ";
  out += severityName(info.severity);
  out += '[';
  out += info.code;
  out += "]: ";
  out += d.message;
  out += '\n';
  if (d.loc.valid()) appendSnippet(sources, d.loc, out);
  for (const DiagNote &n : d.notes) {
    if (n.loc.valid()) appendLocation(sources, n.loc, out);
    out += n.kind == DiagNote::Note ? "note: " : "help: ";
    out += n.message;
    out += '\n';
    if (n.loc.valid()) appendSnippet(sources, n.loc, out);
  }
}

std::vector<const Diagnostic *> DiagEngine::sorted() const {
  std::vector<const Diagnostic *> v;
  for (const Diagnostic &d : diags_)
    v.push_back(&d);
  std::stable_sort(v.begin(), v.end(), [](const Diagnostic *a, const Diagnostic *b) {
    if (a->id == DiagId::E0008 || b->id == DiagId::E0008)
      return b->id == DiagId::E0008 && a->id != DiagId::E0008;
    return std::tie(a->loc.file, a->loc.line, a->loc.column) <
           std::tie(b->loc.file, b->loc.line, b->loc.column);
  });
  return v;
}

void DiagEngine::renderText(std::string &out) const {
  for (const Diagnostic *d : sorted())
    renderDiagnostic(sources_, *d, out);
  if (errors_ || warnings_) {
    auto plural = [](size_t n, const char *word) {
      return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
    };
    if (errors_ && warnings_)
      out += plural(errors_, "error") + " and " + plural(warnings_, "warning") + " generated.\n";
    else
      out += (errors_ ? plural(errors_, "error") : plural(warnings_, "warning")) + " generated.\n";
  }
}

namespace {
void writeLoc(JsonWriter &w, const SourceManager &sources, SourceLoc loc) {
  if (!loc.valid()) {
    w.key("file").null().key("line").null().key("column").null();
    return;
  }
  w.field("file", sources.path(loc.file))
      .field("line", loc.line)
      .field("column", loc.column)
      .field("length", loc.length)
      .field("source_line", sources.lineText(loc.file, loc.line));
}
} // namespace

void DiagEngine::writeJson(JsonWriter &w) const {
  w.key("diagnostics").beginArray();
  for (const Diagnostic *dp : sorted()) {
    const Diagnostic &d = *dp;
    const DiagInfo &info = diagInfo(d.id);
    w.beginObject()
        .field("severity", severityName(info.severity))
        .field("code", info.code)
        .field("name", info.name)
        .field("message", d.message);
    writeLoc(w, sources_, d.loc);
    w.key("notes").beginArray();
    for (const DiagNote &n : d.notes) {
      w.beginObject().field("kind", n.kind == DiagNote::Note ? "note" : "help");
      w.field("message", n.message);
      if (n.loc.valid()) writeLoc(w, sources_, n.loc);
      w.endObject();
    }
    w.endArray().endObject();
  }
  w.endArray()
      .field("errors", static_cast<uint64_t>(errors_))
      .field("warnings", static_cast<uint64_t>(warnings_));
}

void DiagEngine::renderJson(std::string &out) const {
  JsonWriter w(out);
  w.beginObject();
  writeJson(w);
  w.endObject();
  out += '\n';
}

} // namespace lossc
