// OpenAI tool calling over LLaDA2's chat format: the model answers a call as
//   <tool_call>\n{"name": "calculator", "arguments": {"expression": "2 + 3"}}\n</tool_call>
// (one block per call, optionally after some text), which the server returns as message.tool_calls.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace llada2::server {

struct ToolCall {
  std::string id;         // "call_..."
  std::string name;       // a tool of the request
  std::string arguments;  // a JSON text, as OpenAI's function.arguments
};

struct ParsedReply {
  std::optional<std::string> content;  // the text before the first call (none when only whitespace)
  std::vector<ToolCall> calls;
};

// The tool calls of a finished reply. nullopt when the text holds no call, or when any block is not
// a JSON object with a string "name" naming one of `offered` (and "arguments" an object or a string),
// or when non-blank text follows a call: the reply is then plain content. A last block without its
// closing tag (the model stopped right after the JSON) counts when its JSON is complete.
std::optional<ParsedReply> parse_tool_calls(const std::string& text, const std::set<std::string>& offered,
                                            const std::function<std::string()>& new_id);

// How many leading bytes of a streamed reply may be sent as content now: everything before the first
// "<tool_call>", and before a trailing part that could still become one.
size_t content_before_tool_call(const std::string& text);

// A fresh call id: "call_" and 24 letters and digits.
std::string new_tool_call_id();

// The names of the functions of a request's `tools` (validated: a list of {"type": "function",
// "function": {"name": ...}}); throws ApiError 400 naming the problem.
std::set<std::string> tool_names(const nlohmann::ordered_json& tools);

}  // namespace llada2::server
