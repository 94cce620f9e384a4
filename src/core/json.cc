#include "llada2/json.h"

#include "core/read_file.h"
#include "llada2/error.h"

namespace llada2 {

namespace {

// Counts brackets outside strings, before anything is built. For valid JSON this is exactly the
// parser's nesting depth; text that is not valid JSON fails here or in the parser, either way
// with an error. A scan is linear and allocates nothing, unlike rejecting from a parser callback,
// which would first build the values below the limit.
void check_depth(std::string_view text, const std::string& what) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // the escaped character cannot end the string
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        throw FileError(what, "JSON arrays and objects nested deeper than " + std::to_string(kMaxJsonDepth) +
                                  " levels (at byte " + std::to_string(i) + ")");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

template <class Json>
Json parse(std::string_view text, const std::string& what) {
  check_depth(text, what);
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // syntax, and numbers beyond a double
    throw FileError(what, std::string("not valid JSON: ") + e.what());
  }
}

}  // namespace

nlohmann::json parse_json(std::string_view text, const std::string& what) { return parse<nlohmann::json>(text, what); }

nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& what) {
  return parse<nlohmann::ordered_json>(text, what);
}

void sax_parse_json(std::string_view text, nlohmann::json::json_sax_t* sax, const std::string& what) {
  check_depth(text, what);
  try {
    nlohmann::json::sax_parse(text, sax);
  } catch (const nlohmann::json::exception& e) {
    throw FileError(what, std::string("not valid JSON: ") + e.what());
  }
}

nlohmann::ordered_json read_json_file(const std::string& path) { return parse_ordered_json(read_file(path), path); }

}  // namespace llada2
