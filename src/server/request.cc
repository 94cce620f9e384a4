#include "server/request.h"

#include <cmath>
#include <limits>
#include <set>

#include "llada2/error.h"
#include "llada2/json.h"
#include "server/tool_calls.h"

namespace llada2::server {

using json = nlohmann::ordered_json;

ApiError invalid_request(const std::string& message, const std::string& param, const std::string& code) {
  return ApiError(400, message, "invalid_request_error", param, code);
}

json error_body(const ApiError& e) {
  json err = json::object();
  err["message"] = e.what();
  err["type"] = e.type;
  err["param"] = e.param.empty() ? json(nullptr) : json(e.param);
  err["code"] = e.code.empty() ? json(nullptr) : json(e.code);
  return json{{"error", err}};
}

json parse_request_body(const std::string& body) {
  try {
    return parse_ordered_json(body, "the request body");
  } catch (const InputError& e) {
    throw invalid_request(e.what());
  }
}

namespace {

// Field readers: absent or null -> false (keep the default); a value of the wrong type -> 400.
const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

int64_t int_field(const json& v, const char* key) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      throw invalid_request(std::string("`") + key + "` is out of range", key);
    return v.get<int64_t>();
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9e18) return int64_t(d);
  }
  throw invalid_request(std::string("`") + key + "` must be an integer, got " + v.dump(), key);
}

double number_field(const json& v, const char* key) {
  if (!v.is_number()) throw invalid_request(std::string("`") + key + "` must be a number, got " + v.dump(), key);
  const double d = v.get<double>();
  if (!std::isfinite(d)) throw invalid_request(std::string("`") + key + "` must be finite", key);
  return d;
}

bool bool_field(const json& v, const char* key) {
  if (!v.is_boolean()) throw invalid_request(std::string("`") + key + "` must be true or false, got " + v.dump(), key);
  return v.get<bool>();
}

void check_range(bool ok, const char* key, const std::string& rule) {
  if (!ok) throw invalid_request(std::string("`") + key + "` " + rule, key);
}

std::vector<std::string> string_or_list(const json& v, const char* key, size_t max_items) {
  std::vector<std::string> out;
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (const auto& s : v) {
      if (!s.is_string())
        throw invalid_request(std::string("`") + key + "` must be a string or a list of strings", key);
      out.push_back(s.get<std::string>());
    }
  } else {
    throw invalid_request(std::string("`") + key + "` must be a string or a list of strings", key);
  }
  if (out.size() > max_items)
    throw invalid_request(std::string("`") + key + "` has more than " + std::to_string(max_items) + " items", key);
  return out;
}

// OpenAI content parts ([{"type": "text", "text": ...}, ...]) joined into the string templates expect;
// `developer` (OpenAI's newer name) is `system` to a chat template.
json normalize_messages(json messages) {
  for (auto& m : messages) {
    if (has_string(m, "role", "developer")) m["role"] = "system";
    auto content = m.find("content");
    if (content == m.end() || !content->is_array()) continue;
    std::string text;
    for (const auto& part : *content) {
      if (!part.is_object() || !has_string(part, "type", "text") || !part.contains("text") || !part["text"].is_string())
        throw invalid_request("only text content parts ({\"type\": \"text\", \"text\": ...}) are supported",
                              "messages");
      text += part["text"].get<std::string>();
    }
    *content = text;
  }
  return messages;
}

void check_messages(const json& messages) {
  if (!messages.is_array() || messages.empty())
    throw invalid_request("`messages` must be a non-empty list of {role, content} objects", "messages");
  for (const auto& m : messages) {
    if (!m.is_object()) throw invalid_request("each message must be an object", "messages");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) throw invalid_request("each message needs a string `role`", "messages");
    static const std::set<std::string> kRoles = {"system", "developer", "user", "assistant", "tool"};
    if (!kRoles.count(role->get<std::string>()))
      throw invalid_request("Invalid value for `role`: '" + role->get<std::string>() +
                                "'. Supported values are: 'system', 'developer', 'user', 'assistant' and 'tool'.",
                            "messages");
    if (auto calls = m.find("tool_calls"); calls != m.end() && !calls->is_null()) {
      if (role->get<std::string>() != "assistant" || !calls->is_array())
        throw invalid_request("`tool_calls` must be a list, on an assistant message", "messages");
      for (const auto& c : *calls)
        if (!c.is_object() || !c.contains("function") || !c["function"].is_object() ||
            !c["function"].contains("name") || !c["function"]["name"].is_string())
          throw invalid_request("each tool call needs `function` with a string `name` (and `arguments`)", "messages");
    }
    auto content = m.find("content");
    if (content != m.end() && !content->is_null() && !content->is_string() && !content->is_array())
      throw invalid_request("message `content` must be a string, a list of parts or null", "messages");
  }
}

