#include "llada2/eval.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include "llada2/call_json.h"
#include "llada2/error.h"
#include "llada2/json.h"
#include "llada2/runtime.h"

namespace llada2::eval {

using nlohmann::json;
using nlohmann::ordered_json;

namespace {

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The numbers in `s`, in order: an optional '-' right before the digits, digit groups joined by
// commas ("1,234" but not "5, 7"), an optional fraction.
std::vector<std::string> numbers_in(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    if (!is_digit(s[i])) {
      ++i;
      continue;
    }
    std::string num;
    if (i > 0 && s[i - 1] == '-' && (i < 2 || !is_digit(s[i - 2]))) num = "-";
    size_t j = i;
    while (j < s.size() && is_digit(s[j])) num += s[j++];
    while (j + 3 < s.size() + 0 && s[j] == ',' && is_digit(s[j + 1]) && is_digit(s[j + 2]) && is_digit(s[j + 3]) &&
           (j + 4 >= s.size() || !is_digit(s[j + 4]))) {
      num.append(s, j + 1, 3);
      j += 4;
    }
    if (j + 1 < s.size() && s[j] == '.' && is_digit(s[j + 1])) {
      num += '.';
      ++j;
      while (j < s.size() && is_digit(s[j])) num += s[j++];
    }
    out.push_back(num);
    i = j;
  }
  return out;
}

bool same_number(const std::string& a, const std::string& b) {
  try {
    size_t pa = 0, pb = 0;
    const long double x = std::stold(a, &pa), y = std::stold(b, &pb);
    if (pa != a.size() || pb != b.size()) return false;
    return std::fabs(double(x - y)) <= 1e-9 * std::max(1.0, std::fabs(double(y)));
  } catch (const std::exception&) {
    return false;
  }
}

std::string expected_string(const json& e) {
  if (e.is_string()) return e.get<std::string>();
  if (e.is_number()) return e.dump();
  throw InputError("expected must be a string or a number for this matcher, got " + e.dump());
}

// The first JSON object or array in `s` that parses.
bool first_json(const std::string& s, json& out) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '{' && s[i] != '[') continue;
    int depth = 0;
    bool in_str = false, esc = false;
    for (size_t j = i; j < s.size(); ++j) {
      const char c = s[j];
      if (in_str) {
        if (esc)
          esc = false;
        else if (c == '\\')
          esc = true;
        else if (c == '"')
          in_str = false;
        continue;
      }
      if (c == '"') {
        in_str = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) {
          try {
            out = parse_json(std::string_view(s).substr(i, j - i + 1), "answer");
            return true;
          } catch (const std::exception&) {
            break;
          }
        }
      }
    }
  }
  return false;
}

bool valid_sudoku(const std::string& puzzle, const std::string& answer) {
  std::vector<int> given;
  for (char c : puzzle) {
    if (is_digit(c))
      given.push_back(c - '0');
    else if (c == '.' || c == '_')
      given.push_back(0);
  }
  const int n = given.size() == 16 ? 4 : given.size() == 81 ? 9 : 0;
  if (n == 0) throw InputError("sudoku: expected must be a 4x4 or 9x9 puzzle (16 or 81 cells), got " + puzzle);
  std::vector<int> cells;
  for (char c : answer)
    if (is_digit(c)) cells.push_back(c - '0');
  if (int(cells.size()) < n * n) return false;
  cells.erase(cells.begin(), cells.end() - n * n);  // the last n*n digits: the grid after any preamble
  const int box = n == 4 ? 2 : 3;
  for (int i = 0; i < n * n; ++i) {
    if (cells[size_t(i)] < 1 || cells[size_t(i)] > n) return false;
    if (given[size_t(i)] != 0 && given[size_t(i)] != cells[size_t(i)]) return false;
  }
  for (int u = 0; u < n; ++u) {
    std::set<int> row, col, blk;
    for (int v = 0; v < n; ++v) {
      row.insert(cells[size_t(u * n + v)]);
      col.insert(cells[size_t(v * n + u)]);
      const int r = (u / box) * box + v / box, c = (u % box) * box + v % box;
      blk.insert(cells[size_t(r * n + c)]);
    }
    if (int(row.size()) != n || int(col.size()) != n || int(blk.size()) != n) return false;
  }
  return true;
}

}  // namespace

Matcher parse_matcher(const std::string& name) {
  static const std::map<std::string, Matcher> kNames = {{"exact", Matcher::Exact},
                                                        {"number", Matcher::Number},
                                                        {"json", Matcher::Json},
                                                        {"sudoku", Matcher::Sudoku},
                                                        {"contains", Matcher::Contains}};
  auto it = kNames.find(name);
  if (it == kNames.end())
    throw InputError("unknown matcher '" + name + "' (expected exact, number, json, sudoku or contains)");
  return it->second;
}

