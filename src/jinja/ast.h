// The syntax tree the parser builds and the runtime walks.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "jinja/value.h"

namespace llada2::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;
struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class ExprKind {
  Literal,
  Name,
  ListLit,
  TupleLit,
  DictLit,
  GetAttr,
  GetItem,
  Slice,
  Call,
  Filter,
  Test,
  Neg,
  Pos,
  Not,
  And,
  Or,
  Binary,
  Compare,
  CondExpr
};

struct Expr {
  ExprKind kind;
  int line = 0, col = 0;
  int height = 1;             // of the subtree, bounded by the parser
  Value value;                // Literal
  std::string name;           // Name, GetAttr attribute, Filter / Test name, Binary operator
  std::vector<ExprPtr> args;  // operands / elements / positional arguments (first = object for Call/Filter/Test)
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // Compare: one operator per right operand
  bool negated = false;          // Test: `is not`
};

enum class StmtKind {
  Text,
  Output,
  If,
  For,
  Set,
  SetAttr,
  SetBlock,
  Macro,
  CallBlock,
  FilterBlock,
  Break,
  Continue,
  Scope
};

struct Stmt {
  StmtKind kind;
  int line = 0, col = 0;
  std::string text;  // Text; Macro name; SetAttr attribute
  ExprPtr expr;  // Output, Set value, SetAttr object, For iterable, CallBlock call, FilterBlock/SetBlock filter chain
  ExprPtr cond;  // For filter
  std::vector<std::string> targets;  // For / Set names; Macro / CallBlock parameter names
  bool targets_tuple = false;
  std::vector<ExprPtr> defaults;                   // Macro / CallBlock parameter defaults (null = none)
  std::vector<std::pair<ExprPtr, Body>> branches;  // If: (condition, body)
  Body body, else_body;
};

struct Template {
  Body body;
};

}  // namespace llada2::jinja
