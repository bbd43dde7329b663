// Source buffers: line tables and offset-to-location mapping.
#include "Source.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace lossc {

SourceManager::SourceManager() {
  files_.push_back({});
}

uint32_t SourceManager::add(std::string path, std::string text) {
  File f{std::move(path), std::move(text), {0}};
  for (size_t i = 0; i < f.text.size(); ++i)
    if (f.text[i] == '\n') f.lineStarts.push_back(i + 1);
  files_.push_back(std::move(f));
  return static_cast<uint32_t>(files_.size()) - 1;
}

std::string_view SourceManager::lineText(uint32_t file, uint32_t line) const {
  if (file == 0 || file >= files_.size()) return {};
  const File &f = files_[file];
  if (line == 0 || line > f.lineStarts.size()) return {};
  size_t begin = f.lineStarts[line - 1];
  size_t end = line < f.lineStarts.size() ? f.lineStarts[line] - 1 : f.text.size();
  if (end > begin && f.text[end - 1] == '\r') --end;
  return std::string_view(f.text).substr(begin, end - begin);
}

SourceLoc SourceManager::locForOffset(uint32_t file, size_t offset, uint32_t length) const {
  const File &f = files_[file];
  offset = std::min(offset, f.text.size());
  auto it = std::upper_bound(f.lineStarts.begin(), f.lineStarts.end(), offset);
  uint32_t line = static_cast<uint32_t>(it - f.lineStarts.begin());
  size_t begin = f.lineStarts[line - 1];
  uint32_t column = 1;
  for (size_t i = begin; i < offset; ++i)
    if ((static_cast<unsigned char>(f.text[i]) & 0xC0) != 0x80) ++column;
  return {file, line, column, length};
}

bool readFile(const std::string &path, size_t maxBytes, std::string &contents, std::string &error) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    error = "is a directory";
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = std::strerror(errno);
    return false;
  }
  // Read at most maxBytes + 1 so that /dev/zero or a huge file cannot exhaust memory; the caller
  // sees the size is over its limit.
  contents.clear();
  char buffer[1 << 16];
  while (contents.size() <= maxBytes && in.read(buffer, sizeof buffer).gcount() > 0) {
    contents.append(buffer, static_cast<size_t>(in.gcount()));
    if (!in) break;
  }
  if (in.bad()) {
    error = std::strerror(errno);
    return false;
  }
  if (contents.size() > maxBytes + 1) contents.resize(maxBytes + 1);
  return true;
}

} // namespace lossc
