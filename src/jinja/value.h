// Python-like values of the template engine: None, bool, int, float, str, list, tuple, dict,
// namespace objects and callables, with Python's truthiness, str/repr, equality and ordering.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace llada2::jinja {

// Errors carry the template position they were raised at (0 when unknown); the public API
// turns them into InputError with "line L, column C".
struct TemplateError {
  std::string message;
  int line = 0, col = 0;
  bool user_raised = false;  // raise_exception(): the message is the template author's
};
[[noreturn]] void fail(const std::string& message);
// Fails with "template output exceeded the size limit" when n > max_bytes.
void check_size(size_t n, size_t max_bytes);

// How deeply values may nest: lists, tuples, dicts and objects inside one another, whether they
// come from the caller's JSON (messages, tools, extra variables) or are built by the template.
// Every walk over a value (str, repr, ==, ordering, tojson, destruction) recurses at most this
// deep, so no input and no template can exhaust the stack through a value.
inline constexpr int kMaxNesting = 128;
[[noreturn]] void fail_nesting(const std::string& what);  // "<what> nested deeper than 128 levels"

struct Value;
struct Renderer;
using List = std::vector<Value>;

struct Dict {
  std::vector<std::pair<Value, Value>> items;  // insertion order, like a Python dict
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(const Value& key, Value v);
};

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};
using NativeFn = std::function<Value(Renderer&, CallArgs&)>;

// An attribute bag: namespace() objects (mutable through `set ns.x`) and loop objects.
struct Object {
  std::string type;  // "Namespace", "LoopContext"
  Dict attrs;
};

enum class Kind { Undefined, None, Bool, Int, Float, String, List, Tuple, Dict, Object, Callable };
// dict.keys() / .values() / .items() return views: a List that prints as dict_keys([...]) and
// so on, has no indexing and is not JSON.
enum class View : uint8_t { None, Keys, Values, Items };

struct Value {
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::shared_ptr<const std::string> s;      // String; for Undefined, the hint used in errors
  std::shared_ptr<const List> list;          // List, Tuple
  std::shared_ptr<const Dict> dict;          // Dict
  std::shared_ptr<Object> obj;               // Object
  std::shared_ptr<const NativeFn> fn;        // Callable
  std::shared_ptr<const std::string> fname;  // Callable: its name, for errors
  // A List that stands for a Python generator or iterator (what map, select, unique, items and
  // reverse return): always true, no len(), no indexing, not JSON.
  bool lazy = false;
  View view = View::None;
  // Containers: 1 + the deepest element (scalars are 0). Namespaces and cyclers, which can be
  // changed after they are made, count the attributes they were made with; the renderer owns
  // them and clears them at the end, so no chain of owners passes through one.
  uint16_t depth = 0;

  Value() = default;
  static Value undefined(std::string hint = "") {
    Value v;
    if (!hint.empty()) v.s = std::make_shared<const std::string>(std::move(hint));
    return v;
  }
  static Value none() {
    Value v;
    v.kind = Kind::None;
    return v;
  }
  static Value boolean(bool x) {
    Value v;
    v.kind = Kind::Bool;
    v.b = x;
    return v;
  }
  static Value integer(int64_t x) {
    Value v;
    v.kind = Kind::Int;
    v.i = x;
    return v;
  }
  static Value real(double x) {
    Value v;
    v.kind = Kind::Float;
    v.f = x;
    return v;
  }
  static Value str(std::string x) {
    Value v;
    v.kind = Kind::String;
    v.s = std::make_shared<const std::string>(std::move(x));
    return v;
  }
  static Value make_list(List x, bool tuple = false) {
    Value v;
    v.kind = tuple ? Kind::Tuple : Kind::List;
    v.depth = nesting_of(x);
    v.list = std::make_shared<const List>(std::move(x));
    return v;
  }
  static Value generator(List x) {
    Value v = make_list(std::move(x));
    v.lazy = true;
    return v;
  }
  static Value make_dict(Dict x) {
    Value v;
    v.kind = Kind::Dict;
    v.depth = nesting_of(x);
    v.dict = std::make_shared<const Dict>(std::move(x));
    return v;
  }
  static Value make_object(std::string type, Dict attrs) {
    Value v;
    v.kind = Kind::Object;
    v.depth = nesting_of(attrs);
    v.obj = std::make_shared<Object>(Object{std::move(type), std::move(attrs)});
    return v;
  }
  // `captured`: the deepest value fn holds (a bound method's object, a joiner's separator).
  static Value callable(std::string name, NativeFn fn, int captured = 0) {
    Value v;
    v.kind = Kind::Callable;
    v.depth = checked_depth(captured + 1);
    v.fn = std::make_shared<const NativeFn>(std::move(fn));
    v.fname = std::make_shared<const std::string>(std::move(name));
    return v;
  }

  static uint16_t checked_depth(int d) {
    if (d > kMaxNesting) fail_nesting("value");
    return uint16_t(d);
  }
  static uint16_t nesting_of(const List& items) {
    int d = 0;
    for (const Value& x : items) d = std::max<int>(d, x.depth);
    return checked_depth(d + 1);
  }
  static uint16_t nesting_of(const Dict& d);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
  bool is_seq() const { return kind == Kind::List || kind == Kind::Tuple; }
  const std::string& sv() const { return *s; }
  const List& lv() const { return *list; }
  const Dict& dv() const { return *dict; }
  double as_double() const { return kind == Kind::Float ? f : kind == Kind::Int ? double(i) : double(b); }
  int64_t as_int() const { return kind == Kind::Int ? i : int64_t(b); }
};

// Fails with the message an Undefined value carries.
[[noreturn]] void fail_undefined(const Value& v);

// Python semantics over values.
bool truthy(const Value& v);
std::string type_name(const Value& v);  // Python's type name: 'str', 'list', 'dict', ...
std::string to_str(const Value& v);     // str(v); Undefined renders as ""
std::string repr(const Value& v);       // repr(v)
std::string float_repr(double d);       // repr(float)
bool equal(const Value& a, const Value& b);
int compare(const Value& a, const Value& b);  // <0, 0, >0; fails on unorderable types
// The caller's JSON as values; `what` names it in the error when it nests deeper than kMaxNesting.
Value from_json(const nlohmann::ordered_json& j, const std::string& what);
Value from_json(const nlohmann::json& j, const std::string& what);
// json.dumps(v, ensure_ascii, indent, separators, sort_keys); indent < 0 means None.
std::string to_json(const Value& v, bool ensure_ascii, const std::string* indent, const std::string& item_sep,
                    const std::string& key_sep, bool sort_keys);
List iterate(const Value& v);  // Python iteration: list items, dict keys, string characters
// The string / integer in v, or a failure naming `what` and v's type.
const std::string& need_str(const Value& v, const std::string& what);
int64_t need_int(const Value& v, const std::string& what);

}  // namespace llada2::jinja
