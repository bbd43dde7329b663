// Numbers and NAME=VALUE settings as text, written and read one way across lossc (the
// compiler's messages and IR, the runtime's errors, the trainer's tables and files).
#pragma once

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

namespace lossc {

// The shortest text that reads back as v exactly: "0.3", "1e-300", "inf", "-inf", "nan".
inline std::string formatShortest(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, ec == std::errc() ? end : buf);
}

// `digits` significant digits (printf's %g), for people: tables, messages, plot labels.
inline std::string formatSignificant(double v, int digits = 6) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

// "NAME=VALUE" with a non-empty name and a finite number: true with `out` set, else false.
inline bool parseSetting(const std::string &text, std::pair<std::string, double> &out) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) return false;
  const char *begin = text.c_str() + eq + 1;
  char *end = nullptr;
  double v = std::strtod(begin, &end);
  if (end == begin || *end != '\0' || !std::isfinite(v)) return false;
  out = {text.substr(0, eq), v};
  return true;
}

} // namespace lossc
