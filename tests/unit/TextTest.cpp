// Numbers and NAME=VALUE settings as text (lossc/text.h).
#include <doctest/doctest.h>

#include <cmath>

#include "lossc/text.h"

using namespace lossc;

TEST_CASE("text: shortest exact numbers, significant digits") {
  CHECK(formatShortest(0.3) == "0.3");
  CHECK(formatShortest(0.1 + 0.2) == "0.30000000000000004");
  CHECK(formatShortest(1e-300) == "1e-300");
  CHECK(formatShortest(-2) == "-2");
  CHECK(formatShortest(INFINITY) == "inf");
  CHECK(formatShortest(-INFINITY) == "-inf");
  CHECK(formatShortest(NAN) == "nan");
  CHECK(formatShortest(5e-324) == "5e-324");
  CHECK(formatSignificant(2.0 / 3) == "0.666667");
  CHECK(formatSignificant(123456789, 4) == "1.235e+08");
}

TEST_CASE("text: NAME=VALUE settings") {
  std::pair<std::string, double> s;
  REQUIRE(parseSetting("beta=0.05", s));
  CHECK(s.first == "beta");
  CHECK(s.second == 0.05);
  REQUIRE(parseSetting("floor=-1e3", s));
  CHECK(s.second == -1000);
  for (const char *bad : {"beta", "beta=", "=1", "beta=x", "beta=1x", "beta=nan", "beta=1e400",
                          "beta=inf", ""}) {
    CAPTURE(bad);
    CHECK_FALSE(parseSetting(bad, s));
  }
}
