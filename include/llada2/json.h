// The one way JSON text enters the library, the CLI and the server. Besides the syntax these bound
// the nesting depth: parsing itself is iterative, but copying, dumping and converting parsed values
// (chat templates, tool schemas) recurse once per level, so a small request of 20,000 brackets
// could otherwise overflow a thread's stack.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace llada2 {

// The deepest nesting of arrays and objects accepted anywhere: `[]` is depth 1, `{"a": [1]}` is
// depth 2. Real inputs nest far less (tokenizer.json about 5 levels, a chat request with a tool's
// JSON schema perhaps 15), and every recursive walk stays shallow at this depth.
inline constexpr int kMaxJsonDepth = 128;

// Parses `text`; throws FileError(what, ...) when it is not valid JSON or nests deeper than
// kMaxJsonDepth. `what` names the source in the message: a path, "the request body", "FILE line 3".
nlohmann::json parse_json(std::string_view text, const std::string& what);
nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& what);

// The same checks, feeding `sax` instead of building a value. Exceptions from `sax` pass through.
void sax_parse_json(std::string_view text, nlohmann::json::json_sax_t* sax, const std::string& what);

// Reads the whole file at `path` (FileError when it cannot) and parses it as above.
nlohmann::ordered_json read_json_file(const std::string& path);

}  // namespace llada2
