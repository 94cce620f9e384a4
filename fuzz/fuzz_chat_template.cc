// Fuzzes the chat-template engine: the input is a template, rendered against a small fixed
// conversation. Every failure must be an InputError; crashes, hangs and other exceptions are bugs.
#include <cstddef>
#include <cstdint>
#include <string>

#include "llada2/chat_template.h"
#include "llada2/error.h"
#include "llada2/json.h"

namespace {

const nlohmann::ordered_json& conversation() {
  static const nlohmann::ordered_json msgs = llada2::parse_ordered_json(R"([
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Hi <b>there</b> \u00e9\u4e2d\ud83d\ude00\n"},
    {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nHello!",
     "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"x": 1.5, "y": [true, null, "s"]}}}]},
    {"role": "tool", "content": "{\"ok\": 1}"}
  ])",
                                                                        "conversation");
  return msgs;
}

const nlohmann::ordered_json& tools() {
  static const nlohmann::ordered_json t = llada2::parse_ordered_json(
      R"([{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {"x": {"type": "number"}}}}}])",
      "tools");
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  llada2::ChatTemplate::Limits limits;
  limits.max_output_bytes = size_t(1) << 20;
  limits.max_steps = 100000;
  limits.max_depth = 100;
  std::string source(reinterpret_cast<const char*>(data), size);
  try {
    llada2::ChatTemplate tpl(source, limits);
    nlohmann::ordered_json extra = {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"enable_thinking", false}};
    tpl.render(conversation(), tools(), true, extra);
    tpl.render(conversation(), nullptr, false);
  } catch (const llada2::InputError&) {}
  return 0;
}
