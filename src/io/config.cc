#include "llada2/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "llada2/error.h"
#include "llada2/json.h"

namespace llada2 {

using nlohmann::json;

namespace {

// A short rendering of a value for error messages. json::dump recurses once per nesting level,
// so a deeply nested value in a hostile config would exhaust the stack; this stops at a small
// depth and length.
std::string brief(const json& v, int depth = 0) {
  if (!v.is_structured()) {
    std::string s = v.dump();
    return s.size() > 80 ? s.substr(0, 77) + "..." : s;
  }
  const char* open = v.is_array() ? "[" : "{";
  const char* close = v.is_array() ? "]" : "}";
  if (v.empty()) return std::string(open) + close;
  if (depth >= 3) return std::string(open) + "..." + close;
  std::string s = open;
  size_t i = 0;
  for (auto it = v.begin(); it != v.end(); ++it, ++i) {
    if (i) s += ", ";
    if (i == 8 || s.size() > 120) {
      s += "...";
      break;
    }
    if (v.is_object()) s += brief(json(it.key())) + ": ";
    s += brief(*it, depth + 1);
  }
  return s + close;
}

class Reader {
 public:
  Reader(const json& j, const std::string& label) : j_(j), label_(label) {}

  const json* find(const char* key) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  int64_t integer(const char* key, int64_t min_value) const {
    const json* v = find(key);
    if (!v) throw FileError(label_, "missing field '" + std::string(key) + "'");
    return as_int(*v, key, min_value);
  }

  std::optional<int64_t> opt_integer(const char* key, int64_t min_value) const {
    const json* v = find(key);
    if (!v) return std::nullopt;
    return as_int(*v, key, min_value);
  }

  double number(const char* key) const {
    const json* v = find(key);
    if (!v) throw FileError(label_, "missing field '" + std::string(key) + "'");
    return as_number(*v, key);
  }

  double opt_number(const char* key, double fallback) const {
    const json* v = find(key);
    return v ? as_number(*v, key) : fallback;
  }

  bool boolean(const char* key, bool fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_boolean()) bad(key, "must be true or false");
    return v->get<bool>();
  }

  [[noreturn]] void bad(const char* key, const std::string& why) const {
    throw FileError(label_, "field '" + std::string(key) + "' " + why);
  }

 private:
  int64_t as_int(const json& v, const char* key, int64_t min_value) const {
    int64_t x;
    if (v.is_number_integer()) {
      x = v.get<int64_t>();
    } else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() &&
               std::fabs(v.get<double>()) < 9e15) {
      x = int64_t(v.get<double>());
    } else {
      bad(key, "must be an integer, got " + brief(v));
    }
    if (x < min_value) bad(key, "must be >= " + std::to_string(min_value) + ", got " + std::to_string(x));
    return x;
  }

  double as_number(const json& v, const char* key) const {
    if (!v.is_number()) bad(key, "must be a number, got " + brief(v));
    double x = v.get<double>();
    if (!std::isfinite(x)) bad(key, "must be finite");
    return x;
  }

  const json& j_;
  std::string label_;
};

std::optional<int64_t> first_id(const json& j, const char* key, const std::string& label) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_array() && !it->empty() && (*it)[0].is_number_integer()) return (*it)[0].get<int64_t>();
  throw FileError(label, "field '" + std::string(key) + "' must be a token id");
}

// Every id of an id field: one integer or a list of integers (as generation configs write eos_token_id).
std::vector<int64_t> all_ids(const json& j, const char* key, const std::string& label) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  std::vector<int64_t> ids;
  const bool list = it->is_array();
  for (const json& v : list ? *it : json::array({*it})) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
      throw FileError(label,
                      "field '" + std::string(key) + "' must be a token id or a list of token ids, got " + brief(*it));
    if (std::find(ids.begin(), ids.end(), v.get<int64_t>()) == ids.end()) ids.push_back(v.get<int64_t>());
  }
  return ids;
}

}  // namespace

