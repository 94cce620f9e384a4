// llada2 eval's parts: matchers, task files, sweep grids, confidence intervals.
#include <gtest/gtest.h>

#include <fstream>

#include "llada2/error.h"
#include "llada2/eval.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

using eval::Matcher;
using eval::matches;
using nlohmann::json;

TEST(EvalMatch, NumberTakesTheLastNumber) {
  EXPECT_TRUE(matches(Matcher::Number, "5560", "4821 + 739 = 5560."));
  EXPECT_FALSE(matches(Matcher::Number, "5560", "5560 is not 4821 + 739 = 5561."));
  EXPECT_TRUE(matches(Matcher::Number, "884", "52 * 17 = 52 * 7 + 52 * 10 = 364 + 520 = 884."));
  EXPECT_TRUE(matches(Matcher::Number, 1234, "The answer is 1,234"));
  EXPECT_TRUE(matches(Matcher::Number, "-3", "2 - 5 = -3"));
  EXPECT_FALSE(matches(Matcher::Number, "3", "2 - 5 = -3"));
  EXPECT_TRUE(matches(Matcher::Number, "3", "5 - 2 = 3"));  // '-' between numbers is an operator
  EXPECT_TRUE(matches(Matcher::Number, "2.5", "5 / 2 = 2.5."));
  EXPECT_TRUE(matches(Matcher::Number, "7", "5, 6, 7"));  // a list is not one number 5,6,7
  EXPECT_FALSE(matches(Matcher::Number, "5", "no number here"));
  EXPECT_FALSE(matches(Matcher::Number, "5", ""));
}

TEST(EvalMatch, ExactTrimsWhitespaceOnly) {
  EXPECT_TRUE(matches(Matcher::Exact, "1, 2, 3", "  1, 2, 3\n"));
  EXPECT_FALSE(matches(Matcher::Exact, "1, 2, 3", "1, 2, 3."));
  EXPECT_FALSE(matches(Matcher::Exact, "1, 2, 3", "1,2,3"));
  EXPECT_TRUE(matches(Matcher::Contains, "Paris", "It is Paris."));
  EXPECT_FALSE(matches(Matcher::Contains, "Paris", "It is Rome."));
}

TEST(EvalMatch, JsonComparesTheFirstJsonValue) {
  const json call = {{"name", "calculator"}, {"arguments", {{"expression", "12 * 34"}}}};
  EXPECT_TRUE(
      matches(Matcher::Json, call,
              "<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"12 * 34\"}}\n</tool_call>"));
  // key order does not matter; a different argument does
  EXPECT_TRUE(matches(Matcher::Json, call, "{\"arguments\": {\"expression\": \"12 * 34\"}, \"name\": \"calculator\"}"));
  EXPECT_FALSE(
      matches(Matcher::Json, call, "{\"name\": \"calculator\", \"arguments\": {\"expression\": \"12 * 35\"}}"));
  EXPECT_FALSE(matches(Matcher::Json, call, "<tool_call>{\"name\": \"calculator\", \"arguments\": {</tool_call>"));
  EXPECT_FALSE(matches(Matcher::Json, call, "no call"));
  // a brace inside a string does not end the object; a broken prefix is skipped
  EXPECT_TRUE(matches(Matcher::Json, json{{"a", "}"}}, "x { y {\"a\": \"}\"}"));
  EXPECT_TRUE(matches(Matcher::Json, json::array({1, 2}), "list: [1, 2]"));
}

TEST(EvalMatch, SudokuChecksTheGridAndTheGivens) {
  const std::string puzzle = "1200\n0010\n2000\n0001";
  EXPECT_TRUE(matches(Matcher::Sudoku, puzzle, "1234\n3412\n2143\n4321"));
  EXPECT_TRUE(matches(Matcher::Sudoku, puzzle, "Solved:\n1 2 3 4\n3 4 1 2\n2 1 4 3\n4 3 2 1"));
  EXPECT_FALSE(matches(Matcher::Sudoku, puzzle, "1234\n3412\n2143\n4312"));                    // columns repeat
  EXPECT_FALSE(matches(Matcher::Sudoku, puzzle, "2134\n3412\n1243\n4321"));                    // a given changed
  EXPECT_FALSE(matches(Matcher::Sudoku, puzzle, "1234\n3412\n2143"));                          // too short
  EXPECT_FALSE(matches(Matcher::Sudoku, "1...\n....\n....\n....", "1234\n2143\n3412\n4321"));  // boxes repeat
  EXPECT_THROW(matches(Matcher::Sudoku, "123", "123"), InputError);
}

