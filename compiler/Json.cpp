// JSON writer implementation.
#include "Json.h"

#include "lossc/text.h"

#include <cmath>
#include <cstdio>

namespace lossc {

void appendJsonString(std::string &out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    default:
      if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += static_cast<char>(c);
      }
    }
  }
  out += '"';
}

void JsonWriter::newline(size_t depth) {
  if (indent_ <= 0) return;
  out_ += '\n';
  out_.append(depth * indent_, ' ');
}

void JsonWriter::separate() {
  if (afterKey_) {
    afterKey_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) out_ += ',';
    first_.back() = false;
    newline(first_.size());
  }
}

JsonWriter &JsonWriter::beginObject() {
  separate();
  out_ += '{';
  first_.push_back(true);
  return *this;
}
JsonWriter &JsonWriter::endObject() {
  if (!first_.back()) newline(first_.size() - 1);
  out_ += '}';
  first_.pop_back();
  return *this;
}
JsonWriter &JsonWriter::beginArray() {
  separate();
  out_ += '[';
  first_.push_back(true);
  return *this;
}
JsonWriter &JsonWriter::endArray() {
  if (!first_.back()) newline(first_.size() - 1);
  out_ += ']';
  first_.pop_back();
  return *this;
}
JsonWriter &JsonWriter::key(std::string_view k) {
  separate();
  appendJsonString(out_, k);
  out_ += indent_ > 0 ? ": " : ":";
  afterKey_ = true;
  return *this;
}
JsonWriter &JsonWriter::value(std::string_view s) {
  separate();
  appendJsonString(out_, s);
  return *this;
}
JsonWriter &JsonWriter::value(double d) {
  separate();
  if (std::isnan(d)) {
    out_ += "\"nan\"";
  } else if (std::isinf(d)) {
    out_ += d > 0 ? "\"inf\"" : "\"-inf\"";
  } else {
    out_ += formatShortest(d);
  }
  return *this;
}
JsonWriter &JsonWriter::value(int64_t i) {
  separate();
  out_ += std::to_string(i);
  return *this;
}
JsonWriter &JsonWriter::value(uint64_t i) {
  separate();
  out_ += std::to_string(i);
  return *this;
}
JsonWriter &JsonWriter::value(bool b) {
  separate();
  out_ += b ? "true" : "false";
  return *this;
}
JsonWriter &JsonWriter::null() {
  separate();
  out_ += "null";
  return *this;
}

} // namespace lossc
