// A minimal streaming JSON writer: enough for diagnostics and reports, no parsing, no DOM.
// Commas are placed automatically; keys and strings are escaped; non-finite numbers are written
// as the strings "inf", "-inf" and "nan" (JSON has no literal for them).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lossc {

void appendJsonString(std::string &out, std::string_view s);

class JsonWriter {
public:
  explicit JsonWriter(std::string &out) : out_(out) {}

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
  std::string &out_;
  std::vector<bool> first_; // per open container: no element written yet
  bool afterKey_ = false;
};

} // namespace lossc
