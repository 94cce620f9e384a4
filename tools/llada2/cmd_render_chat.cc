// llada2 render-chat: renders conversations with a checkpoint's chat template, one JSON line
// in, one JSON line out.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

#include "cli_util.h"
#include "commands.h"
#include "default_model.h"
#include "llada2/chat_template.h"
#include "llada2/error.h"
#include "llada2/json.h"

namespace llada2::cli {
namespace {

using nlohmann::ordered_json;
namespace fs = std::filesystem;

// The template (found as the tokenizer finds it) and the special-token variables transformers
// passes to it.
struct ModelChat {
  std::string source;
  ordered_json special_tokens = ordered_json::object();
};

ModelChat load_model_chat(const fs::path& dir) {
  ModelChat mc;
  fs::path cfg_path = dir / "tokenizer_config.json";
  ordered_json cfg = ordered_json::object();
  if (fs::exists(cfg_path)) {
    cfg = read_json_file(cfg_path.string());
    if (!cfg.is_object()) throw FileError(cfg_path.string(), "expected a JSON object");
  }
  mc.source = find_chat_template(dir.string());
  if (mc.source.empty())
    throw FileError(dir.string(),
                    "no chat template: neither chat_template.jinja nor a chat_template entry in tokenizer_config.json");
  auto token_text = [](const ordered_json& t) -> std::optional<std::string> {
    if (t.is_string()) return t.get<std::string>();
    if (t.is_object() && t.contains("content") && t["content"].is_string()) return t["content"].get<std::string>();
    return std::nullopt;
  };
  // special_tokens_map.json fills in the tokens tokenizer_config.json leaves out, as in transformers.
  ordered_json map = ordered_json::object();
  fs::path map_path = dir / "special_tokens_map.json";
  if (fs::exists(map_path)) {
    map = read_json_file(map_path.string());
    if (!map.is_object()) throw FileError(map_path.string(), "expected a JSON object");
  }
  for (const ordered_json* src : {&cfg, &map}) {
    for (const char* key :
         {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
      if (mc.special_tokens.contains(key) || !src->contains(key)) continue;
      if (auto s = token_text((*src)[key])) mc.special_tokens[key] = *s;
    }
    if (!mc.special_tokens.contains("additional_special_tokens") && src->contains("additional_special_tokens") &&
        (*src)["additional_special_tokens"].is_array()) {
      ordered_json list = ordered_json::array();
      for (const auto& t : (*src)["additional_special_tokens"])
        if (auto s = token_text(t)) list.push_back(*s);
      mc.special_tokens["additional_special_tokens"] = list;
    }
  }
  return mc;
}

}  // namespace

int cmd_render_chat(int argc, char** argv) {
  CLI::App app{
      "Render chat conversations with a checkpoint's chat template (Jinja, rendered as transformers does).\n"
      "Reads JSON lines {\"messages\": [...], \"tools\": [...] or null, \"add_generation_prompt\": bool,\n"
      "\"extra_vars\": {...}} and writes one {\"rendered\": \"...\"} line per input line. The template is\n"
      "DIR/chat_template.jinja or else the chat_template of DIR/tokenizer_config.json (a string, or a list of\n"
      "{name, template} of which \"default\" is used). bos_token, eos_token and the other special tokens of\n"
      "tokenizer_config.json (or special_tokens_map.json) are passed to the template unless extra_vars sets them;\n"
      "other extra_vars keys (e.g. enable_thinking) are passed as they are.",
      "llada2 render-chat"};
  std::string model, input;
  std::string input_arg;
  app.add_option("-m,--model", model,
                 "checkpoint folder with tokenizer_config.json and/or chat_template.jinja (default: the bundled demo "
                 "model)")
      ->check(CLI::ExistingDirectory);
  auto* in_opt = app.add_option("--input", input, "JSON-lines file to read (default: standard input)");
  auto* file_opt = app.add_option("file", input_arg, "the JSON-lines file, instead of --input");
  in_opt->excludes(file_opt);
  if (int rc = parse_args(app, argc, argv); rc >= 0) return rc;
  if (*file_opt) input = input_arg;
  model = resolve_model_dir(model, "render-chat");

  ModelChat mc = load_model_chat(model);
  ChatTemplate tpl(mc.source);

  std::ifstream file;
  if (!input.empty()) {
    file.open(input, std::ios::binary);
    if (!file) throw FileError(input, "cannot open");
  }
  std::istream& in = input.empty() ? std::cin : file;
  std::string where = input.empty() ? "stdin" : input;
  std::string line;
  for (size_t lineno = 1; std::getline(in, line); ++lineno) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    auto bad = [&](const std::string& msg) {
      return InputError(where + " line " + std::to_string(lineno) + ": " + msg);
    };
    ordered_json req = parse_ordered_json(line, where + " line " + std::to_string(lineno));
    if (!req.is_object()) throw bad("expected a JSON object");
    if (!req.contains("messages") || !req["messages"].is_array()) throw bad("\"messages\" must be an array");
    // Moved, not copied: copying JSON recurses over its nesting, which is the template engine's
    // to bound.
    ordered_json tools = req.contains("tools") ? std::move(req["tools"]) : ordered_json();
    if (!tools.is_null() && !tools.is_array()) throw bad("\"tools\" must be an array or null");
    bool agp = false;
    if (req.contains("add_generation_prompt")) {
      if (!req["add_generation_prompt"].is_boolean()) throw bad("\"add_generation_prompt\" must be true or false");
      agp = req["add_generation_prompt"].get<bool>();
    }
    ordered_json vars = mc.special_tokens;
    if (req.contains("extra_vars") && !req["extra_vars"].is_null()) {
      if (!req["extra_vars"].is_object()) throw bad("\"extra_vars\" must be an object");
      for (auto it = req["extra_vars"].begin(); it != req["extra_vars"].end(); ++it)
        vars[it.key()] = std::move(it.value());
    }
    std::string rendered;
    try {
      rendered = tpl.render(req["messages"], tools, agp, vars);
    } catch (const InputError& e) {
      throw bad(e.what());
    }
    ordered_json out = {{"rendered", rendered}};
    std::cout << out.dump(-1, ' ', false, ordered_json::error_handler_t::replace) << '\n';
  }
  std::cout.flush();
  return 0;
}

}  // namespace llada2::cli
