#include "llada2/call_json.h"

#include <cmath>
#include <functional>
#include <limits>

#include "llada2/error.h"

namespace llada2 {

using json = nlohmann::ordered_json;

namespace {

[[noreturn]] void bad(const std::string& key, const std::string& why) {
  throw InputError("call argument `" + key + "` " + why);
}

int64_t as_int(const json& v, const std::string& key) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      bad(key, "is out of range");
    return v.get<int64_t>();
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9e18) return int64_t(d);
  }
  bad(key, "must be an integer, got " + v.dump());
}

double as_double(const json& v, const std::string& key) {
  if (!v.is_number()) bad(key, "must be a number, got " + v.dump());
  return v.get<double>();
}

bool as_bool(const json& v, const std::string& key) {
  if (!v.is_boolean()) bad(key, "must be true or false, got " + v.dump());
  return v.get<bool>();
}

std::string as_string(const json& v, const std::string& key) {
  if (!v.is_string()) bad(key, "must be a string, got " + v.dump());
  return v.get<std::string>();
}

// Nested lists of numbers -> IdTensor with the shape and dtype torch.tensor() would infer.
IdTensor as_ids(const json& v, const std::string& key) {
  IdTensor t;
  const json* cur = &v;
  while (cur->is_array()) {
    t.shape.push_back(int64_t(cur->size()));
    if (cur->empty()) break;
    cur = &(*cur)[0];
  }
  if (t.shape.empty()) bad(key, "must be a list of token ids or a list of rows");
  bool any_float = false, any_bool = false;
  std::function<void(const json&, size_t)> walk = [&](const json& node, size_t depth) {
    if (depth == t.shape.size()) {
      if (node.is_boolean()) {
        any_bool = true;
        t.values.push_back(node.get<bool>() ? 1 : 0);
      } else if (node.is_number_integer()) {
        t.values.push_back(as_int(node, key));
      } else if (node.is_number_float()) {
        any_float = true;
        double d = node.get<double>();
        t.values.push_back(std::isfinite(d) && std::fabs(d) < 9e18 ? int64_t(d) : 0);
      } else {
        bad(key, "must contain only numbers, got " + node.dump());
      }
      return;
    }
    if (!node.is_array() || int64_t(node.size()) != t.shape[depth])
      bad(key, "is ragged: every row must have the same length");
    for (const json& c : node) walk(c, depth + 1);
  };
  walk(v, 0);
  if (any_float)
    t.dtype = "torch.float32";
  else if (any_bool)
    t.dtype = "torch.bool";
  return t;
}

void apply_scheduler(const json& s, SchedulerConfig& c) {
  if (!s.is_object()) bad("scheduler", "must be an object of BlockRefinementScheduler config fields");
  for (auto it = s.begin(); it != s.end(); ++it) {
    const std::string k = "scheduler." + it.key();
    const json& v = it.value();
    if (it.key() == "block_length")
      c.block_length = as_int(v, k);
    else if (it.key() == "num_inference_steps")
      c.num_inference_steps = as_int(v, k);
    else if (it.key() == "threshold")
      c.threshold = as_double(v, k);
    else if (it.key() == "editing_threshold")
      c.editing_threshold = v.is_null() ? std::nullopt : std::optional<double>(as_double(v, k));
    else if (it.key() == "minimal_topk")
      c.minimal_topk = as_int(v, k);
    else
      bad(k,
          "is not a BlockRefinementScheduler config field (block_length, num_inference_steps, threshold, "
          "editing_threshold, minimal_topk)");
  }
}

}  // namespace

