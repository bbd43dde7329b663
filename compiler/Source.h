// Source buffers and locations. A SourceManager owns the text of every file the front end reads
// (the main .loss file and its imports); a SourceLoc names a file, a 1-based line and column
// (columns count Unicode code points) and the length of the span it covers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lossc {

struct SourceLoc {
  uint32_t file = 0;   // index into SourceManager; 0 is "no file"
  uint32_t line = 0;   // 1-based; 0 when unknown
  uint32_t column = 0; // 1-based, in code points
  uint32_t length = 1; // code points covered, for the caret line

  bool valid() const { return file != 0 && line != 0; }
};

class SourceManager {
public:
  SourceManager();

  // Adds a buffer and returns its file id (never 0).
  uint32_t add(std::string path, std::string text);

  const std::string &path(uint32_t file) const { return files_[file].path; }
  const std::string &text(uint32_t file) const { return files_[file].text; }
  uint32_t fileCount() const { return static_cast<uint32_t>(files_.size()) - 1; }

  // The text of a 1-based line without its line terminator; empty when out of range.
  std::string_view lineText(uint32_t file, uint32_t line) const;

  // The location of a byte offset in a file (line and code-point column).
  SourceLoc locForOffset(uint32_t file, size_t offset, uint32_t length = 1) const;

private:
  struct File {
    std::string path;
    std::string text;
    std::vector<size_t> lineStarts; // byte offset of each line's first character
  };
  std::vector<File> files_;
};

// Reads a file, but never more than maxBytes + 1 bytes (so the caller can tell it is too large).
// Returns false and sets `error` (strerror text) when it cannot be read.
bool readFile(const std::string &path, size_t maxBytes, std::string &contents, std::string &error);

} // namespace lossc
