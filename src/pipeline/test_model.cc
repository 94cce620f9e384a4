#include "pipeline/test_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/thread_pool.h"
#include "llada2/error.h"
#include "llada2/json.h"
#include "llada2/tokenizer.h"

namespace llada2 {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

uint16_t to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return uint16_t((x >> 16) | 0x40);
  x += 0x7fff + ((x >> 16) & 1);
  return uint16_t(x >> 16);
}

uint16_t to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t ax = x & 0x7fffffff;
  if (ax >= 0x7f800000) return uint16_t(sign | (ax > 0x7f800000 ? 0x7e00 : 0x7c00));
  if (ax >= 0x477ff000) return uint16_t(sign | 0x7c00);  // >= 65520 rounds to infinity
  if (ax < 0x38800000) {                                 // below 2^-14: a half subnormal
    float v;
    std::memcpy(&v, &ax, 4);
    return uint16_t(sign | uint32_t(std::nearbyint(v * 16777216.0f)));
  }
  uint32_t r = ax - (112u << 23);
  r += 0x0fff + ((r >> 13) & 1);
  return uint16_t(sign | (r >> 13));
}

json base_config() {
  json c;
  c["architectures"] = {"LLaDA2MoeModelLM"};
  c["attention_dropout"] = 0.0;
  c["auto_map"] = {{"AutoConfig", "configuration_llada2_moe.LLaDA2MoeConfig"},
                   {"AutoModel", "modeling_llada2_moe.LLaDA2MoeModel"},
                   {"AutoModelForCausalLM", "modeling_llada2_moe.LLaDA2MoeModelLM"}};
  c["embedding_dropout"] = 0.0;
  c["first_k_dense_replace"] = 1;
  c["hidden_act"] = "silu";
  c["initializer_range"] = 0.02;
  c["model_type"] = "llada2_moe";
  c["moe_router_enable_expert_bias"] = true;
  c["norm_head"] = false;
  c["norm_softmax"] = false;
  c["norm_topk_prob"] = true;
  c["num_shared_experts"] = 1;
  c["output_dropout"] = 0.0;
  c["output_router_logits"] = false;
  c["partial_rotary_factor"] = 0.5;
  c["rms_norm_eps"] = 1e-06;
  c["rope_scaling"] = nullptr;
  c["routed_scaling_factor"] = 2.5;
  c["router_dtype"] = "fp32";
  c["score_function"] = "sigmoid";
  c["tie_word_embeddings"] = false;
  c["use_bias"] = false;
  c["use_cache"] = false;
  c["use_qk_norm"] = true;
  c["use_qkv_bias"] = false;
  c["use_rmsnorm"] = true;
  c["use_sliding_window"] = false;
  c["using_split_qkv_in_self_attention"] = false;
  return c;
}

const char* torch_dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "float32";
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
    default: throw InputError(std::string("test models are f32, bf16 or f16, not ") + dtype_name(d));
  }
}

}  // namespace

DType parse_test_model_dtype(const std::string& s) {
  if (s == "f32") return DType::F32;
  if (s == "bf16") return DType::BF16;
  if (s == "f16") return DType::F16;
  throw InputError("dtype must be f32, bf16 or f16, got '" + s + "'");
}

