// ANTLR tree -> AST. Each build function handles one grammar rule of grammar/Loss.g4.
#include "Parse.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "LossLexer.h"
#include "LossParser.h"
#include "antlr4-runtime.h"

namespace lossc {

using lossc_grammar::LossLexer;
using lossc_grammar::LossParser;

namespace {

SourceLoc tokenLoc(uint32_t file, const antlr4::Token *t) {
  if (!t) return {};
  size_t start = t->getStartIndex(), stop = t->getStopIndex();
  uint32_t length =
      stop >= start && stop != INVALID_INDEX ? static_cast<uint32_t>(stop - start + 1) : 1;
  return {file, static_cast<uint32_t>(t->getLine()),
          static_cast<uint32_t>(t->getCharPositionInLine() + 1), length};
}

// The span from a rule's first token to its last, clipped to the first line.
SourceLoc spanLoc(uint32_t file, antlr4::ParserRuleContext *c) {
  SourceLoc loc = tokenLoc(file, c->getStart());
  const antlr4::Token *stop = c->getStop();
  if (stop && stop->getLine() == c->getStart()->getLine() &&
      stop->getStopIndex() >= c->getStart()->getStartIndex())
    loc.length = static_cast<uint32_t>(stop->getStopIndex() - c->getStart()->getStartIndex() + 1);
  return loc;
}

// Turns ANTLR syntax errors into diagnostics. After one error, further errors are suppressed
// until the parser has passed a `;` or `}` (panic mode, as in clox): the first error is the
// informative one and the rest of the statement is noise.
class SyntaxErrorListener : public antlr4::BaseErrorListener {
public:
  SyntaxErrorListener(uint32_t file, DiagEngine &diags, antlr4::CommonTokenStream &tokens)
      : file_(file), diags_(diags), tokens_(tokens) {}

  size_t errors() const { return errors_; }

  void syntaxError(antlr4::Recognizer *recognizer, antlr4::Token *offending, size_t, size_t,
                   const std::string &msg, std::exception_ptr) override {
    size_t index = offending ? offending->getTokenIndex() : 0;
    if (errors_ && suppressed(index)) return;
    lastErrorIndex_ = index;
    ++errors_;

    auto *parser = dynamic_cast<antlr4::Parser *>(recognizer);
    std::string found = describe(offending);
    std::string expected = parser ? expectedTokens(*parser) : "";
    SourceLoc loc = tokenLoc(file_, offending);

    std::string message;
    if (msg.rfind("missing ", 0) == 0 && parser) {
      // ANTLR would insert a token: point just after the previous token, where it belongs.
      std::string what = msg.substr(8, msg.find(" at ") - 8);
      if (const antlr4::Token *prev = previousToken(index)) {
        loc = tokenLoc(file_, prev);
        loc.column += loc.length;
        loc.length = 1;
      }
      message = "expected " + displayName(what) + " here";
    } else if (!expected.empty()) {
      message = "expected " + expected + ", found " + found;
    } else {
      message = "unexpected " + found;
    }
    auto d = diags_.report(DiagId::E0102, loc, message);
    if (offending && offending->getType() == LossLexer::EQ &&
        expected.find("'='") != std::string::npos)
      d.help("`==` compares; a definition is `let name = value;`");
  }

private:
  bool suppressed(size_t index) {
    for (size_t i = lastErrorIndex_; i < index && i < tokens_.size(); ++i) {
      size_t type = tokens_.get(i)->getType();
      if (type == LossLexer::SEMI || type == LossLexer::RBRACE) return false;
    }
    return true;
  }

  const antlr4::Token *previousToken(size_t index) {
    for (size_t i = index; i-- > 0;) {
      const antlr4::Token *t = tokens_.get(i);
      if (t->getChannel() == antlr4::Token::DEFAULT_CHANNEL) return t;
    }
    return nullptr;
  }

  static std::string displayName(std::string s) {
    if (s == "<EOF>") return "end of file";
    return s;
  }

  static std::string describe(const antlr4::Token *t) {
    if (!t || t->getType() == antlr4::Token::EOF) return "end of file";
    if (t->getType() == LossLexer::IDENT) return "name '" + t->getText() + "'";
    if (t->getType() == LossLexer::NUMBER) return "number " + t->getText();
    return "'" + t->getText() + "'";
  }

