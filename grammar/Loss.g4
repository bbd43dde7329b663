// The .loss language: one loss declaration (plus helper functions and imports) per file.
// Consumed by the ANTLR 4.7 tool to generate a C++ lexer, parser and visitor; the front end
// (compiler/Parse.cpp) turns the parse tree into the AST. No target code lives here.
grammar Loss;

file_
    : import_decl* top_decl* EOF
    ;

import_decl
    : IMPORT name=IDENT SEMI
    ;

top_decl
    : fn_decl      # TopFn
    | loss_decl    # TopLoss
    ;

// fn name(a, b) = expr;      or      fn name(a, b) { let ...; return expr; }
fn_decl
    : FN name=IDENT LPAREN ident_list? RPAREN ASSIGN expr SEMI    # FnExprBody
    | FN name=IDENT LPAREN ident_list? RPAREN block               # FnBlockBody
    ;

block
    : LBRACE stmt* RBRACE
    ;

loss_decl
    : LOSS name=IDENT LBRACE loss_item* RBRACE
    ;

loss_item
    : INPUTS preset=IDENT SEMI                                   # PresetItem
    | INPUT ident_list COLON type_ modifier=IDENT? SEMI           # InputItem
    | PARAM name=IDENT ASSIGN expr range_? SEMI                   # ParamItem
    | stmt                                                        # StmtItem
    ;

// (lo, hi)  [lo, hi]  (lo, hi]  [lo, hi)
range_
    : IN lo=(LPAREN | LBRACK) expr COMMA expr hi=(RPAREN | RBRACK)
    ;

// real, real[B], [B]
type_
    : elem=IDENT (LBRACK dim=IDENT RBRACK)?    # NamedType
    | LBRACK dim=IDENT RBRACK                  # BatchType
    ;

stmt
    : LET name=IDENT ASSIGN expr SEMI     # LetStmt
    | RETURN expr SEMI                    # ReturnStmt
    | name=IDENT ASSIGN expr SEMI         # BareAssignStmt
    ;

ident_list
    : IDENT (COMMA IDENT)*
    ;

arg_list
    : expr (COMMA expr)*
    ;

// Precedence from tightest to loosest, in alternative order.
expr
    : NUMBER                                              # NumberExpr
    | value=(TRUE | FALSE)                                # BoolExpr
    | callee=IDENT LPAREN arg_list? RPAREN                # CallExpr
    | IDENT                                               # NameExpr
    | LPAREN expr RPAREN                                  # ParenExpr
    | <assoc = right> expr POW expr                       # PowExpr
    | expr CARET expr                                     # CaretExpr
    | op=(MINUS | PLUS) expr                              # UnaryExpr
    | expr op=(STAR | SLASH) expr                         # MulExpr
    | expr op=(PLUS | MINUS) expr                         # AddExpr
    | expr op=(LT | LE | GT | GE | EQ | NE) expr          # CmpExpr
    | op=(NOT | BANG) expr                                # NotExpr
    | expr op=(AND | AMPAMP) expr                         # AndExpr
    | expr op=(OR | PIPEPIPE) expr                        # OrExpr
    | IF expr THEN expr ELSE expr                         # IfExpr
    ;

IMPORT : 'import' ;
FN     : 'fn' ;
LOSS   : 'loss' ;
INPUTS : 'inputs' ;
INPUT  : 'input' ;
PARAM  : 'param' ;
LET    : 'let' ;
RETURN : 'return' ;
IF     : 'if' ;
THEN   : 'then' ;
ELSE   : 'else' ;
AND    : 'and' ;
OR     : 'or' ;
NOT    : 'not' ;
TRUE   : 'true' ;
FALSE  : 'false' ;
IN     : 'in' ;

NUMBER
    : DIGITS ('.' DIGITS?)? EXPONENT?
    | '.' DIGITS EXPONENT?
    ;
fragment DIGITS   : [0-9]+ ;
fragment EXPONENT : [eE] [+-]? DIGITS ;

IDENT : [a-zA-Z_] [a-zA-Z_0-9]* ;

POW      : '**' ;
CARET    : '^' ;
STAR     : '*' ;
SLASH    : '/' ;
PLUS     : '+' ;
MINUS    : '-' ;
LE       : '<=' ;
GE       : '>=' ;
EQ       : '==' ;
NE       : '!=' ;
LT       : '<' ;
GT       : '>' ;
AMPAMP   : '&&' ;
PIPEPIPE : '||' ;
BANG     : '!' ;
ASSIGN   : '=' ;
LPAREN   : '(' ;
RPAREN   : ')' ;
LBRACK   : '[' ;
RBRACK   : ']' ;
LBRACE   : '{' ;
RBRACE   : '}' ;
COMMA    : ',' ;
SEMI     : ';' ;
COLON    : ':' ;

LINE_COMMENT  : ('//' | '#') ~[\r\n]* -> channel(HIDDEN) ;
BLOCK_COMMENT : '/*' .*? '*/' -> channel(HIDDEN) ;
// A '/*' that never closes: no '*/' anywhere up to the end of input.
UNTERMINATED_COMMENT : '/*' (~'*' | '*'+ ~[*/])* '*'* EOF ;
WS            : [ \t\r\n]+ -> channel(HIDDEN) ;

// Anything else becomes one token that the front end reports before parsing.
STRAY : . ;