CallSpec parse_call_json(const json& call, const SchedulerConfig& base) {
  if (!call.is_object()) throw InputError("a call must be a JSON object of pipeline arguments");
  CallSpec spec;
  GenerateOptions& o = spec.options;
  for (auto it = call.begin(); it != call.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    const bool null = v.is_null();
    auto opt_int = [&]() { return null ? std::nullopt : std::optional<int64_t>(as_int(v, k)); };
    auto opt_double = [&]() { return null ? std::nullopt : std::optional<double>(as_double(v, k)); };
    if (k == "input_ids") {
      if (!null) o.input_ids = as_ids(v, k);
    } else if (k == "attention_mask") {
      if (!null) o.attention_mask = as_ids(v, k);
    } else if (k == "prompt") {
      if (null) continue;
      if (v.is_string()) {
        o.prompt = v.get<std::string>();
      } else if (v.is_array()) {
        std::vector<std::string> ps;
        for (const json& p : v) ps.push_back(as_string(p, k));
        o.prompt = ps;
      } else {
        bad(k, "must be a string or a list of strings");
      }
    } else if (k == "messages") {
      if (null) continue;
      if (!v.is_array()) bad(k, "must be a list of {\"role\", \"content\"} objects");
      o.messages = v;
    } else if (k == "use_chat_template") {
      o.use_chat_template = as_bool(v, k);
    } else if (k == "add_generation_prompt") {
      o.add_generation_prompt = as_bool(v, k);
    } else if (k == "gen_length") {
      o.gen_length = as_int(v, k);
    } else if (k == "block_length") {
      o.block_length = opt_int();
    } else if (k == "num_inference_steps") {
      o.num_inference_steps = opt_int();
    } else if (k == "temperature") {
      o.temperature = null ? 0.0 : as_double(v, k);
    } else if (k == "top_p") {
      o.top_p = opt_double();
    } else if (k == "top_k") {
      o.top_k = opt_int();
    } else if (k == "sampling_method") {
      o.sampling_method = as_string(v, k);
    } else if (k == "threshold") {
      o.threshold = opt_double();
      o.levenshtein.threshold = o.threshold.value_or(LevenshteinOptions{}.threshold);
    } else if (k == "editing_threshold") {
      o.editing_threshold = opt_double();
      o.levenshtein.editing_threshold = o.editing_threshold;
    } else if (k == "max_post_steps") {
      o.max_post_steps = as_int(v, k);
    } else if (k == "minimal_topk") {
      o.minimal_topk = opt_int();
    } else if (k == "eos_early_stop") {
      o.eos_early_stop = as_bool(v, k);
    } else if (k == "eos_token_id") {
      o.eos_token_id = opt_int();
    } else if (k == "mask_token_id") {
      o.mask_token_id = opt_int();
    } else if (k == "output_type") {
      o.output_type = as_string(v, k);
    } else if (k == "return_dict") {
      as_bool(v, k);
    } else if (k == "seed" || k == "generator") {
      if (!null) {
        int64_t s = as_int(v, k);
        o.seed = uint64_t(s);
      }
    } else if (k == "exact") {
      if (!null) spec.exact = as_bool(v, k);
    } else if (k == "attention") {
      o.attention = parse_attention_mode(as_string(v, k));
    } else if (k == "decoding") {
      o.decoding = parse_decoding(as_string(v, k));
    } else if (k == "callback_on_step_end_tensor_inputs") {
      if (null) continue;
      if (!v.is_array()) bad(k, "must be a list of tensor names");
      std::vector<std::string> names;
      for (const json& n : v) names.push_back(as_string(n, k));
      o.callback_on_step_end_tensor_inputs = names;
    } else if (k == "scheduler") {
      if (null) continue;
      SchedulerConfig c = base;
      apply_scheduler(v, c);
      spec.scheduler = c;
    } else {
      bad(k, "is not a pipeline argument");
    }
  }
  return spec;
}

nlohmann::json output_to_json(const PipelineOutput& out) {
  nlohmann::json j;
  j["sequences"] = out.sequences.to_rows();
  j["texts"] = out.texts ? nlohmann::json(*out.texts) : nlohmann::json(nullptr);
  j["stats"] = {{"forwards", out.stats.forwards},
                {"generated_tokens", out.stats.generated_tokens},
                {"seconds", out.stats.seconds},
                {"tokens_per_second", out.stats.tokens_per_second()},
                {"tokens_per_forward", out.stats.tokens_per_forward()}};
  return j;
}

}  // namespace llada2