TEST(EvalSweep, AxesAndGrid) {
  auto a = eval::parse_axis("threshold=0.5,0.7");
  EXPECT_EQ(a.key, "threshold");
  ASSERT_EQ(a.values.size(), 2u);
  EXPECT_DOUBLE_EQ(a.values[0].get<double>(), 0.5);
  auto b = eval::parse_axis("editing_threshold=none,0.5");
  EXPECT_TRUE(b.values[0].is_null());
  auto c = eval::parse_axis("block_length=8,32");
  EXPECT_TRUE(c.values[0].is_number_integer());
  auto d = eval::parse_axis("attention=block_causal,bidirectional");
  EXPECT_EQ(d.values[1], "bidirectional");
  auto e = eval::parse_axis("bf16_activations=off,on");
  EXPECT_EQ(e.values[0], false);
  auto g = eval::grid({a, b, c});
  ASSERT_EQ(g.size(), 8u);
  EXPECT_DOUBLE_EQ(g[0]["threshold"].get<double>(), 0.5);
  EXPECT_TRUE(g[0]["editing_threshold"].is_null());
  EXPECT_EQ(g[1]["block_length"], 32);
  EXPECT_DOUBLE_EQ(g[7]["threshold"].get<double>(), 0.7);
  EXPECT_EQ(eval::grid({}).size(), 1u);
  EXPECT_THROW(eval::parse_axis("threshold"), InputError);
  EXPECT_THROW(eval::parse_axis("=1"), InputError);
  EXPECT_THROW(eval::parse_axis("threshold=0.5,,0.7"), InputError);
}

TEST(EvalStats, WilsonInterval) {
  auto [lo, hi] = eval::wilson(95, 100);
  EXPECT_NEAR(lo, 0.8882, 1e-3);
  EXPECT_NEAR(hi, 0.9785, 1e-3);
  auto [lo0, hi0] = eval::wilson(0, 10);
  EXPECT_EQ(lo0, 0.0);
  EXPECT_NEAR(hi0, 0.2775, 1e-3);
  auto [lo1, hi1] = eval::wilson(10, 10);
  EXPECT_NEAR(lo1, 0.7225, 1e-3);
  EXPECT_DOUBLE_EQ(hi1, 1.0);
}

std::string write_lines(const std::string& text) {
  const auto path = fresh_temp_dir() / "tasks.jsonl";
  std::ofstream(path) << text;
  return path.string();
}

TEST(EvalTasks, ReadsLinesAndLimitsPerTask) {
  const std::string path = write_lines(
      "{\"task\": \"a\", \"prompt\": \"1+1?\", \"expected\": \"2\", \"match\": \"number\"}\n"
      "\n"
      "{\"task\": \"a\", \"prompt\": \"2+2?\", \"expected\": 4, \"match\": \"number\"}\n"
      "{\"task\": \"b\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"expected\": \"hello\"}\n"
      "{\"messages\": [], \"tools\": [], \"expected\": {\"name\": \"f\"}, \"match\": \"json\", \"call\": "
      "{\"gen_length\": 8}}\n");
  auto all = eval::read_tasks(path);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].task, "a");
  EXPECT_EQ(all[2].match, Matcher::Exact);
  EXPECT_EQ(all[3].task, "default");
  EXPECT_EQ(all[3].call["gen_length"], 8);
  EXPECT_EQ(eval::read_tasks(path, 1).size(), 3u);
}

TEST(EvalTasks, BadLinesNameTheLine) {
  auto expect_error = [](const std::string& text, const std::string& needle) {
    const std::string path = write_lines(text);
    try {
      eval::read_tasks(path);
      ADD_FAILURE() << "no error for " << text;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("{\"prompt\": \"x\"}\n", ":1: 'expected' is missing");
  expect_error("{\"prompt\": \"x\", \"expected\": \"1\"}\n{\"expected\": \"1\"}\n", ":2: give exactly one");
  expect_error("{\"prompt\": \"x\", \"messages\": [], \"expected\": \"1\"}\n", "exactly one");
  expect_error("{\"prompt\": \"x\", \"expected\": \"1\", \"match\": \"fuzzy\"}\n", "unknown matcher 'fuzzy'");
  expect_error("{\"prompt\": \"x\", \"expected\": \"1\", \"extra\": 1}\n", "unknown key 'extra'");
  expect_error("{\"prompt\": \"x\", \"expected\": [1]}\n", "must be a string or a number");
  expect_error("{\"prompt\": \"x\", \"expected\": \"12\", \"match\": \"sudoku\"}\n", "4x4 or 9x9");
  expect_error("[1, 2]\n", "must be a JSON object");
  expect_error("{\"prompt\": \n", ":1:");
  expect_error("\n\n", "no tasks");
  EXPECT_THROW(eval::read_tasks("/nonexistent/tasks.jsonl"), InputError);
}

}  // namespace
}  // namespace llada2::testing