  // A short list of what would have been accepted, or "" when that list is too long to help.
  static std::string expectedTokens(antlr4::Parser &parser) {
    antlr4::misc::IntervalSet set = parser.getExpectedTokens();
    std::vector<std::string> names;
    for (size_t t : set.toList()) {
      if (t == LossLexer::IDENT)
        names.push_back("a name");
      else if (t == LossLexer::NUMBER)
        names.push_back("a number");
      else if (t == antlr4::Token::EOF)
        names.push_back("end of file");
      else
        names.push_back(parser.getVocabulary().getDisplayName(t));
    }
    // When an expression may start here the list is long; say what is meant.
    if (set.contains(static_cast<size_t>(LossLexer::NUMBER)) &&
        set.contains(static_cast<size_t>(LossLexer::LPAREN)) &&
        set.contains(static_cast<size_t>(LossLexer::IDENT)))
      return "an expression";
    if (names.empty() || names.size() > 4) return "";
    std::string s;
    for (size_t i = 0; i < names.size(); ++i) {
      if (i) s += i + 1 == names.size() ? " or " : ", ";
      s += names[i];
    }
    return s;
  }

  uint32_t file_;
  DiagEngine &diags_;
  antlr4::CommonTokenStream &tokens_;
  size_t errors_ = 0;
  size_t lastErrorIndex_ = 0;
};

// ANTLR's default recovery may delete a `;` or `}` to continue an expression into the next
// statement, which turns one mistake into a cascade. Keeping statement ends in place makes it
// resynchronize at the end of the broken statement instead.
class StatementErrorStrategy : public antlr4::DefaultErrorStrategy {
protected:
  antlr4::Token *singleTokenDeletion(antlr4::Parser *recognizer) override {
    size_t type = recognizer->getCurrentToken()->getType();
    if (type == LossLexer::SEMI || type == LossLexer::RBRACE) return nullptr;
    return antlr4::DefaultErrorStrategy::singleTokenDeletion(recognizer);
  }
};

class TreeBuilder {
public:
  TreeBuilder(uint32_t file, AstContext &ctx, DiagEngine &diags)
      : file_(file), ctx_(ctx), diags_(diags) {}

  void module(LossParser::File_Context *c, Module &m) {
    for (auto *i : c->import_decl())
      m.imports.push_back({ident(i->name)});
    for (auto *d : c->top_decl()) {
      if (auto *f = dynamic_cast<LossParser::TopFnContext *>(d))
        m.fns.push_back(fn(f->fn_decl(), m.file));
      else if (auto *l = dynamic_cast<LossParser::TopLossContext *>(d))
        m.losses.push_back(loss(l->loss_decl()));
    }
  }

private:
  Ident ident(antlr4::Token *t) { return {t->getText(), tokenLoc(file_, t)}; }

  std::vector<Ident> identList(LossParser::Ident_listContext *c) {
    std::vector<Ident> out;
    if (c)
      for (auto *n : c->IDENT())
        out.push_back(ident(n->getSymbol()));
    return out;
  }

  // fn_decl : FN IDENT '(' ident_list? ')' ('=' expr ';' | block)
  FnDecl fn(LossParser::Fn_declContext *c, uint32_t module) {
    FnDecl f;
    f.module = module;
    if (auto *e = dynamic_cast<LossParser::FnExprBodyContext *>(c)) {
      f.name = ident(e->name);
      f.params = identList(e->ident_list());
      f.body.push_back({Stmt::Return, spanLoc(file_, e->expr()), {}, expr(e->expr())});
    } else if (auto *b = dynamic_cast<LossParser::FnBlockBodyContext *>(c)) {
      f.name = ident(b->name);
      f.params = identList(b->ident_list());
      for (auto *s : b->block()->stmt())
        f.body.push_back(stmt(s));
    }
    return f;
  }

