// Public face of the chat-template engine: parse once, render per conversation.
#include "llada2/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "jinja/parser.h"
#include "jinja/runtime.h"
#include "llada2/error.h"

namespace llada2 {
namespace {

[[noreturn]] void rethrow(const jinja::TemplateError& e) {
  if (e.user_raised) throw InputError(e.message);
  if (e.line > 0)
    throw InputError("chat template line " + std::to_string(e.line) + ", column " + std::to_string(e.col) + ": " +
                     e.message);
  throw InputError("chat template: " + e.message);
}

}  // namespace

ChatTemplate::ChatTemplate(const std::string& source) : ChatTemplate(source, Limits{}) {}

ChatTemplate::ChatTemplate(const std::string& source, const Limits& limits) : limits_(limits) {
  try {
    tpl_ = jinja::parse_template(source, limits_.max_depth);
  } catch (const jinja::TemplateError& e) {
    rethrow(e);
  }
}

ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

namespace {

// Both JSON flavours convert straight into values: converting one into the other first would
// recurse over the caller's nesting before the depth limit is checked.
template <typename Json>
std::string render_with(const jinja::Template& tpl, const ChatTemplate::Limits& limits, const Json& messages,
                        const Json& tools, bool add_generation_prompt, const Json& extra_vars) {
  if (!extra_vars.is_null() && !extra_vars.is_object())
    throw InputError("chat template: extra variables must be a JSON object");
  jinja::Renderer r;
  r.limits = limits;
  r.frame = r.root = std::make_shared<jinja::Frame>();
  auto& vars = r.frame->vars;
  std::string out;
  try {
    vars["documents"] = jinja::Value::none();  // transformers always passes documents (None by default)
    if (extra_vars.is_object())
      for (auto it = extra_vars.begin(); it != extra_vars.end(); ++it)
        vars[it.key()] = jinja::from_json(it.value(), "extra variable '" + it.key() + "'");
    vars["messages"] = jinja::from_json(messages, "messages");
    vars["tools"] = jinja::from_json(tools, "tools");
    vars["add_generation_prompt"] = jinja::Value::boolean(add_generation_prompt);
    jinja::render(r, tpl.body, out);
  } catch (const jinja::TemplateError& e) {
    rethrow(e);
  }
  return out;
}

}  // namespace

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                                 bool add_generation_prompt, const nlohmann::ordered_json& extra_vars) const {
  return render_with(*tpl_, limits_, messages, tools, add_generation_prompt, extra_vars);
}

std::string ChatTemplate::render(const nlohmann::json& messages, const nlohmann::json& tools,
                                 bool add_generation_prompt, const nlohmann::json& extra_vars) const {
  return render_with(*tpl_, limits_, messages, tools, add_generation_prompt, extra_vars);
}

std::string find_chat_template(const std::string& dir) {
  namespace fs = std::filesystem;
  auto read = [](const fs::path& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw FileError(path.string(), "cannot open");
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  fs::path jinja_path = fs::path(dir) / "chat_template.jinja", cfg_path = fs::path(dir) / "tokenizer_config.json";
  if (fs::exists(jinja_path)) return read(jinja_path);
  if (!fs::exists(cfg_path)) return "";
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(read(cfg_path));
  } catch (const nlohmann::json::parse_error& e) {
    throw FileError(cfg_path.string(), std::string("not valid JSON: ") + e.what());
  }
  if (!cfg.is_object()) throw FileError(cfg_path.string(), "expected a JSON object");
  auto it = cfg.find("chat_template");
  if (it == cfg.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array())
    throw FileError(cfg_path.string(), "chat_template must be a string or a list of {name, template}");
  const nlohmann::json* chosen = nullptr;
  for (const auto& t : *it) {
    if (!t.is_object() || !t.contains("name") || !t["name"].is_string() || !t.contains("template") ||
        !t["template"].is_string())
      throw FileError(cfg_path.string(), "chat_template must be a string or a list of {name, template}");
    if (t["name"] == "default") chosen = &t["template"];
  }
  if (!chosen) throw FileError(cfg_path.string(), "chat_template lists no template named \"default\"");
  return chosen->get<std::string>();
}

}  // namespace llada2