std::string test_model_config_json(const std::string& shape, DType dtype) {
  json c = base_config();
  const char* dt = torch_dtype_name(dtype);
  std::smatch m;
  static const std::regex kMini("mini-L([0-9]{1,4})"), kMini22("mini22-L([0-9]{1,4})");
  if (shape == "tiny-a" || shape == "tiny-b" || shape == "tiny-22") {
    // The golden tiny models' configs (shared/golden/models/tiny-{a,b}-f32/config.json), plus
    // the mask and EOS ids so that generate runs without a tokenizer; tiny-22 below.
    const bool a = shape != "tiny-b";
    c["head_dim"] = a ? 16 : 32;
    c["hidden_size"] = a ? 64 : 128;
    c["intermediate_size"] = a ? 128 : 192;
    c["max_position_embeddings"] = 512;
    c["max_window_layers"] = a ? 2 : 3;
    c["moe_intermediate_size"] = 32;
    c["n_group"] = 4;
    c["num_attention_heads"] = 4;
    c["num_experts"] = a ? 8 : 16;
    c["num_experts_per_tok"] = a ? 2 : 4;
    c["num_hidden_layers"] = a ? 2 : 3;
    c["num_key_value_heads"] = a ? 2 : 1;
    c["pad_token_id"] = a ? 318 : 998;
    c["mask_token_id"] = a ? 319 : 999;
    c["eos_token_id"] = a ? 311 : 972;
    if (a)
      c["rope_theta"] = 10000.0;
    else
      c["rope_theta"] = 600000;
    c["rotary_dim"] = a ? 8 : 16;
    c["topk_group"] = 2;
    c["torch_dtype"] = dt;
    c["vocab_size"] = a ? 320 : 1000;
    if (shape == "tiny-22") {
      // LLaDA2.2 at tiny-a's size, with 16 experts: a chunk of 8 positions routes within 4 of them.
      c.erase("max_window_layers");
      c["num_experts"] = 16;
      c["rope_theta"] = 600000;
      c["block_size"] = 8;
      c["expert_capacity"] = 4;
      c["delete_token_id"] = 316;
      c["split_token_id"] = 317;
    }
  } else if (std::regex_match(shape, m, kMini) || std::regex_match(shape, m, kMini22)) {
    const int layers = std::stoi(m[1].str());
    if (layers < 1 || layers > 1000)
      throw InputError(std::string(shape[4] == '2' ? "mini22" : "mini") + "-L<n> needs 1 <= n <= 1000, got " + shape);
    if (shape[4] == '2') {
      // LLaDA2.2-mini: the 2.1 dimensions with block routing (48 of 256 experts per chunk of 32)
      // and the Levenshtein edit ids.
      c["block_size"] = 32;
      c["delete_token_id"] = 156930;
      c["expert_capacity"] = 48;
      c["split_token_id"] = 156931;
    }
    // LLaDA2-mini (the published config.json) with `layers` layers. Like the released config it names no
    // mask or EOS id, and spells the dtype key `dtype`.
    c["dtype"] = dt;
    c["head_dim"] = 128;
    c["hidden_size"] = 2048;
    c["intermediate_size"] = 5120;
    c["max_position_embeddings"] = 32768;
    c["max_window_layers"] = 28;
    c["moe_intermediate_size"] = 512;
    c["n_group"] = 8;
    c["num_attention_heads"] = 16;
    c["num_experts"] = 256;
    c["num_experts_per_tok"] = 8;
    c["num_hidden_layers"] = layers;
    c["num_key_value_heads"] = 4;
    c["pad_token_id"] = 156892;
    c["rope_theta"] = 600000;
    c["rotary_dim"] = 64;
    c["sliding_window"] = 4096;
    c["topk_group"] = 4;
    c["vocab_size"] = 157184;
  } else {
    throw InputError("unknown shape '" + shape + "' (expected tiny-a, tiny-b, mini-L<n>, tiny-22 or mini22-L<n>)");
  }
  return c.dump(2) + "\n";
}

std::string test_model_generation_config_json(const std::string& shape) {
  json g;
  if (shape == "tiny-22")
    g["eos_token_id"] = {311, 312};
  else if (shape.rfind("mini22-L", 0) == 0)
    g["eos_token_id"] = {156892, 156900};
  else
    return "";
  return g.dump(2) + "\n";
}

