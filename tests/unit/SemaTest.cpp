// Semantic analysis: the typed IR it builds (shapes, CSE, folding, inlining, batch coupling)
// and the differentiability report.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "TestSupport.h"

using namespace lossc;

namespace {
std::unique_ptr<Frontend> body(const std::string &stmts, const std::string &decls = "") {
  return test::compile(decls + "loss l {\n  inputs pairwise;\n  param beta = 0.1 in (0, inf);\n" +
                       stmts + "\n}\n");
}

// The codes reported, less the unused-parameter warning for `beta` that body() declares.
std::vector<std::string> codes(const Frontend &fe) {
  std::vector<std::string> out;
  for (const std::string &c : test::codes(fe))
    if (c != "W0201") out.push_back(c);
  return out;
}

size_t countOps(const LossIr &ir, Op op) {
  size_t n = 0;
  for (const Inst &i : ir.insts)
    n += i.op == op;
  return n;
}
} // namespace

TEST_CASE("scalars broadcast against [B]; reductions give scalars") {
  auto fe =
      body("  let m = mean(policy_chosen_logps);\n  return (policy_chosen_logps - m) * beta;");
  REQUIRE(fe->ok());
  const LossIr &ir = *fe->ir;
  const Inst &result = ir.insts[ir.result];
  CHECK(result.op == Op::Mul);
  CHECK(result.type == Type::real(Shape::Batch));
  for (const Inst &i : ir.insts)
    if (i.op == Op::Mean) CHECK(i.type == Type::real());
  CHECK(ir.batchCoupled);
  CHECK(ir.minBatch == 1);
}

TEST_CASE("hash-consing merges equal expressions; constants fold; dead code goes") {
  auto fe = body(
      "  let a = softplus(policy_chosen_logps * (2 * 3));\n"
      "  let b = softplus(policy_chosen_logps * 6);\n  let _dead = exp(policy_rejected_logps);\n"
      "  return a + b;");
  REQUIRE(fe->ok());
  const LossIr &ir = *fe->ir;
  CHECK(countOps(ir, Op::Softplus) == 1);
  CHECK(countOps(ir, Op::Exp) == 0);
  CHECK(countOps(ir, Op::Input) == 1);
  bool six = false;
  for (const Inst &i : ir.insts)
    six |= i.op == Op::Const && i.value == 6;
  CHECK(six);
  // Operands always precede their users.
  for (size_t i = 0; i < ir.insts.size(); ++i)
    for (int k = 0; k < opInfo(ir.insts[i].op).arity; ++k)
      CHECK(ir.insts[i].operands[k] < i);
}

TEST_CASE("functions are inlined once per distinct argument list") {
  auto fe =
      body("  return f(policy_chosen_logps) + f(policy_chosen_logps) + f(policy_rejected_logps);",
           "fn f(x) = softplus(x) * tanh(x);\n");
  REQUIRE(fe->ok());
  CHECK(countOps(*fe->ir, Op::Softplus) == 2);
  CHECK(countOps(*fe->ir, Op::Tanh) == 2);
}

TEST_CASE("clamp lowers to max then min; min/max with one argument reduce") {
  auto fe = body("  return clamp(policy_chosen_logps, -1, 1) + max(policy_rejected_logps);");
  REQUIRE(fe->ok());
  CHECK(countOps(*fe->ir, Op::Max) == 1);
  CHECK(countOps(*fe->ir, Op::Min) == 1);
  CHECK(countOps(*fe->ir, Op::ReduceMax) == 1);
}

TEST_CASE("batch coupling and min_batch") {
  auto elementwise =
      body("  return softplus(-beta * (policy_chosen_logps - policy_rejected_logps));");
  REQUIRE(elementwise->ok());
  CHECK_FALSE(elementwise->ir->batchCoupled);
  CHECK(elementwise->ir->minBatch == 1);
  for (std::string coupling : {"std(policy_chosen_logps)", "var(policy_chosen_logps)"}) {
    auto fe = body("  return policy_chosen_logps * " + coupling + ";");
    REQUIRE(fe->ok());
    CHECK(fe->ir->batchCoupled);
    CHECK(fe->ir->minBatch == 2);
  }
  for (std::string coupling :
       {"sort(policy_chosen_logps)", "policy_chosen_logps * batch_size()",
        "policy_chosen_logps + index()", "policy_chosen_logps - min(policy_rejected_logps)"}) {
    auto fe = body("  return " + coupling + ";");
    REQUIRE(fe->ok());
    CHECK(fe->ir->batchCoupled);
    CHECK(fe->ir->minBatch == 1);
  }
}

TEST_CASE("parameters: defaults, bounds, openness") {
  auto fe = test::compile("loss l {\n  inputs pairwise;\n  param a = 0.1 in (0, inf);\n"
                          "  param b = 0 in [0, 0.5);\n  param c = -2;\n"
                          "  return policy_chosen_logps * a * b * c;\n}\n");
  REQUIRE(fe->ok());
  const auto &p = fe->ir->params;
  REQUIRE(p.size() == 3);
  CHECK(p[0].defaultValue == 0.1);
  CHECK((p[0].lo == 0 && p[0].loOpen && std::isinf(p[0].hi) && p[0].hiOpen));
  CHECK((p[1].lo == 0 && !p[1].loOpen && p[1].hi == 0.5 && p[1].hiOpen));
  CHECK((std::isinf(p[2].lo) && p[2].lo < 0 && std::isinf(p[2].hi)));
  CHECK(p[2].defaultValue == -2);
}

TEST_CASE("differentiability: flows, cut off, unused; non-smooth operations listed") {
  auto fe = body("  let x = beta * (policy_chosen_logps - policy_rejected_logps);\n"
                 "  return where(x < 0, 0.5, 1.0) * softplus(-x) + abs(x) + sort(x);");
  REQUIRE(fe->ok());
  REQUIRE(fe->diff.inputs.size() == 2);
  CHECK(fe->diff.inputs[0].status == InputGradient::Flows);
  CHECK(fe->diff.inputs[1].status == InputGradient::Flows);
  std::string all;
  for (const NonSmoothOp &op : fe->diff.nonSmooth)
    all += op.what + "\n";
  CHECK(all.find("comparison") != std::string::npos);
  CHECK(all.find("where/if") != std::string::npos);
  CHECK(all.find("abs") != std::string::npos);
  CHECK(all.find("sort") != std::string::npos);

  auto cut =
      body("  return softplus(-policy_chosen_logps) * where(policy_rejected_logps > 0, 1, 2);");
  REQUIRE(cut->ok());
  CHECK(cut->diff.inputs[1].status == InputGradient::CutOff);
  CHECK(cut->diff.inputs[1].cutAt.column > 0);
  CHECK(codes(*cut) == std::vector<std::string>{"W0401"});

  auto stop = body("  return softplus(-stopgrad(policy_chosen_logps - policy_rejected_logps));");
  CHECK_FALSE(stop->ok());
  CHECK(codes(*stop) == std::vector<std::string>{"E0402"});
}

TEST_CASE("one error per mistake: an unknown name does not cascade into type errors") {
  auto fe = body("  let a = nope * 2;\n  let b = mean(a) + a;\n  return where(a > 0, b, a);");
  CHECK(codes(*fe) == std::vector<std::string>{"E0201"});
}

TEST_CASE("name errors and type errors in one run") {
  auto fe = body("  let a = nope;\n  let b = 0.5 * (policy_chosen_logps > 0);\n  return a + b;");
  CHECK(codes(*fe) == std::vector<std::string>{"E0201", "E0302"});
}
