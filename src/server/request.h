// OpenAI request bodies -> validated generation requests, and the OpenAI error object.
#pragma once

#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "llada2/pipeline.h"
#include "llada2/server.h"

namespace llada2::server {

// An error the client sees as {"error": {message, type, param, code}} with an HTTP status.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string type, std::string param = "", std::string code = "")
      : std::runtime_error(message),
        status(status),
        type(std::move(type)),
        param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type, param, code;
};

ApiError invalid_request(const std::string& message, const std::string& param = "", const std::string& code = "");

// Whether object `o` has `key` holding the string `value` (false for another type: json::value() with a
// string default would throw on a number there).
inline bool has_string(const nlohmann::ordered_json& o, const char* key, const char* value) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() && it->get_ref<const std::string&>() == value;
}
nlohmann::ordered_json error_body(const ApiError& e);

struct CompletionRequest {
  bool chat = false;
  std::vector<std::vector<int64_t>> prompts;  // token ids, one generation per prompt
  int64_t n = 1;                              // rows (choices) per prompt
  bool stream = false;
  bool canvas = false;       // llada2_canvas: live active-block events
  bool usage_chunk = false;  // stream_options.include_usage: usage in a chunk of its own
  std::vector<std::string> stop;
  GenerateOptions gen;  // everything but input_ids and the callback
  // Tool calling (chat): the offered functions, whether the reply is parsed for <tool_call> blocks
  // (tools offered and tool_choice not "none"), and the text a forced call starts with (tool_choice
  // "required" or a named function), appended to the prompt and counted as the reply's beginning.
  std::set<std::string> tools;
  bool parse_tool_calls = false;
  std::string forced_prefix;
};

// The JSON of a request body; throws ApiError 400 when it is not JSON or nests deeper than kMaxJsonDepth.
nlohmann::ordered_json parse_request_body(const std::string& body);

// Validates `body` (the parsed JSON of a /v1/completions or /v1/chat/completions request) and
// tokenizes its prompt; throws ApiError (400, or 404 for another model).
CompletionRequest parse_completion_request(const nlohmann::ordered_json& body, bool chat, const Pipeline& pipe,
                                           const ServerOptions& options);

}  // namespace llada2::server