ModelConfig ModelConfig::from_json_text(const std::string& text, const std::string& label) {
  const json j = parse_json(text, label);
  if (!j.is_object()) throw FileError(label, "must be a JSON object");
  Reader r(j, label);
  ModelConfig c;
  if (const json* mt = r.find("model_type")) {
    if (!mt->is_string()) r.bad("model_type", "must be a string");
    std::string m = mt->get<std::string>();
    if (m.rfind("llada2_moe", 0) != 0)
      r.bad("model_type", "is '" + m + "'; this engine runs llada2_moe checkpoints (LLaDA2.0 / LLaDA2.1 / LLaDA2.2)");
  }
  c.vocab_size = r.integer("vocab_size", 1);
  c.hidden_size = r.integer("hidden_size", 1);
  c.num_hidden_layers = r.integer("num_hidden_layers", 1);
  c.num_attention_heads = r.integer("num_attention_heads", 1);
  c.num_key_value_heads = r.integer("num_key_value_heads", 1);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    r.bad("num_key_value_heads", "(" + std::to_string(c.num_key_value_heads) + ") must divide num_attention_heads (" +
                                     std::to_string(c.num_attention_heads) + ")");
  c.head_dim = r.opt_integer("head_dim", 1).value_or(0);
  if (c.head_dim == 0) {
    if (c.hidden_size % c.num_attention_heads != 0)
      r.bad("head_dim", "is missing and hidden_size is not divisible by num_attention_heads");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  c.num_experts = r.opt_integer("num_experts", 1).value_or(0);
  // LLaDA2.2: block routing (expert_capacity, block_size) and the Levenshtein edit ids.
  for (const char* k : {"expert_capacity", "block_size", "delete_token_id", "split_token_id"})
    if (r.find(k)) c.llada22 = true;
  c.expert_capacity = r.opt_integer("expert_capacity", 0).value_or(0);
  c.block_size = r.opt_integer("block_size", 1).value_or(0);
  if (c.expert_capacity > 0 && c.num_experts == 0) r.bad("expert_capacity", "needs num_experts (an MoE model)");
  if (c.expert_capacity > 0 && c.block_size == 0)
    r.bad("block_size", "is missing: block routing (expert_capacity > 0) routes chunks of block_size positions");
  c.first_k_dense_replace = r.opt_integer("first_k_dense_replace", 0).value_or(0);
  bool any_dense = c.num_experts == 0 || c.first_k_dense_replace > 0;
  if (any_dense) c.intermediate_size = r.integer("intermediate_size", 1);
  if (c.num_experts > 0) {
    c.moe_intermediate_size = r.integer("moe_intermediate_size", 1);
    c.num_experts_per_tok = r.integer("num_experts_per_tok", 1);
    if (c.num_experts_per_tok > c.num_experts)
      r.bad("num_experts_per_tok", "must be <= num_experts (" + std::to_string(c.num_experts) + ")");
    c.num_shared_experts = r.opt_integer("num_shared_experts", 0).value_or(0);
    if (c.expert_capacity > 0) {
      // Block routing applies no group limit: n_group / topk_group are read but unused.
      if (c.expert_capacity < c.num_experts_per_tok)
        r.bad("expert_capacity", "must be >= num_experts_per_tok (" + std::to_string(c.num_experts_per_tok) + ")");
      c.n_group = r.opt_integer("n_group", 1).value_or(1);
      c.topk_group = r.opt_integer("topk_group", 1).value_or(1);
    } else {
      c.n_group = r.integer("n_group", 1);
      c.topk_group = r.integer("topk_group", 1);
      if (c.num_experts % c.n_group != 0) r.bad("n_group", "must divide num_experts");
      if (c.topk_group > c.n_group) r.bad("topk_group", "must be <= n_group");
      if (c.num_experts / c.n_group < 2)
        r.bad("n_group", "leaves fewer than 2 experts per group (the router sums each group's top 2)");
      if (c.num_experts_per_tok > c.topk_group * (c.num_experts / c.n_group))
        r.bad("num_experts_per_tok", "exceeds the experts available in topk_group groups");
    }
    c.routed_scaling_factor = r.number("routed_scaling_factor");
    if (const json* sf = r.find("score_function")) {
      if (!sf->is_string() || sf->get<std::string>() != "sigmoid")
        r.bad("score_function", "must be \"sigmoid\" (the only router LLaDA2 uses), got " + brief(*sf));
    }
  }
  c.rms_norm_eps = r.number("rms_norm_eps");
  if (c.rms_norm_eps < 0) r.bad("rms_norm_eps", "must be >= 0");
  c.rope_theta = r.number("rope_theta");
  if (c.rope_theta <= 0) r.bad("rope_theta", "must be > 0");
  c.partial_rotary_factor = r.opt_number("partial_rotary_factor", 1.0);
  if (c.partial_rotary_factor <= 0 || c.partial_rotary_factor > 1) r.bad("partial_rotary_factor", "must be in (0, 1]");
  c.rotary_dim = int64_t(double(c.head_dim) * c.partial_rotary_factor);
  if (c.rotary_dim < 2 || c.rotary_dim % 2 != 0)
    r.bad("partial_rotary_factor", "gives an odd or empty rotary dimension " + std::to_string(c.rotary_dim));
  if (const json* rs = r.find("rope_scaling")) {
    std::string type;
    if (rs->is_object()) {
      if (rs->contains("rope_type") && (*rs)["rope_type"].is_string())
        type = (*rs)["rope_type"];
      else if (rs->contains("type") && (*rs)["type"].is_string())
        type = (*rs)["type"];
    }
    if (type != "default") r.bad("rope_scaling", "is " + brief(*rs) + "; only the default rope (null) is supported");
  }
  if (const json* act = r.find("hidden_act")) {
    if (!act->is_string() || act->get<std::string>() != "silu")
      r.bad("hidden_act", "must be \"silu\", got " + brief(*act));
  }
  c.use_qk_norm = r.boolean("use_qk_norm", false);
  c.use_qkv_bias = r.boolean("use_qkv_bias", false);
  c.use_bias = r.boolean("use_bias", true);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  c.max_position_embeddings = r.opt_integer("max_position_embeddings", 1).value_or(0);
  c.pad_token_id = r.opt_integer("pad_token_id", 0);
  c.mask_token_id = first_id(j, "mask_token_id", label);
  c.eos_token_id = first_id(j, "eos_token_id", label);
  c.stop_token_ids = all_ids(j, "eos_token_id", label);
  c.delete_token_id = r.opt_integer("delete_token_id", 0);
  c.split_token_id = r.opt_integer("split_token_id", 0);
  for (const char* k : {"delete_token_id", "split_token_id"}) {
    const std::optional<int64_t>& id = k[0] == 'd' ? c.delete_token_id : c.split_token_id;
    if (id && *id >= c.vocab_size)
      r.bad(k, "is " + std::to_string(*id) + ", outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
  }
  if (c.delete_token_id && c.delete_token_id == c.split_token_id)
    r.bad("split_token_id", "must differ from delete_token_id");
  if (const json* d = r.find("torch_dtype"))
    c.torch_dtype = d->is_string() ? d->get<std::string>() : "";
  else if (const json* d2 = r.find("dtype"))
    c.torch_dtype = d2->is_string() ? d2->get<std::string>() : "";
  return c;
}

ModelConfig ModelConfig::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileError(path, "cannot open (a checkpoint folder needs config.json)");
  std::stringstream ss;
  ss << in.rdbuf();
  ModelConfig c = from_json_text(ss.str(), path);
  const std::string gen = (std::filesystem::path(path).parent_path() / "generation_config.json").string();
  std::ifstream gin(gen, std::ios::binary);
  if (!gin) return c;
  std::stringstream gs;
  gs << gin.rdbuf();
  const json g = parse_json(gs.str(), gen);
  if (!g.is_object()) throw FileError(gen, "must be a JSON object");
  for (int64_t id : all_ids(g, "eos_token_id", gen))
    if (std::find(c.stop_token_ids.begin(), c.stop_token_ids.end(), id) == c.stop_token_ids.end())
      c.stop_token_ids.push_back(id);
  return c;
}

}  // namespace llada2