  // loss_decl : LOSS IDENT '{' loss_item* '}'
  LossDecl loss(LossParser::Loss_declContext *c) {
    LossDecl l;
    l.name = ident(c->name);
    for (auto *item : c->loss_item()) {
      if (auto *p = dynamic_cast<LossParser::PresetItemContext *>(item)) {
        Ident preset = ident(p->preset);
        const std::vector<PresetInput> *inputs = findPreset(preset.name);
        if (!inputs) {
          std::string names;
          for (const std::string &n : presetNames())
            names += (names.empty() ? "" : ", ") + n;
          diags_.report(DiagId::E0208, preset.loc, "unknown input preset '" + preset.name + "'")
              .help("the presets are " + names + "; or declare inputs one by one with `input`");
          continue;
        }
        for (const PresetInput &in : *inputs)
          l.inputs.push_back({{in.name, preset.loc}, in.shape, in.differentiable, preset.loc});
      } else if (auto *in = dynamic_cast<LossParser::InputItemContext *>(item)) {
        InputShape shape = type(in->type_());
        bool diff = false;
        if (in->modifier) {
          if (in->modifier->getText() == "diff")
            diff = true;
          else
            diags_
                .report(DiagId::E0108, tokenLoc(file_, in->modifier),
                        "unknown input modifier '" + in->modifier->getText() + "'")
                .help("the only modifier is `diff`, which marks an input the loss is "
                      "differentiated with respect to");
        }
        for (Ident &name : identList(in->ident_list()))
          l.inputs.push_back({std::move(name), shape, diff, {}});
      } else if (auto *p = dynamic_cast<LossParser::ParamItemContext *>(item)) {
        ParamDecl d;
        d.name = ident(p->name);
        d.defaultValue = expr(p->expr());
        if (auto *r = p->range_()) {
          d.hasRange = true;
          d.loOpen = r->lo->getType() == LossLexer::LPAREN;
          d.hiOpen = r->hi->getType() == LossLexer::RPAREN;
          d.lo = expr(r->expr(0));
          d.hi = expr(r->expr(1));
          d.rangeLoc = spanLoc(file_, r);
        }
        l.params.push_back(std::move(d));
      } else if (auto *s = dynamic_cast<LossParser::StmtItemContext *>(item)) {
        l.body.push_back(stmt(s->stmt()));
      }
    }
    return l;
  }

  // type_ : IDENT ('[' IDENT ']')? | '[' IDENT ']'
  InputShape type(LossParser::Type_Context *c) {
    auto help = [] { return "an input is `real[B]` (one value per example) or `real` (a scalar)"; };
    antlr4::Token *dim = nullptr;
    if (auto *n = dynamic_cast<LossParser::NamedTypeContext *>(c)) {
      if (n->elem->getText() != "real")
        diags_
            .report(DiagId::E0107, tokenLoc(file_, n->elem),
                    "unknown type '" + n->elem->getText() + "'")
            .help(help());
      dim = n->dim;
    } else if (auto *b = dynamic_cast<LossParser::BatchTypeContext *>(c)) {
      dim = b->dim;
    }
    if (!dim) return InputShape::Scalar;
    if (dim->getText() != "B")
      diags_
          .report(DiagId::E0107, tokenLoc(file_, dim), "unknown dimension '" + dim->getText() + "'")
          .help("the only dimension is the batch, written B: " + std::string(help()));
    return InputShape::Batch;
  }

  // stmt : 'let' IDENT '=' expr ';' | 'return' expr ';' | IDENT '=' expr ';'
  Stmt stmt(LossParser::StmtContext *c) {
    if (auto *l = dynamic_cast<LossParser::LetStmtContext *>(c))
      return {Stmt::Let, tokenLoc(file_, l->getStart()), ident(l->name), expr(l->expr())};
    if (auto *r = dynamic_cast<LossParser::ReturnStmtContext *>(c))
      return {Stmt::Return, tokenLoc(file_, r->getStart()), {}, expr(r->expr())};
    auto *a = dynamic_cast<LossParser::BareAssignStmtContext *>(c);
    Ident name = ident(a->name);
    diags_.report(DiagId::E0104, name.loc, "'" + name.name + "' is assigned without `let`")
        .help("write `let " + name.name + " = ...;` (every name is defined once)");
    return {Stmt::Let, name.loc, name, expr(a->expr())};
  }

