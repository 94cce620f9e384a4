// llada2 tokenize / detokenize: JSONL in, JSONL out, one output line per input line.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_util.h"
#include "commands.h"
#include "default_model.h"
#include "llada2/error.h"
#include "llada2/json.h"
#include "llada2/tokenizer.h"

namespace llada2::cli {
namespace {

using json = nlohmann::json;

// Calls f(line_number, parsed object) for every line of FILE ("-": stdin).
template <class F>
void for_each_jsonl(const std::string& path, F&& f) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) throw FileError(path, "cannot open");
    in = &file;
  }
  std::string line;
  size_t n = 0;
  while (std::getline(*in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const json j = parse_json(line, path + ":" + std::to_string(n));
    if (!j.is_object()) throw InputError(path + ":" + std::to_string(n) + ": expected a JSON object");
    try {
      f(n, j);
    } catch (const InputError& e) {
      throw InputError(path + ":" + std::to_string(n) + ": " + e.what());
    }
  }
  if (in->bad()) throw FileError(path, "read error");
}

void print_line(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  s += '\n';
  std::fwrite(s.data(), 1, s.size(), stdout);
}

}  // namespace

int cmd_tokenize(int argc, char** argv) {
  CLI::App app{
      "Encode text with the tokenizer.json of DIR (tokenizer_config.json optional), exactly as Hugging Face\n"
      "tokenizers does. Reads {\"text\": ...} JSON lines from --input (or the one TEXT argument) and writes\n"
      "one {\"ids\": [...]} line per input line, in order.",
      "llada2 tokenize"};
  std::string model, input, text;
  bool no_special = false;
  app.add_option("-m,--model", model, "folder with tokenizer.json (default: the bundled demo model)")->type_name("DIR");
  app.add_flag("--no-special", no_special, "do not add the post-processor's special tokens (e.g. BOS)");
  auto* in_opt = app.add_option("--input", input, "JSONL file of {\"text\": ...} lines ('-' reads stdin)")
                     ->type_name("FILE.jsonl");
  auto* text_opt = app.add_option("text", text, "a single text to encode instead of --input");
  in_opt->excludes(text_opt);
  if (int rc = parse_args(app, argc, argv); rc >= 0) return rc;
  if (!*in_opt && !*text_opt) throw InputError("tokenize: give --input FILE.jsonl or a TEXT argument");
  model = resolve_model_dir(model, "tokenize");

  Tokenizer tok = Tokenizer::from_dir(model);
  if (*text_opt) {
    print_line(json{{"ids", tok.encode(text, !no_special)}});
    return 0;
  }
  for_each_jsonl(input, [&](size_t, const json& j) {
    auto it = j.find("text");
    if (it == j.end() || !it->is_string()) throw InputError("expected {\"text\": string}");
    print_line(json{{"ids", tok.encode(it->get_ref<const std::string&>(), !no_special)}});
  });
  return 0;
}

int cmd_detokenize(int argc, char** argv) {
  CLI::App app{
      "Decode token ids with the tokenizer.json of DIR, exactly as Hugging Face tokenizers does. Reads\n"
      "{\"ids\": [...]} JSON lines from --input (or the IDS arguments) and writes one {\"text\": ...} line per\n"
      "input line, in order.",
      "llada2 detokenize"};
  std::string model, input;
  std::vector<std::string> id_args;
  bool skip_special = false;
  app.add_option("-m,--model", model, "folder with tokenizer.json (default: the bundled demo model)")->type_name("DIR");
  app.add_flag("--skip-special", skip_special, "leave out special tokens (added tokens marked special)");
  auto* in_opt = app.add_option("--input", input, "JSONL file of {\"ids\": [...]} lines ('-' reads stdin)")
                     ->type_name("FILE.jsonl");
  auto* ids_opt = app.add_option("ids", id_args, "token ids to decode instead of --input (e.g. 12 7 99, or 12,7,99)")
                      ->type_name("ID");
  in_opt->excludes(ids_opt);
  if (int rc = parse_args(app, argc, argv); rc >= 0) return rc;
  if (!*in_opt && !*ids_opt) throw InputError("detokenize: give --input FILE.jsonl or token IDS");
  model = resolve_model_dir(model, "detokenize");

  Tokenizer tok = Tokenizer::from_dir(model);
  if (*ids_opt) {
    std::vector<int64_t> ids;
    for (const auto& arg : id_args)
      for (int64_t id : parse_id_list(arg, "detokenize")) ids.push_back(id);
    print_line(json{{"text", tok.decode(ids, skip_special)}});
    return 0;
  }
  for_each_jsonl(input, [&](size_t, const json& j) {
    auto it = j.find("ids");
    if (it == j.end() || !it->is_array()) throw InputError("expected {\"ids\": [integers]}");
    std::vector<int64_t> ids;
    ids.reserve(it->size());
    for (const auto& v : *it) {
      if (!v.is_number_integer()) throw InputError("ids must be integers");
      ids.push_back(v.get<int64_t>());
    }
    print_line(json{{"text", tok.decode(ids, skip_special)}});
  });
  return 0;
}

}  // namespace llada2::cli