const char* matcher_name(Matcher m) {
  switch (m) {
    case Matcher::Exact: return "exact";
    case Matcher::Number: return "number";
    case Matcher::Json: return "json";
    case Matcher::Sudoku: return "sudoku";
    case Matcher::Contains: return "contains";
  }
  return "?";
}

bool matches(Matcher m, const json& expected, const std::string& answer) {
  switch (m) {
    case Matcher::Exact: return trim(answer) == trim(expected_string(expected));
    case Matcher::Contains: return answer.find(expected_string(expected)) != std::string::npos;
    case Matcher::Number: {
      const auto nums = numbers_in(answer);
      return !nums.empty() && same_number(nums.back(), trim(expected_string(expected)));
    }
    case Matcher::Json: {
      json got;
      return first_json(answer, got) && got == expected;
    }
    case Matcher::Sudoku: return valid_sudoku(expected_string(expected), answer);
  }
  return false;
}

std::vector<Item> read_tasks(const std::string& path, int64_t limit_per_task) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open the task file");
  std::vector<Item> items;
  std::map<std::string, int64_t> per_task;
  std::string line;
  for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
    if (trim(line).empty()) continue;
    const std::string where = path + ":" + std::to_string(lineno);
    ordered_json j = parse_ordered_json(line, where);
    if (!j.is_object()) throw InputError(where + ": each line must be a JSON object");
    static const std::set<std::string> kKeys = {"task", "prompt", "messages", "tools", "expected", "match", "call"};
    for (const auto& [k, v] : j.items())
      if (!kKeys.count(k))
        throw InputError(where + ": unknown key '" + k +
                         "' (expected task, prompt, messages, tools, expected, match, call)");
    Item it;
    it.task = j.value("task", std::string("default"));
    if (j.contains("task") && !j["task"].is_string()) throw InputError(where + ": 'task' must be a string");
    it.prompt = j.value("prompt", ordered_json());
    it.messages = j.value("messages", ordered_json());
    it.tools = j.value("tools", ordered_json());
    it.call = j.value("call", ordered_json::object());
    if (it.prompt.is_null() == it.messages.is_null())
      throw InputError(where + ": give exactly one of 'prompt' (a string) or 'messages' (an array)");
    if (!it.prompt.is_null() && !it.prompt.is_string()) throw InputError(where + ": 'prompt' must be a string");
    if (!it.messages.is_null() && !it.messages.is_array()) throw InputError(where + ": 'messages' must be an array");
    if (!it.tools.is_null() && !it.tools.is_array()) throw InputError(where + ": 'tools' must be an array or null");
    if (!it.call.is_object()) throw InputError(where + ": 'call' must be an object of pipeline arguments");
    if (!j.contains("expected")) throw InputError(where + ": 'expected' is missing");
    it.expected = json::parse(j["expected"].dump());
    if (j.contains("match")) {
      if (!j["match"].is_string()) throw InputError(where + ": 'match' must be a string");
      try {
        it.match = parse_matcher(j["match"].get<std::string>());
      } catch (const InputError& e) {
        throw InputError(where + ": " + e.what());
      }
    }
    if (it.match != Matcher::Json && !it.expected.is_string() && !it.expected.is_number())
      throw InputError(where + ": 'expected' must be a string or a number for the " + matcher_name(it.match) +
                       " matcher");
    if (it.match == Matcher::Sudoku) {
      try {
        valid_sudoku(it.expected.get<std::string>(), "");
      } catch (const InputError& e) {
        throw InputError(where + ": " + e.what());
      }
    }
    if (limit_per_task > 0 && per_task[it.task] >= limit_per_task) continue;
    ++per_task[it.task];
    items.push_back(std::move(it));
  }
  if (items.empty()) throw InputError(path + ": no tasks in the file");
  return items;
}

Axis parse_axis(const std::string& spec) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    throw InputError("--sweep: expected KEY=V1,V2,... (e.g. threshold=0.5,0.7), got '" + spec + "'");
  Axis a;
  a.key = spec.substr(0, eq);
  const std::string vals = spec.substr(eq + 1);
  size_t start = 0;
  while (start <= vals.size()) {
    size_t comma = vals.find(',', start);
    if (comma == std::string::npos) comma = vals.size();
    const std::string v = trim(vals.substr(start, comma - start));
    if (v.empty()) throw InputError("--sweep " + a.key + ": empty value in '" + vals + "'");
    if (v == "none" || v == "None" || v == "null") {
      a.values.emplace_back(nullptr);
    } else if (v == "true" || v == "on") {
      a.values.emplace_back(true);
    } else if (v == "false" || v == "off") {
      a.values.emplace_back(false);
    } else {
      try {
        size_t pos = 0;
        const double d = std::stod(v, &pos);
        if (pos != v.size()) throw std::invalid_argument(v);
        if (d == std::floor(d) && v.find_first_of(".eE") == std::string::npos)
          a.values.emplace_back(int64_t(d));
        else
          a.values.emplace_back(d);
      } catch (const std::exception&) {
        a.values.emplace_back(v);
      }
    }
    start = comma + 1;
  }
  return a;
}