  ExprId unary(ExprKind kind, antlr4::Token *op, LossParser::ExprContext *whole,
               LossParser::ExprContext *operand) {
    Expr e{kind};
    e.loc = tokenLoc(file_, op);
    e.span = spanLoc(file_, whole);
    e.args = {expr(operand)};
    return ctx_.add(std::move(e));
  }

  ExprId binary(BinaryOp op, antlr4::Token *opToken, LossParser::ExprContext *whole,
                LossParser::ExprContext *lhs, LossParser::ExprContext *rhs) {
    Expr e{ExprKind::Binary};
    e.op = op;
    e.loc = tokenLoc(file_, opToken);
    e.span = spanLoc(file_, whole);
    e.args = {expr(lhs), expr(rhs)};
    return ctx_.add(std::move(e));
  }

  // expr : one labelled alternative per construct (see Loss.g4)
  ExprId expr(LossParser::ExprContext *c) {
    using P = LossParser;
    if (auto *n = dynamic_cast<P::NumberExprContext *>(c)) {
      Expr e{ExprKind::Number};
      e.loc = e.span = spanLoc(file_, n);
      std::string text = n->getText();
      errno = 0;
      e.number = std::strtod(text.c_str(), nullptr);
      if (errno == ERANGE && std::isinf(e.number))
        diags_.report(DiagId::E0106, e.loc, "number " + text + " is too large for a double")
            .help("write `inf` for infinity");
      return ctx_.add(std::move(e));
    }
    if (auto *b = dynamic_cast<P::BoolExprContext *>(c)) {
      Expr e{ExprKind::Bool};
      e.loc = e.span = spanLoc(file_, b);
      e.boolean = b->value->getType() == LossLexer::TRUE;
      return ctx_.add(std::move(e));
    }
    if (auto *call = dynamic_cast<P::CallExprContext *>(c)) {
      Expr e{ExprKind::Call};
      e.loc = tokenLoc(file_, call->callee);
      e.span = spanLoc(file_, call);
      e.name = call->callee->getText();
      std::vector<ExprId> args;
      if (auto *list = call->arg_list())
        for (auto *a : list->expr())
          args.push_back(expr(a));
      e.args = std::move(args);
      return ctx_.add(std::move(e));
    }
    if (auto *n = dynamic_cast<P::NameExprContext *>(c)) {
      Expr e{ExprKind::Name};
      e.loc = e.span = spanLoc(file_, n);
      e.name = n->getText();
      return ctx_.add(std::move(e));
    }
    if (auto *p = dynamic_cast<P::ParenExprContext *>(c)) return expr(p->expr());
    if (auto *p = dynamic_cast<P::PowExprContext *>(c))
      return binary(BinaryOp::Pow, p->POW()->getSymbol(), p, p->expr(0), p->expr(1));
    if (auto *p = dynamic_cast<P::CaretExprContext *>(c)) {
      diags_
          .report(DiagId::E0105, tokenLoc(file_, p->CARET()->getSymbol()),
                  "`^` is not an operator in this language")
          .help("write a power as `x ** y` or `pow(x, y)`");
      return binary(BinaryOp::Pow, p->CARET()->getSymbol(), p, p->expr(0), p->expr(1));
    }
    if (auto *u = dynamic_cast<P::UnaryExprContext *>(c))
      return unary(u->op->getType() == LossLexer::MINUS ? ExprKind::Neg : ExprKind::Plus, u->op, u,
                   u->expr());
    if (auto *m = dynamic_cast<P::MulExprContext *>(c))
      return binary(m->op->getType() == LossLexer::STAR ? BinaryOp::Mul : BinaryOp::Div, m->op, m,
                    m->expr(0), m->expr(1));
    if (auto *a = dynamic_cast<P::AddExprContext *>(c))
      return binary(a->op->getType() == LossLexer::PLUS ? BinaryOp::Add : BinaryOp::Sub, a->op, a,
                    a->expr(0), a->expr(1));
    if (auto *cmp = dynamic_cast<P::CmpExprContext *>(c)) {
      BinaryOp op = BinaryOp::Lt;
      switch (cmp->op->getType()) {
      case LossLexer::LT: op = BinaryOp::Lt; break;
      case LossLexer::LE: op = BinaryOp::Le; break;
      case LossLexer::GT: op = BinaryOp::Gt; break;
      case LossLexer::GE: op = BinaryOp::Ge; break;
      case LossLexer::EQ: op = BinaryOp::Eq; break;
      default: op = BinaryOp::Ne; break;
      }
      return binary(op, cmp->op, cmp, cmp->expr(0), cmp->expr(1));
    }
    if (auto *n = dynamic_cast<P::NotExprContext *>(c))
      return unary(ExprKind::Not, n->op, n, n->expr());
    if (auto *a = dynamic_cast<P::AndExprContext *>(c))
      return binary(BinaryOp::And, a->op, a, a->expr(0), a->expr(1));
    if (auto *o = dynamic_cast<P::OrExprContext *>(c))
      return binary(BinaryOp::Or, o->op, o, o->expr(0), o->expr(1));
    auto *i = dynamic_cast<P::IfExprContext *>(c);
    Expr e{ExprKind::If};
    e.loc = tokenLoc(file_, i->getStart());
    e.span = spanLoc(file_, i);
    e.args = {expr(i->expr(0)), expr(i->expr(1)), expr(i->expr(2))};
    return ctx_.add(std::move(e));
  }

