// Chat templates: the Jinja subset that Hugging Face chat templates use, rendered the way
// transformers renders them (trim_blocks, lstrip_blocks, its own tojson, raise_exception,
// strftime_now, loop controls), with Python value semantics (repr, truthiness, Undefined).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace llada2 {

namespace jinja {
struct Template;
}

class ChatTemplate {
 public:
  // Bounds that keep a hostile template (one shipped in a downloaded checkpoint) or hostile
  // messages from exhausting time, memory or stack; going past one is an InputError. Values
  // (messages, tools, extra variables and whatever the template builds) may also nest at most
  // 128 levels deep (jinja::kMaxNesting); tojson, str, comparisons and the rest walk no deeper.
  struct Limits {
    size_t max_output_bytes = size_t(256) << 20;  // also bounds every intermediate string or list
    // Evaluated expressions + executed statements + loop iterations, per render. The real
    // templates (Qwen3, Llama 3, DeepSeek-V3, Gemma 3, Ling) take a few hundred per message.
    uint64_t max_steps = 10'000'000;
    // Parse-time nesting of expressions and blocks; at render time, expressions, blocks and
    // macro calls together may nest 3 * max_depth deep (a macro that calls itself forever stops
    // there).
    int max_depth = 200;
  };

  // Parses the template; throws InputError ("chat template line L, column C: ...") on syntax errors.
  explicit ChatTemplate(const std::string& source);
  ChatTemplate(const std::string& source, const Limits& limits);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // Renders with `messages` (array), `tools` (array or null), `add_generation_prompt` and
  // `extra_vars` (an object merged into the context: bos_token, eos_token, ... and user kwargs).
  // Runtime errors throw InputError with the position; raise_exception(msg) throws InputError(msg).
  // A parsed template may be rendered from several threads at once.
  // ordered_json keeps the caller's key order, which `tojson` prints.
  std::string render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                     bool add_generation_prompt,
                     const nlohmann::ordered_json& extra_vars = nlohmann::ordered_json::object()) const;
  // nlohmann::json sorts object keys, so `tojson` prints them sorted.
  std::string render(const nlohmann::json& messages, const nlohmann::json& tools, bool add_generation_prompt,
                     const nlohmann::json& extra_vars = nlohmann::json::object()) const;

 private:
  std::unique_ptr<jinja::Template> tpl_;
  Limits limits_;
};

// The chat template of a checkpoint folder, found as transformers finds it: DIR/chat_template.jinja
// if present, else the "chat_template" entry of DIR/tokenizer_config.json, either a string or a
// list of {name, template} of which the one named "default" is used. Returns "" when the folder
// has neither. Throws FileError when tokenizer_config.json is malformed or its list has no
// "default" (transformers refuses to pick one). The tokenizer (and so the pipeline and the
// server) and `llada2 render-chat` both use this.
std::string find_chat_template(const std::string& dir);

}  // namespace llada2
