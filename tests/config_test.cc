// config.json parsing: the golden configs load; every missing or invalid field is named.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "llada2/config.h"
#include "llada2/error.h"

using llada2::FileError;
using llada2::ModelConfig;
using nlohmann::json;

namespace {

const std::string kModels = std::string(LLADA2_TEST_DATA) + "/models/";

json golden(const std::string& name) {
  std::ifstream in(kModels + name + "/config.json");
  return json::parse(in);
}

std::string error_of(const json& j) {
  try {
    ModelConfig::from_json_text(j.dump(), "cfg.json");
  } catch (const FileError& e) {
    EXPECT_EQ(e.path(), "cfg.json");
    return e.what();
  }
  ADD_FAILURE() << "accepted: " << j.dump();
  return "";
}

#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

}  // namespace

TEST(Config, GoldenConfigsLoad) {
  for (const char* name : {"tiny-a-f32", "tiny-a-bf16", "tiny-b-f32", "tiny-b-bf16"}) {
    ModelConfig c = ModelConfig::from_file(kModels + name + "/config.json");
    const bool a = name[5] == 'a';
    EXPECT_EQ(c.vocab_size, a ? 320 : 1000) << name;
    EXPECT_EQ(c.hidden_size, a ? 64 : 128);
    EXPECT_EQ(c.num_hidden_layers, a ? 2 : 3);
    EXPECT_EQ(c.num_attention_heads, 4);
    EXPECT_EQ(c.num_key_value_heads, a ? 2 : 1);
    EXPECT_EQ(c.head_dim, a ? 16 : 32);
    EXPECT_EQ(c.intermediate_size, a ? 128 : 192);
    EXPECT_EQ(c.first_k_dense_replace, 1);
    EXPECT_EQ(c.moe_intermediate_size, 32);
    EXPECT_EQ(c.num_experts, a ? 8 : 16);
    EXPECT_EQ(c.num_experts_per_tok, a ? 2 : 4);
    EXPECT_EQ(c.num_shared_experts, 1);
    EXPECT_EQ(c.n_group, 4);
    EXPECT_EQ(c.topk_group, 2);
    EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.5);
    EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
    EXPECT_DOUBLE_EQ(c.rope_theta, a ? 1e4 : 6e5);
    EXPECT_DOUBLE_EQ(c.partial_rotary_factor, 0.5);
    EXPECT_EQ(c.rotary_dim, a ? 8 : 16);
    EXPECT_TRUE(c.use_qk_norm);
    EXPECT_FALSE(c.use_qkv_bias);
    EXPECT_FALSE(c.use_bias);
    EXPECT_FALSE(c.tie_word_embeddings);
    EXPECT_EQ(c.max_position_embeddings, 512);
    EXPECT_EQ(c.pad_token_id, a ? 318 : 998);
    EXPECT_FALSE(c.mask_token_id.has_value());
    EXPECT_FALSE(c.eos_token_id.has_value());
    EXPECT_EQ(c.torch_dtype, std::string(name).ends_with("bf16") ? "bfloat16" : "float32");
    EXPECT_FALSE(c.is_moe_layer(0));
    EXPECT_TRUE(c.is_moe_layer(1));
  }
}

TEST(Config, OptionalIdsAndDtypeKey) {
  json j = golden("tiny-a-f32");
  j["mask_token_id"] = 319;
  j["eos_token_id"] = json::array({311, 5});
  j.erase("torch_dtype");
  j["dtype"] = "bfloat16";
  ModelConfig c = ModelConfig::from_json_text(j.dump(), "cfg.json");
  EXPECT_EQ(c.mask_token_id, 319);
  EXPECT_EQ(c.eos_token_id, 311);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  j["eos_token_id"] = "x";
  EXPECT_HAS(error_of(j), "field 'eos_token_id' must be a token id");
}

TEST(Config, EachRequiredFieldMissing) {
  for (const char* field : {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                            "num_key_value_heads", "intermediate_size", "moe_intermediate_size", "num_experts_per_tok",
                            "n_group", "topk_group", "routed_scaling_factor", "rms_norm_eps", "rope_theta"}) {
    json j = golden("tiny-b-f32");
    j.erase(field);
    EXPECT_HAS(error_of(j), "cfg.json: missing field '" + std::string(field) + "'");
    j[field] = nullptr;  // null counts as missing, as in Python's config classes
    EXPECT_HAS(error_of(j), "missing field '" + std::string(field) + "'");
  }
}

TEST(Config, HeadDimDefaultsToHiddenOverHeads) {
  json j = golden("tiny-b-f32");
  j.erase("head_dim");
  EXPECT_EQ(ModelConfig::from_json_text(j.dump(), "cfg.json").head_dim, 32);
  j["hidden_size"] = 130;
  EXPECT_HAS(error_of(j), "field 'head_dim' is missing and hidden_size is not divisible");
}

