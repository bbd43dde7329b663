// Limits before parsing: any input ends in a located error, never a crash, a hang or a blow-up.
#include <doctest/doctest.h>

#include <string>

#include "TestSupport.h"

using namespace lossc;

TEST_CASE("a megabyte of '(' is a nesting error at the first level too deep") {
  std::string text(1 << 20, '(');
  auto fe = test::compile(text);
  REQUIRE(test::codes(*fe) == std::vector<std::string>{"E0006"});
  const Diagnostic &d = fe->diags.diagnostics()[0];
  CHECK(d.loc.line == 1);
  CHECK(d.loc.column == 129);
}

TEST_CASE("source larger than the limit") {
  std::string text((1 << 20) + 1, ' ');
  auto fe = test::compile(text);
  CHECK(test::codes(*fe) == std::vector<std::string>{"E0002"});
}

TEST_CASE("NUL bytes and invalid UTF-8 are located errors") {
  auto nul = test::compile(std::string("loss l {\n  inputs pairwise;\0\n}", 30));
  REQUIRE(test::codes(*nul) == std::vector<std::string>{"E0004"});
  CHECK(nul->diags.diagnostics()[0].loc.line == 2);
  CHECK(nul->diags.diagnostics()[0].loc.column == 19);

  for (std::string bad : {"\xff", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"}) {
    auto fe = test::compile("loss l { " + bad + " }");
    CAPTURE(bad);
    REQUIRE(test::codes(*fe) == std::vector<std::string>{"E0003"});
    CHECK(fe->diags.diagnostics()[0].loc.column == 10);
  }
  // Valid multi-byte characters outside comments are stray characters, not encoding errors.
  auto ok = test::compile("loss l { β }");
  CHECK(test::codes(*ok) == std::vector<std::string>{"E0101"});
}

TEST_CASE("token count, identifier length") {
  std::string many = "loss l { inputs pairwise; return policy_chosen_logps";
  for (int i = 0; i < 60000; ++i)
    many += " + 1";
  many += "; }";
  auto fe = test::compile(many);
  CHECK(test::codes(*fe) == std::vector<std::string>{"E0005"});

  auto longName = test::compile("loss l { inputs pairwise; let " + std::string(300, 'a') +
                                " = 1; return policy_chosen_logps; }");
  CHECK(test::codes(*longName) == std::vector<std::string>{"E0007"});
}

TEST_CASE("long chains of prefix and right-associative operators are bounded") {
  for (std::string op : {"-", "not ", "2 ** ", "if true then 1 else "}) {
    std::string text = "loss l { inputs pairwise; return ";
    for (int i = 0; i < 100000 / static_cast<int>(op.size()); ++i)
      text += op;
    text += "1; }";
    auto fe = test::compile(text);
    CAPTURE(op);
    CHECK(test::codes(*fe) == std::vector<std::string>{"E0006"});
  }
  // Within the limit, a deep but legal expression compiles.
  std::string text = "loss l { inputs pairwise; return policy_chosen_logps - policy_rejected_logps";
  for (int i = 0; i < 100; ++i)
    text += " * (1";
  for (int i = 0; i < 100; ++i)
    text += ")";
  text += "; }";
  auto fe = test::compile(text);
  CHECK(test::codes(*fe) == std::vector<std::string>{});
}

TEST_CASE("inlining: exponential growth and deep call chains are refused") {
  // f_k(x) = f_{k-1}(2 x) + f_{k-1}(3 x): 2^40 distinct calls without the limit.
  std::string text = "fn f0(x) = exp(x);\n";
  for (int k = 1; k <= 40; ++k)
    text += "fn f" + std::to_string(k) + "(x) = f" + std::to_string(k - 1) + "(2 * x) + f" +
            std::to_string(k - 1) + "(3 * x);\n";
  text += "loss l { inputs pairwise; return f40(policy_chosen_logps); }";
  auto fe = test::compile(text);
  CHECK(test::codes(*fe) == std::vector<std::string>{"E0308"});

  std::string chain = "fn g0(x) = x;\n";
  for (int k = 1; k <= 100; ++k)
    chain += "fn g" + std::to_string(k) + "(x) = g" + std::to_string(k - 1) + "(x) + 1;\n";
  chain += "loss l { inputs pairwise; return g100(policy_chosen_logps); }";
  auto deep = test::compile(chain);
  CHECK(test::codes(*deep) == std::vector<std::string>{"E0309"});
}

TEST_CASE("too many inputs") {
  std::string text = "loss l {\n";
  for (int i = 0; i < 65; ++i)
    text += "  input x" + std::to_string(i) + ": real[B] diff;\n";
  text += "  return x0;\n}\n";
  auto fe = test::compile(text);
  CHECK(test::hasCode(*fe, "E0310"));
}