// OpenAI fields without an implementation here. Each is accepted only where it asks for what the
// server does anyway (so clients that always send the default keep working); any other value gets
// 400 rather than a reply that silently ignores it. Fields this server does not know at all are
// ignored, as before, so that requests written for other servers still work.
struct Unsupported {
  const char* key;
  bool (*is_default)(const json& v);
  const char* why;
};

bool is_false(const json& v) { return v.is_boolean() && !v.get<bool>(); }
bool is_zero(const json& v) { return v.is_number() && v.get<double>() == 0.0; }
bool is_one(const json& v) { return v.is_number() && v.get<double>() == 1.0; }
bool is_empty_object(const json& v) { return v.is_object() && v.empty(); }
bool is_never(const json&) { return false; }
bool is_text_format(const json& v) { return v.is_object() && v.size() == 1 && has_string(v, "type", "text"); }
bool is_text_modality(const json& v) { return v == json::array({"text"}); }
bool is_no_forced_call(const json& v) { return v == "none" || v == "auto"; }
bool is_default_tier(const json& v) { return v == "auto" || v == "default"; }
bool is_empty_array(const json& v) { return v.is_array() && v.empty(); }

constexpr const char* kNoLogprobs =
    "log-probabilities are not available: a diffusion model commits tokens out of order over refinement steps, so "
    "the probability a token had when it was committed is not its probability given the text before it";

const Unsupported kUnsupported[] = {
    {"logprobs", is_false, kNoLogprobs},
    {"top_logprobs", is_never, kNoLogprobs},
    {"best_of", is_one, "is not supported beyond 1: ranking candidates needs log-probabilities; use `n`"},
    {"frequency_penalty", is_zero, "is not supported: only 0 (no penalty)"},
    {"presence_penalty", is_zero, "is not supported: only 0 (no penalty)"},
    {"logit_bias", is_empty_object, "is not supported: only {} (no bias)"},
    {"response_format", is_text_format,
     "is not supported beyond {\"type\": \"text\"}: the output is not constrained to JSON"},
    {"function_call", is_no_forced_call,
     "is not supported beyond \"auto\" and \"none\": a function call cannot be forced; the reply is plain text"},
    {"functions", is_empty_array, "is not supported: pass the functions as `tools`"},
    {"modalities", is_text_modality, "is not supported beyond [\"text\"]"},
    {"audio", is_never, "is not supported: the model writes text only"},
    {"prediction", is_never, "is not supported"},
    {"reasoning_effort", is_never, "is not supported"},
    {"verbosity", is_never, "is not supported"},
    {"web_search_options", is_never, "is not supported"},
    {"service_tier", is_default_tier, "is not supported beyond \"auto\" and \"default\": there is one tier"},
    {"store", is_false, "is not supported: completions are not stored"},
    {"echo", is_false, "is not supported: the prompt is not echoed"},
    {"suffix", is_never, "is not supported: text after the insertion point cannot be given"},
};

void reject_unsupported(const json& body) {
  for (const Unsupported& u : kUnsupported)
    if (const json* v = field(body, u.key); v && !u.is_default(*v))
      throw invalid_request(std::string("`") + u.key + "` " + u.why, u.key);
}

}  // namespace

