// Python's operators over template values, as the runtime evaluates them.
#pragma once

#include <string>
#include <vector>

#include "jinja/ast.h"
#include "jinja/runtime.h"

namespace llada2::jinja {

// a <op> b for the binary operators + - * / // % ** and ~ (string concatenation).
Value binop(Renderer& r, const std::string& op, const Value& a, const Value& b);
// One link of a comparison chain: == != < <= > >= in, not in.
bool compare_op(const std::string& op, const Value& a, const Value& b);
// Whether Jinja2's optimizer folds e at compile time (literals and operators over them).
bool is_constant(const Expr& e);
// obj[start:stop:step]; `constant` says whether obj was folded at compile time.
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step, bool constant);
// Binds v to the target names of a for loop or set (a tuple of names unpacks v).
void unpack(Frame& f, const std::vector<std::string>& names, bool tuple, const Value& v);

}  // namespace llada2::jinja