  uint32_t file_;
  AstContext &ctx_;
  DiagEngine &diags_;
};

// The lexer's own error output goes nowhere: every stray character is a STRAY token already.
class SilentListener : public antlr4::BaseErrorListener {
  void syntaxError(antlr4::Recognizer *, antlr4::Token *, size_t, size_t, const std::string &,
                   std::exception_ptr) override {}
};

bool preParseChecks(const SourceManager &sources, uint32_t file, const Limits &limits,
                    DiagEngine &diags) {
  if (!checkSourceBytes(sources, file, limits, diags)) return false;
  antlr4::ANTLRInputStream input(sources.text(file));
  LossLexer lexer(&input);
  SilentListener silent;
  lexer.removeErrorListeners();
  lexer.addErrorListener(&silent);
  return checkTokens(lexer, sources, file, limits, diags);
}

} // namespace

bool parseModule(const SourceManager &sources, uint32_t file, const Limits &limits, AstContext &ctx,
                 Module &module, DiagEngine &diags) {
  module.file = file;
  module.path = sources.path(file);
  if (!preParseChecks(sources, file, limits, diags)) return false;

  antlr4::ANTLRInputStream input(sources.text(file));
  LossLexer lexer(&input);
  SilentListener silent;
  lexer.removeErrorListeners();
  lexer.addErrorListener(&silent);
  antlr4::CommonTokenStream tokens(&lexer);
  tokens.fill();
  LossParser parser(&tokens);
  SyntaxErrorListener listener(file, diags, tokens);
  parser.removeErrorListeners();
  parser.addErrorListener(&listener);
  parser.setErrorHandler(std::make_shared<StatementErrorStrategy>());
  LossParser::File_Context *tree = parser.file_();
  if (listener.errors()) return false;

  size_t errorsBefore = diags.errorCount();
  TreeBuilder(file, ctx, diags).module(tree, module);
  return diags.errorCount() == errorsBefore;
}

bool dumpTokens(const SourceManager &sources, uint32_t file, const Limits &limits,
                DiagEngine &diags, std::string &out) {
  if (!preParseChecks(sources, file, limits, diags)) return false;
  antlr4::ANTLRInputStream input(sources.text(file));
  LossLexer lexer(&input);
  const antlr4::dfa::Vocabulary &vocab = lexer.getVocabulary();
  for (;;) {
    std::unique_ptr<antlr4::Token> t = lexer.nextToken();
    if (t->getType() == antlr4::Token::EOF) break;
    if (t->getChannel() != antlr4::Token::DEFAULT_CHANNEL) continue;
    out += std::to_string(t->getLine()) + ":" + std::to_string(t->getCharPositionInLine() + 1) +
           " " + vocab.getSymbolicName(t->getType()) + " '" + t->getText() + "'\n";
  }
  return true;
}

} // namespace lossc