std::vector<TestTensor> test_model_tensors(const ModelConfig& c, DType dtype, bool packed_experts) {
  std::vector<TestTensor> out;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float mean, float stddev, DType dt) {
    out.push_back({TensorSpec{name, dt, std::move(shape)}, mean, stddev});
  };
  auto linear = [&](const std::string& name, int64_t rows, int64_t cols) {
    add(name, {rows, cols}, 0.0f, float(1.0 / std::sqrt(double(cols))), dtype);
  };
  auto norm = [&](const std::string& name, int64_t n) { add(name, {n}, 1.0f, 0.02f, dtype); };
  auto mlp = [&](const std::string& p, int64_t inter) {
    linear(p + "gate_proj.weight", inter, c.hidden_size);
    linear(p + "up_proj.weight", inter, c.hidden_size);
    linear(p + "down_proj.weight", c.hidden_size, inter);
  };
  const int64_t H = c.hidden_size, D = c.head_dim;
  add("model.word_embeddings.weight", {c.vocab_size, H}, 0.0f, 1.0f, dtype);
  linear("lm_head.weight", c.vocab_size, H);
  norm("model.norm.weight", H);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    norm(p + "input_layernorm.weight", H);
    norm(p + "post_attention_layernorm.weight", H);
    linear(p + "attention.query_key_value.weight", (c.num_attention_heads + 2 * c.num_key_value_heads) * D, H);
    norm(p + "attention.query_layernorm.weight", D);
    norm(p + "attention.key_layernorm.weight", D);
    linear(p + "attention.dense.weight", H, c.num_attention_heads * D);
    if (!c.is_moe_layer(l)) {
      mlp(p + "mlp.", c.intermediate_size);
      continue;
    }
    linear(p + "mlp.gate.weight", c.num_experts, H);
    add(p + "mlp.gate.expert_bias", {c.num_experts}, 0.0f, 0.01f, DType::F32);
    const size_t first_expert = out.size();
    for (int64_t e = 0; e < c.num_experts; ++e)
      mlp(p + "mlp.experts." + std::to_string(e) + ".", c.moe_intermediate_size);
    if (packed_experts) {
      // The three projections of every expert become three tensors [E, rows, cols] of the same values.
      std::vector<TestTensor> packed;
      for (size_t proj = 0; proj < 3; ++proj) {
        const TestTensor& first = out[first_expert + proj];  // expert 0's
        TestTensor t = first;
        t.spec.name = p + "mlp.experts." + first.spec.name.substr((p + "mlp.experts.0.").size());
        t.spec.shape.insert(t.spec.shape.begin(), c.num_experts);
        packed.push_back(std::move(t));
      }
      out.resize(first_expert);
      out.insert(out.end(), packed.begin(), packed.end());
    }
    if (c.num_shared_experts > 0) mlp(p + "mlp.shared_experts.", c.moe_intermediate_size * c.num_shared_experts);
  }
  std::sort(out.begin(), out.end(), [](const TestTensor& a, const TestTensor& b) { return a.spec.name < b.spec.name; });
  return out;
}

std::vector<std::string> test_model_tensor_parts(const TestTensor& t) {
  const std::string& name = t.spec.name;
  const size_t at = name.find(".mlp.experts.");
  if (t.spec.shape.size() != 3 || at == std::string::npos) return {};
  const size_t cut = at + std::string(".mlp.experts.").size();
  std::vector<std::string> parts;
  for (int64_t e = 0; e < t.spec.shape[0]; ++e)
    parts.push_back(name.substr(0, cut) + std::to_string(e) + "." + name.substr(cut));
  return parts;
}

void test_model_values(const TestTensor& t, uint64_t seed, int64_t first, int64_t n, float* out) {
  if (first % kTestModelChunk != 0) throw InputError("test_model_values: first must be a multiple of the chunk size");
  const uint64_t key = mix(mix(seed) ^ fnv1a64(t.spec.name));
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  constexpr double kUnit = 1.0 / 9007199254740992.0;  // 2^-53
  for (int64_t i = 0; i < n;) {
    const int64_t chunk = (first + i) / kTestModelChunk;
    const int64_t len = std::min(n - i, kTestModelChunk);
    uint64_t state = mix(key + uint64_t(chunk + 1) * kGamma);
    auto next = [&state] { return mix(state += kGamma); };
    for (int64_t j = 0; j < len; j += 2) {
      const double u1 = double((next() >> 11) + 1) * kUnit;
      const double u2 = double(next() >> 11) * kUnit;
      const double r = std::sqrt(-2.0 * std::log(u1));
      out[i + j] = float(t.mean + t.stddev * r * std::cos(kTwoPi * u2));
      if (j + 1 < len) out[i + j + 1] = float(t.mean + t.stddev * r * std::sin(kTwoPi * u2));
    }
    i += len;
  }
}

namespace {

// Grows the vocabulary to the tokenizer's (rounded up to 64) and drops the config's special ids.
std::string with_tokenizer(const std::string& config_text, const std::string& tokenizer_dir) {
  const Tokenizer tok = Tokenizer::from_dir(tokenizer_dir);
  nlohmann::ordered_json j = parse_ordered_json(config_text, "config.json");
  const int64_t need = (tok.vocab_size() + 63) / 64 * 64;
  if (j["vocab_size"].get<int64_t>() < need) j["vocab_size"] = need;
  j.erase("mask_token_id");
  j.erase("eos_token_id");
  return j.dump(2) + "\n";
}

void copy_tokenizer_files(const std::string& from, const std::string& dir) {
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"}) {
    const fs::path src = fs::path(from) / f;
    std::error_code ec;
    if (!fs::exists(src, ec)) continue;
    fs::copy_file(src, fs::path(dir) / f, fs::copy_options::overwrite_existing, ec);
    if (ec) throw FileError(src.string(), "cannot copy into " + dir + ": " + ec.message());
  }
}

}  // namespace

