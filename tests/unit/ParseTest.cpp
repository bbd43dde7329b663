// Parsing: precedence and associativity, the AST dump, the token dump.
#include <doctest/doctest.h>

#include <string>

#include "Parse.h"
#include "TestSupport.h"

using namespace lossc;

namespace {
// The S-expression of the returned expression of `loss l { inputs pairwise; return EXPR; }`.
std::string parseReturn(const std::string &expr) {
  auto fe = test::compile("loss l {\n  inputs pairwise;\n  return " + expr + ";\n}\n");
  REQUIRE(fe->program.modules.size() >= 1);
  std::string ast;
  printAst(fe->program.ast, fe->program.modules[0], fe->sources, ast);
  size_t at = ast.find("(return ");
  REQUIRE(at != std::string::npos);
  size_t end = ast.find(")  ;", at);
  return ast.substr(at + 8, end - at - 8);
}
} // namespace

TEST_CASE("precedence and associativity") {
  CHECK(parseReturn("1 + 2 * 3") == "(+ 1 (* 2 3))");
  CHECK(parseReturn("1 - 2 - 3") == "(- (- 1 2) 3)");
  CHECK(parseReturn("8 / 4 / 2") == "(/ (/ 8 4) 2)");
  CHECK(parseReturn("-x ** 2") == "(neg (** x 2))");
  CHECK(parseReturn("2 ** 3 ** 2") == "(** 2 (** 3 2))");
  CHECK(parseReturn("2 ** -1") == "(** 2 (neg 1))");
  CHECK(parseReturn("a < b + 1") == "(< a (+ b 1))");
  CHECK(parseReturn("not a < b and c > d or e == f") ==
        "(or (and (not (< a b)) (> c d)) (== e f))");
  CHECK(parseReturn("a && b || !c") == "(or (and a b) (not c))");
  CHECK(parseReturn("if a then b else c + 1") == "(if a b (+ c 1))");
  CHECK(parseReturn("1 + if a then b else c") == "(+ 1 (if a b c))");
  CHECK(parseReturn("f(x, g(y), -z)") == "(call f x (call g y) (neg z))");
  CHECK(parseReturn("((x))") == "x");
  CHECK(parseReturn("1.5e-3 + .5 + 2. + 3E2") == "(+ (+ (+ 0.0015 0.5) 2) 300)");
  CHECK(parseReturn("true or false") == "(or true false)");
}

TEST_CASE("declarations in the AST") {
  auto fe = test::compile(
      "# comment\nfn f(a, b) = a * b;\nfn g(x) { let y = x; return y; }\n"
      "loss l {\n  inputs pairwise;\n  input t: real;\n  param beta = 0.1 in (0, inf);\n"
      "  param e = 0 in [0, 0.5);\n  return f(policy_chosen_logps, g(t)) * beta * e;\n}\n");
  std::string ast;
  printAst(fe->program.ast, fe->program.modules[0], fe->sources, ast);
  CHECK(ast.find("(fn f (a b)  ; 2:4\n    (return (* a b))") != std::string::npos);
  CHECK(ast.find("(fn g (x)  ; 3:4\n    (let y x)  ; 3:11\n    (return y)") != std::string::npos);
  CHECK(ast.find("(input policy_chosen_logps real[B] diff)") != std::string::npos);
  CHECK(ast.find("(input reference_rejected_logps real[B])") != std::string::npos);
  CHECK(ast.find("(input t real)") != std::string::npos);
  CHECK(ast.find("(param beta 0.10000000000000001 (0, inf))") != std::string::npos);
  CHECK(ast.find("(param e 0 [0, 0.5))") != std::string::npos);
}

TEST_CASE("token dump") {
  SourceManager sources;
  DiagEngine diags(sources);
  uint32_t file = sources.add("t.loss", "let x = 1.5 ** y; // c\n");
  std::string out;
  REQUIRE(dumpTokens(sources, file, Limits{}, diags, out));
  CHECK(out == "1:1 LET 'let'\n1:5 IDENT 'x'\n1:7 ASSIGN '='\n1:9 NUMBER '1.5'\n1:13 POW '**'\n"
               "1:16 IDENT 'y'\n1:17 SEMI ';'\n");
}

TEST_CASE("syntax errors: one per broken statement, located after the previous token") {
  auto fe = test::compile("loss l {\n  inputs pairwise\n  return policy_chosen_logps;\n}\n");
  REQUIRE(test::codes(*fe) == std::vector<std::string>{"E0102"});
  const Diagnostic &d = fe->diags.diagnostics()[0];
  CHECK(d.message == "expected ';' here");
  CHECK(d.loc.line == 2);
  CHECK(d.loc.column == 18);

  auto eof = test::compile("loss l {\n  inputs pairwise;\n  return policy_chosen_logps;\n");
  REQUIRE(test::codes(*eof) == std::vector<std::string>{"E0102"});
  CHECK(eof->diags.diagnostics()[0].message.find("end of file") != std::string::npos);
}