TEST(Config, InvalidValuesNameTheField) {
  struct Case {
    const char* field;
    json value;
    const char* message;
  };
  const Case cases[] = {
      {"hidden_size", -64, "field 'hidden_size' must be >= 1, got -64"},
      {"vocab_size", 0, "field 'vocab_size' must be >= 1"},
      {"num_hidden_layers", "3", "field 'num_hidden_layers' must be an integer, got \"3\""},
      {"num_attention_heads", 4.5, "field 'num_attention_heads' must be an integer"},
      {"num_key_value_heads", 3, "field 'num_key_value_heads' (3) must divide num_attention_heads (4)"},
      {"head_dim", true, "field 'head_dim' must be an integer"},
      {"num_experts_per_tok", 17, "field 'num_experts_per_tok' must be <= num_experts"},
      {"n_group", 3, "field 'n_group' must divide num_experts"},
      {"n_group", 16, "field 'n_group' leaves fewer than 2 experts per group"},
      {"topk_group", 5, "field 'topk_group' must be <= n_group"},
      {"num_experts_per_tok", 9, "field 'num_experts_per_tok' exceeds the experts available"},
      {"routed_scaling_factor", "2.5", "field 'routed_scaling_factor' must be a number"},
      {"rms_norm_eps", -1e-6, "field 'rms_norm_eps' must be >= 0"},
      {"rope_theta", 0, "field 'rope_theta' must be > 0"},
      {"partial_rotary_factor", 0, "field 'partial_rotary_factor' must be in (0, 1]"},
      {"partial_rotary_factor", 1.5, "field 'partial_rotary_factor' must be in (0, 1]"},
      {"partial_rotary_factor", 0.03, "field 'partial_rotary_factor' gives an odd or empty rotary dimension"},
      {"rope_scaling", {{"type", "linear"}, {"factor", 2.0}}, "field 'rope_scaling' is"},
      {"rope_scaling", "yarn", "only the default rope (null) is supported"},
      {"hidden_act", "gelu", "field 'hidden_act' must be \"silu\", got \"gelu\""},
      {"hidden_act", 1, "field 'hidden_act' must be \"silu\""},
      {"score_function", "softmax", "field 'score_function' must be \"sigmoid\""},
      {"model_type", "llama", "field 'model_type' is 'llama'"},
      {"model_type", 5, "field 'model_type' must be a string"},
      {"use_qk_norm", "yes", "field 'use_qk_norm' must be true or false"},
      {"use_bias", 0, "field 'use_bias' must be true or false"},
      {"max_position_embeddings", -1, "field 'max_position_embeddings' must be >= 1"},
      {"pad_token_id", -5, "field 'pad_token_id' must be >= 0"},
      {"num_shared_experts", -1, "field 'num_shared_experts' must be >= 0"},
      {"first_k_dense_replace", -1, "field 'first_k_dense_replace' must be >= 0"},
      {"num_experts", -8, "field 'num_experts' must be >= 1"},
  };
  for (const Case& c : cases) {
    json j = golden("tiny-b-f32");
    j[c.field] = c.value;
    EXPECT_HAS(error_of(j), c.message);
  }
}

TEST(Config, DeeplyNestedValuesAreReportedBriefly) {
  // Deeper than 128 levels is refused before parsing (json_depth_test.cc); within the limit, the
  // message still shows a nested value in brief.
  const std::string deep = std::string(120, '[') + std::string(120, ']');
  for (const char* field : {"vocab_size", "rope_theta", "rope_scaling", "hidden_act", "score_function"}) {
    json j = golden("tiny-b-f32");
    j.erase(field);
    std::string text = j.dump();
    const std::string member = std::string("\"").append(field).append("\": ").append(deep).append(",");
    text.insert(1, member);  // (built with append: GCC 12 warns -Wrestrict about "..." + std::string)
    try {
      ModelConfig::from_json_text(text, "cfg.json");
      ADD_FAILURE() << field;
    } catch (const FileError& e) {
      EXPECT_HAS(e.what(), "field '" + std::string(field) + "'");
      EXPECT_HAS(e.what(), "[[[...]]]");
    }
  }
  json j = golden("tiny-b-f32");
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  EXPECT_HAS(error_of(j), "field 'rope_scaling' is {\"factor\": 2.0, \"type\": \"linear\"}; only the default rope");
  j["rope_scaling"] = nullptr;
  j["hidden_act"] = std::string(500, 'x');
  EXPECT_HAS(error_of(j), "xxx...");
}

TEST(Config, AcceptsEquivalentSpellings) {
  json j = golden("tiny-b-f32");
  j["hidden_size"] = 128.0;  // integral floats, as some exporters write them
  j["rope_scaling"] = {{"rope_type", "default"}};
  j["model_type"] = "llada2_moe_veomni";
  ModelConfig c = ModelConfig::from_json_text(j.dump(), "cfg.json");
  EXPECT_EQ(c.hidden_size, 128);
  // Every layer dense: no expert fields needed.
  json d = golden("tiny-b-f32");
  for (const char* k : {"num_experts", "moe_intermediate_size", "num_experts_per_tok", "n_group", "topk_group",
                        "routed_scaling_factor"})
    d.erase(k);
  ModelConfig dc = ModelConfig::from_json_text(d.dump(), "cfg.json");
  EXPECT_EQ(dc.num_experts, 0);
  EXPECT_FALSE(dc.is_moe_layer(2));
}

TEST(Config, NotJsonOrNotObject) {
  try {
    ModelConfig::from_json_text("{\"vocab_size\": ", "cfg.json");
    ADD_FAILURE();
  } catch (const FileError& e) {
    EXPECT_HAS(e.what(), "cfg.json: not valid JSON");
  }
  EXPECT_HAS(error_of(json::array({1, 2})), "cfg.json: must be a JSON object");
  // A number too large for a double is a parse failure too, not an internal error.
  try {
    ModelConfig::from_json_text("{\"rope_theta\": 1e999}", "cfg.json");
    ADD_FAILURE();
  } catch (const FileError& e) {
    EXPECT_HAS(e.what(), "cfg.json: not valid JSON");
  }
  try {
    ModelConfig::from_file(kModels + "no-such-model/config.json");
    ADD_FAILURE();
  } catch (const FileError& e) {
    EXPECT_HAS(e.what(), "no-such-model/config.json: cannot open");
  }
}
