// The JSON writer: commas, escaping, numbers in their shortest exact form, non-finite numbers,
// and the indented layout.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "Json.h"

using namespace lossc;

TEST_CASE("json: compact output, escaping, shortest exact numbers") {
  std::string out;
  JsonWriter w(out);
  w.beginObject().field("a", 0.3).field("b", int64_t(-2)).field("s", "q\"\\\n\x01");
  w.key("list").beginArray().value(1e-300).value(0.1 + 0.2).value(true).null().endArray();
  w.field("nan", NAN).field("inf", -INFINITY).key("empty").beginObject().endObject();
  w.endObject();
  CHECK(out == "{\"a\":0.3,\"b\":-2,\"s\":\"q\\\"\\\\\\n\\u0001\",\"list\":[1e-300,"
               "0.30000000000000004,true,null],\"nan\":\"nan\",\"inf\":\"-inf\",\"empty\":{}}");
  // Every finite double reads back exactly.
  for (double v : {0.1, 1.0 / 3, 6.02214076e23, 5e-324, -1.7976931348623157e308}) {
    std::string one;
    JsonWriter(one).value(v);
    CHECK(std::strtod(one.c_str(), nullptr) == v);
  }
}

TEST_CASE("json: indented output puts each element on its own line") {
  std::string out;
  JsonWriter w(out, 2);
  w.beginObject().field("k", 1.5).key("runs").beginArray();
  w.beginObject().field("x", int64_t(1)).endObject();
  w.beginArray().endArray();
  w.endArray().endObject();
  CHECK(out == "{\n  \"k\": 1.5,\n  \"runs\": [\n    {\n      \"x\": 1\n    },\n    []\n  ]\n}");
}