CompletionRequest parse_completion_request(const json& body, bool chat, const Pipeline& pipe,
                                           const ServerOptions& options) {
  if (!body.is_object()) throw invalid_request("the request body must be a JSON object");
  const Tokenizer* tok = pipe.tokenizer();
  if (!tok) throw ApiError(500, "the model has no tokenizer.json, so it cannot serve text", "server_error");

  reject_unsupported(body);
  CompletionRequest r;
  r.chat = chat;
  if (const json* v = field(body, "model")) {
    if (!v->is_string()) throw invalid_request("`model` must be a string", "model");
    if (v->get<std::string>() != options.model_id)
      throw ApiError(
          404,
          "The model `" + v->get<std::string>() + "` does not exist; this server serves `" + options.model_id + "`.",
          "invalid_request_error", "model", "model_not_found");
  }

  GenerateOptions& g = r.gen;
  g.gen_length = options.default_max_tokens;
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (const json* v = field(body, key)) {
      g.gen_length = int_field(*v, key);
      check_range(g.gen_length >= 1 && g.gen_length <= options.max_tokens_limit, key,
                  "must be between 1 and " + std::to_string(options.max_tokens_limit));
    }
  }
  if (const json* v = field(body, "temperature")) {
    g.temperature = number_field(*v, "temperature");
    check_range(g.temperature >= 0.0, "temperature", "must be >= 0");
  }
  if (const json* v = field(body, "top_p")) {
    g.top_p = number_field(*v, "top_p");
    check_range(*g.top_p > 0.0 && *g.top_p <= 1.0, "top_p", "must be in (0, 1]");
  }
  if (const json* v = field(body, "top_k")) {
    const int64_t k = int_field(*v, "top_k");
    check_range(k >= 0, "top_k", "must be >= 0 (0: off)");
    if (k > 0) g.top_k = k;
  }
  if (const json* v = field(body, "seed")) {
    const int64_t s = int_field(*v, "seed");
    check_range(s >= 0, "seed", "must be >= 0");
    g.seed = uint64_t(s);
  }
  if (const json* v = field(body, "n")) {
    r.n = int_field(*v, "n");
    check_range(r.n >= 1 && r.n <= options.max_n, "n", "must be between 1 and " + std::to_string(options.max_n));
  }
  if (const json* v = field(body, "stream")) r.stream = bool_field(*v, "stream");
  if (const json* v = field(body, "llada2_canvas")) r.canvas = bool_field(*v, "llada2_canvas");
  if (const json* v = field(body, "stream_options")) {
    if (!v->is_object()) throw invalid_request("`stream_options` must be an object", "stream_options");
    if (!r.stream) throw invalid_request("`stream_options` is only allowed with \"stream\": true", "stream_options");
    if (const json* u = field(*v, "include_usage")) r.usage_chunk = bool_field(*u, "stream_options.include_usage");
  }
  if (const json* v = field(body, "stop")) {
    r.stop = string_or_list(*v, "stop", 16);
    for (const auto& s : r.stop) check_range(!s.empty(), "stop", "must not contain empty strings");
  }
  if (const json* v = field(body, "block_length")) {
    g.block_length = int_field(*v, "block_length");
    check_range(*g.block_length >= 1 && *g.block_length <= 4096, "block_length", "must be between 1 and 4096");
  }
  if (const json* v = field(body, "steps")) {
    g.num_inference_steps = int_field(*v, "steps");
    check_range(*g.num_inference_steps >= 1 && *g.num_inference_steps <= 4096, "steps", "must be between 1 and 4096");
  }
  // The thresholds reach both rules (GenerateOptions::levenshtein holds the LLaDA2.2 rules' own);
  // absent, each rule keeps its default (LLaDA2.1: 0.7 / 0.5, LLaDA2.2: 0.5 / 0.0).
  if (const json* v = field(body, "threshold")) {
    g.threshold = number_field(*v, "threshold");
    check_range(*g.threshold >= 0.0, "threshold", "must be >= 0");
    g.levenshtein.threshold = *g.threshold;
  }
  if (auto it = body.find("editing_threshold"); it != body.end()) {
    if (it->is_null()) {
      g.editing_threshold = 0.0;                       // the LLaDA2.1 rules edit only above a threshold > 0
      g.levenshtein.editing_threshold = std::nullopt;  // the LLaDA2.2 rules substitute above 0 too
    } else {
      g.editing_threshold = number_field(*it, "editing_threshold");
      check_range(*g.editing_threshold >= 0.0, "editing_threshold", "must be >= 0 or null (off)");
      g.levenshtein.editing_threshold = g.editing_threshold;
    }
  }
  g.decoding = options.decoding;
  if (const json* v = field(body, "decoding")) {
    if (!v->is_string()) throw invalid_request("`decoding` must be \"auto\", \"llada2.1\" or \"llada2.2\"", "decoding");
    try {
      g.decoding = parse_decoding(v->get<std::string>());
    } catch (const InputError& e) {
      throw invalid_request(e.what(), "decoding");
    }
  }
  if (const json* v = field(body, "max_post_steps")) {
    g.max_post_steps = int_field(*v, "max_post_steps");
    check_range(g.max_post_steps >= 0 && g.max_post_steps <= 4096, "max_post_steps", "must be between 0 and 4096");
  }
  if (const json* v = field(body, "attention")) {
    if (!v->is_string())
      throw invalid_request("`attention` must be \"block_causal\" or \"bidirectional\"", "attention");
    try {
      g.attention = parse_attention_mode(v->get<std::string>());
    } catch (const InputError& e) {
      throw invalid_request(e.what(), "attention");
    }
  }

  try {
    if (chat) {
      const json* messages = field(body, "messages");
      if (!messages) throw invalid_request("`messages` is required", "messages");
      check_messages(*messages);
      json tools = nullptr;
      if (const json* v = field(body, "tools"); v && !v->is_null()) {
        r.tools = tool_names(*v);
        if (!r.tools.empty()) tools = *v;
      }
      // tool_choice: "auto" (the default with tools), "none" (the tools are not offered, nothing is
      // parsed), "required" or {"type": "function", "function": {"name": ...}} (the reply starts as
      // that call: the prompt ends with its opening).
      std::string choice = r.tools.empty() ? "none" : "auto";
      if (const json* v = field(body, "tool_choice"); v && !v->is_null()) {
        if (v->is_string() && (*v == "none" || *v == "auto" || *v == "required")) {
          choice = v->get<std::string>();
        } else if (v->is_object() && has_string(*v, "type", "function") && v->contains("function") &&
                   (*v)["function"].is_object() && (*v)["function"].contains("name") &&
                   (*v)["function"]["name"].is_string()) {
          choice = "name:" + (*v)["function"]["name"].get<std::string>();
        } else {
          throw invalid_request(
              "`tool_choice` must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": "
              "{\"name\": ...}}",
              "tool_choice");
        }
        if (choice == "auto" && r.tools.empty()) choice = "none";  // what clients send by default: no effect
        if (choice != "none" && r.tools.empty())
          throw invalid_request("`tool_choice` " + v->dump() + " needs `tools`", "tool_choice");
        if (choice.rfind("name:", 0) == 0 && !r.tools.count(choice.substr(5)))
          throw invalid_request("`tool_choice` names `" + choice.substr(5) + "`, which is not in `tools`",
                                "tool_choice");
      }
      if (choice == "none") tools = nullptr;
      r.parse_tool_calls = choice != "none";
      if (choice == "required") r.forced_prefix = "<tool_call>\n{\"name\": \"";
      if (choice.rfind("name:", 0) == 0)
        r.forced_prefix = "<tool_call>\n{\"name\": " + json(choice.substr(5)).dump() + ", \"arguments\": ";
      if (!pipe.chat_template()) throw invalid_request("the model has no chat template; use /v1/completions");
      const std::string rendered =
          pipe.apply_chat_template(normalize_messages(*messages), tools, true) + r.forced_prefix;
      r.prompts.push_back(tok->encode(rendered, false));
    } else {
      if (const json* v = field(body, "tool_choice"); v && !v->is_null() && *v != "none" && *v != "auto")
        throw invalid_request("`tool_choice` beyond \"auto\" and \"none\" needs /v1/chat/completions with `tools`",
                              "tool_choice");
      const json* prompt = field(body, "prompt");
      if (!prompt) throw invalid_request("`prompt` is required", "prompt");
      for (const auto& p : string_or_list(*prompt, "prompt", 64)) r.prompts.push_back(tok->encode(p, true));
      if (r.prompts.empty()) throw invalid_request("`prompt` must not be an empty list", "prompt");
    }
  } catch (const InputError& e) {
    throw invalid_request(e.what(), chat ? "messages" : "prompt");
  }
  const int64_t context = pipe.model().config().max_position_embeddings;
  for (const auto& p : r.prompts) {
    if (p.empty()) throw invalid_request("the prompt encodes to no tokens", chat ? "messages" : "prompt");
    if (context > 0 && int64_t(p.size()) + g.gen_length > context)
      throw invalid_request("This model's context is " + std::to_string(context) + " tokens, but the prompt has " +
                                std::to_string(p.size()) + " and max_tokens is " + std::to_string(g.gen_length) + ".",
                            chat ? "messages" : "prompt", "context_length_exceeded");
  }
  return r;
}

}  // namespace llada2::server
