// A minimal streaming JSON writer: enough for diagnostics and reports, no parsing, no DOM.
// Commas are placed automatically; keys and strings are escaped; numbers are written in the
// shortest form that reads back exactly, non-finite ones as the strings "inf", "-inf" and "nan"
// (JSON has no literal for them).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lossc {

void appendJsonString(std::string &out, std::string_view s);

class JsonWriter {
public:
  // indent 0: compact, one line; otherwise each element on its own line, indented by `indent`
  // spaces per level.
  explicit JsonWriter(std::string &out, int indent = 0) : out_(out), indent_(indent) {}

  JsonWriter &beginObject();
  JsonWriter &endObject();
  JsonWriter &beginArray();
  JsonWriter &endArray();
  JsonWriter &key(std::string_view k);
  JsonWriter &value(std::string_view s);
  JsonWriter &value(const char *s) { return value(std::string_view(s)); }
  JsonWriter &value(double d);
  JsonWriter &value(int64_t i);
  JsonWriter &value(uint64_t i);
  JsonWriter &value(int i) { return value(static_cast<int64_t>(i)); }
  JsonWriter &value(unsigned i) { return value(static_cast<uint64_t>(i)); }
  JsonWriter &value(bool b);
  JsonWriter &null();

  template <class T> JsonWriter &field(std::string_view k, const T &v) { return key(k).value(v); }

private:
  void separate();
  void newline(size_t depth);
  std::string &out_;
  int indent_;
  std::vector<bool> first_; // per open container: no element written yet
  bool afterKey_ = false;
};

} // namespace lossc
