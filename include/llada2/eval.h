// Answer-quality evaluation (`llada2 eval`): a JSON-lines task file of prompts with expected answers,
// matchers that check a generated text, accuracy with a confidence interval, and sweeps over the
// pipeline's arguments.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "llada2/pipeline.h"

namespace llada2::eval {

// How an answer is checked against `expected`:
//   exact   the answer, trimmed of surrounding whitespace, equals the expected string
//   number  the last number in the answer equals the expected number ("5560", "-3", "2.5"; commas
//           between digit groups are allowed: "1,234")
//   json    the first JSON value in the answer (an object or array, e.g. inside <tool_call> tags)
//           equals the expected JSON value
//   sudoku  expected is the puzzle (rows of digits, 0 or '.' for an empty cell; 4x4 or 9x9); the
//           answer's digits, read in order, fill a valid grid that keeps every given
//   contains  the expected string occurs in the answer
enum class Matcher { Exact, Number, Json, Sudoku, Contains };

Matcher parse_matcher(const std::string& name);  // throws InputError for an unknown name
const char* matcher_name(Matcher m);
bool matches(Matcher m, const nlohmann::json& expected, const std::string& answer);

// One line of a task file:
//   {"task": "add", "prompt": "What is 2 + 3?", "expected": "5", "match": "number"}
//   {"task": "tool", "messages": [...], "tools": [...], "expected": {...}, "match": "json"}
// "task" defaults to "default" and "match" to "exact"; "call" may hold extra pipeline arguments for the line.
struct Item {
  std::string task;
  nlohmann::ordered_json prompt;    // a string, or null
  nlohmann::ordered_json messages;  // an array, or null
  nlohmann::ordered_json tools;     // an array, or null
  nlohmann::json expected;
  Matcher match = Matcher::Exact;
  nlohmann::ordered_json call;  // an object (possibly empty)
};

// Reads a task file; errors name the file and line. `limit_per_task` > 0 keeps the first N lines of each task.
std::vector<Item> read_tasks(const std::string& path, int64_t limit_per_task = 0);

// A sweep axis: "threshold=0.5,0.7,0.95" -> {"threshold", [0.5, 0.7, 0.95]} ("none"/"null" -> null,
// numbers -> numbers, true/false -> booleans, anything else a string).
struct Axis {
  std::string key;
  std::vector<nlohmann::ordered_json> values;
};
Axis parse_axis(const std::string& spec);
// Every combination of the axes' values (the first axis varies slowest); one empty setting without axes.
std::vector<nlohmann::ordered_json> grid(const std::vector<Axis>& axes);

// Wilson score interval for k successes out of n at ~95% (z = 1.96): {low, high} in [0, 1].
std::pair<double, double> wilson(int64_t k, int64_t n, double z = 1.96);

struct TaskScore {
  int64_t n = 0, correct = 0, forwards = 0, tokens = 0;
  double seconds = 0;
  nlohmann::json to_json() const;
};

struct Failure {
  std::string task;
  nlohmann::json expected;
  std::string answer;
};

struct RunResult {
  nlohmann::ordered_json settings;                       // the sweep values of this run
  std::vector<std::pair<std::string, TaskScore>> tasks;  // in first-seen order
  TaskScore all;
  std::vector<Failure> failures;
};

// The pipeline arguments of a run: `base_call` with the settings' keys on top ("bf16_activations" is not a
// pipeline argument and is left out), seed 0 unless given. Throws InputError for an invalid call.
nlohmann::ordered_json call_for(const nlohmann::ordered_json& base_call, const nlohmann::ordered_json& settings);

// Runs every item with the base call arguments + `settings` (settings keys are pipeline arguments, or
// "bf16_activations" = true/false for the fast mode's bf16 products; "exact" = true/false, a pipeline call
// key, selects SPEC A6's mode for the run). `progress(done, total)` after each item.
RunResult run(const Pipeline& pipe, const std::vector<Item>& items, const nlohmann::ordered_json& base_call,
              const nlohmann::ordered_json& settings, const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace llada2::eval