void write_test_model(const std::string& dir, const TestModelOptions& o) {
  std::string config_text = test_model_config_json(o.shape, o.dtype);
  if (!o.tokenizer_dir.empty()) config_text = with_tokenizer(config_text, o.tokenizer_dir);
  const ModelConfig config = ModelConfig::from_json_text(config_text, o.shape + " config");
  const std::vector<TestTensor> tensors = test_model_tensors(config, o.dtype, o.packed_experts);
  // With a tokenizer the stop id is its EOS: the shape's generation config would name foreign ids.
  const std::string generation_text = o.tokenizer_dir.empty() ? test_model_generation_config_json(o.shape) : "";

  std::error_code ec;
  if (!fs::is_directory(dir, ec) && !fs::create_directories(dir, ec))
    throw FileError(dir, "cannot create the output folder: " + ec.message());
  static const std::regex kShard("model-[0-9]+-of-[0-9]+\\.safetensors");
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string f = entry.path().filename().string();
    if ((f == "model.safetensors" || f == "model.safetensors.index.json" || std::regex_match(f, kShard) ||
         f == "generation_config.json") &&
        !fs::remove(entry.path(), ec) && ec)
      throw FileError(entry.path().string(), "cannot remove the earlier weights: " + ec.message());
  }
  if (ec) throw FileError(dir, "cannot list the output folder: " + ec.message());
  const std::pair<const char*, const std::string*> texts[] = {{"config.json", &config_text},
                                                              {"generation_config.json", &generation_text}};
  for (const auto& [file, text] : texts) {
    if (text->empty()) continue;
    const std::string path = (fs::path(dir) / file).string();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << *text;
    out.close();
    if (!out) throw FileError(path, "cannot write");
  }

  if (!o.tokenizer_dir.empty()) copy_tokenizer_files(o.tokenizer_dir, dir);

  std::vector<TensorSpec> specs;
  for (const TestTensor& t : tensors) specs.push_back(t.spec);
  CheckpointWriter writer(dir, specs, o.max_shard_bytes);
  const uint64_t total = writer.total_tensor_bytes();
  uint64_t done = 0;
  // Pieces of 64 chunks (4 Mi elements) bound the memory whatever the tensor size, and give
  // the thread pool enough chunks to share.
  constexpr int64_t kPiece = 64 * kTestModelChunk;
  std::vector<float> values;
  std::vector<uint8_t> bytes;
  // The values of `src` (a tensor, or one part of a packed tensor), written as the next bytes of t.
  auto emit = [&](const TestTensor& t, const TestTensor& src, int64_t numel) {
    const size_t esize = dtype_size(t.spec.dtype);
    for (int64_t first = 0; first < numel; first += kPiece) {
      const int64_t n = std::min(kPiece, numel - first);
      values.resize(size_t(n));
      bytes.resize(size_t(n) * esize);
      const int64_t chunks = (n + kTestModelChunk - 1) / kTestModelChunk;
      parallel_for(chunks, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) {
          const int64_t off = c * kTestModelChunk;
          const int64_t len = std::min(kTestModelChunk, n - off);
          test_model_values(src, o.seed, first + off, len, values.data() + off);
          for (int64_t k = off; k < off + len; ++k) {
            const float v = values[size_t(k)];
            if (t.spec.dtype == DType::F32) {
              std::memcpy(bytes.data() + size_t(k) * 4, &v, 4);
            } else {
              const uint16_t h = t.spec.dtype == DType::BF16 ? to_bf16(v) : to_f16(v);
              std::memcpy(bytes.data() + size_t(k) * 2, &h, 2);
            }
          }
        }
      });
      writer.write(t.spec.name, bytes.data(), bytes.size());
      done += bytes.size();
      if (o.progress) o.progress(done, total);
    }
  };
  for (const TestTensor& t : tensors) {
    const int64_t numel = int64_t(t.spec.nbytes() / dtype_size(t.spec.dtype));
    const std::vector<std::string> parts = test_model_tensor_parts(t);
    if (parts.empty()) {
      emit(t, t, numel);
      continue;
    }
    for (const std::string& name : parts) {
      TestTensor part = t;
      part.spec.name = name;
      emit(t, part, numel / int64_t(parts.size()));
    }
  }
  writer.finish();
}

}  // namespace llada2