std::vector<ordered_json> grid(const std::vector<Axis>& axes) {
  std::vector<ordered_json> out = {ordered_json::object()};
  for (const Axis& a : axes) {
    std::vector<ordered_json> next;
    for (const auto& partial : out)
      for (const auto& v : a.values) {
        ordered_json s = partial;
        s[a.key] = v;
        next.push_back(std::move(s));
      }
    out = std::move(next);
  }
  return out;
}

std::pair<double, double> wilson(int64_t k, int64_t n, double z) {
  if (n <= 0) return {0.0, 1.0};
  const double p = double(k) / double(n), z2 = z * z, d = 1.0 + z2 / double(n);
  const double centre = (p + z2 / (2.0 * double(n))) / d;
  const double half = z * std::sqrt(p * (1.0 - p) / double(n) + z2 / (4.0 * double(n) * double(n))) / d;
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

json TaskScore::to_json() const {
  const auto [lo, hi] = wilson(correct, n);
  return {{"n", n},
          {"correct", correct},
          {"accuracy", n ? double(correct) / double(n) : 0.0},
          {"ci95", {lo, hi}},
          {"forwards", forwards},
          {"tokens", tokens},
          {"seconds", seconds},
          {"tokens_per_forward", forwards ? double(tokens) / double(forwards) : 0.0},
          {"tokens_per_second", seconds > 0 ? double(tokens) / seconds : 0.0}};
}

ordered_json call_for(const ordered_json& base_call, const ordered_json& settings) {
  ordered_json call = base_call;
  for (const auto& [k, v] : settings.items())
    if (k != "bf16_activations") call[k] = v;
  if (!call.contains("seed")) call["seed"] = 0;
  parse_call_json(call);
  return call;
}

namespace {

// Sets the process-wide arithmetic mode for a run (the call's "exact", then the settings'
// "bf16_activations") and puts back the previous one after it.
class ArithmeticScope {
 public:
  ArithmeticScope(const ordered_json& call, const ordered_json& settings)
      : bf16_(runtime::bf16_activations()), int8_(runtime::int8_activations()) {
    if (auto exact = parse_call_json(call).exact) runtime::set_exact(*exact);
    auto it = settings.find("bf16_activations");
    if (it == settings.end()) return;
    if (!it->is_boolean()) throw InputError("--sweep bf16_activations: expected on/off or true/false");
    runtime::set_bf16_activations(it->get<bool>());
  }
  ~ArithmeticScope() {
    runtime::set_bf16_activations(bf16_);
    runtime::set_int8_activations(int8_);
  }
  ArithmeticScope(const ArithmeticScope&) = delete;
  ArithmeticScope& operator=(const ArithmeticScope&) = delete;

 private:
  bool bf16_, int8_;
};

}  // namespace

RunResult run(const Pipeline& pipe, const std::vector<Item>& items, const ordered_json& base_call,
              const ordered_json& settings, const std::function<void(int64_t, int64_t)>& progress) {
  RunResult r;
  r.settings = settings;
  const ordered_json call = call_for(base_call, settings);
  const ArithmeticScope arithmetic(call, settings);
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < items.size(); ++i) {
    const Item& it = items[i];
    ordered_json c = call;
    for (const auto& [k, v] : it.call.items()) c[k] = v;
    CallSpec spec = parse_call_json(c);
    GenerateOptions& o = spec.options;
    o.output_type = "text";
    if (!it.tools.is_null()) {
      if (!pipe.tokenizer()) throw InputError("tasks with tools need the checkpoint's tokenizer");
      const ordered_json msgs =
          it.messages.is_null() ? ordered_json::array({{{"role", "user"}, {"content", it.prompt}}}) : it.messages;
      o.input_ids = IdTensor::from_row(pipe.tokenizer()->encode(pipe.apply_chat_template(msgs, it.tools, true), false));
    } else if (!it.messages.is_null()) {
      o.messages = it.messages;
    } else {
      o.prompt = it.prompt.get<std::string>();
    }
    PipelineOutput out = pipe(o);
    if (!out.texts || out.texts->empty()) throw InputError("eval needs the checkpoint's tokenizer to decode answers");
    const std::string& answer = out.texts->front();
    const bool ok = matches(it.match, it.expected, answer);
    auto [pos, fresh] = index.emplace(it.task, r.tasks.size());
    if (fresh) r.tasks.emplace_back(it.task, TaskScore{});
    for (TaskScore* s : {&r.tasks[pos->second].second, &r.all}) {
      ++s->n;
      s->correct += ok;
      s->forwards += out.stats.forwards;
      s->tokens += out.stats.generated_tokens;
      s->seconds += out.stats.seconds;
    }
    if (!ok) r.failures.push_back({it.task, it.expected, answer});
    if (progress) progress(int64_t(i + 1), int64_t(items.size()));
  }
  return r;
}

}  // namespace llada2::eval
