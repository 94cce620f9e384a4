// LLaDA2.2 checkpoints: the config fields and generation_config.json's stop ids, make-test-model's
// LLaDA2.2 shapes, and routed experts packed in one tensor per projection (transformers 5) through the
// loader and quantize, computing what one tensor per expert computes.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "llada2/config.h"
#include "llada2/error.h"
#include "llada2/model.h"
#include "llada2/quantize.h"
#include "llada2/safetensors.h"
#include "llada2/safetensors_writer.h"
#include "llada2/test_model.h"
#include "llada22_util.h"
#include "pipeline/test_model.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json tiny_a_config() { return read_json(data_path("models/tiny-a-f32/config.json")); }

std::string config_error(const json& j) {
  try {
    ModelConfig::from_json_text(j.dump(), "cfg.json");
  } catch (const FileError& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted: " << j.dump();
  return "";
}

#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

// Every tensor of `from` into `to` (config.json too), leaving out `drop` and writing `extra` (zeros).
void rewrite(const std::string& from, const std::string& to, const std::string& drop, std::vector<TensorSpec> extra) {
  Checkpoint ck(from);
  std::vector<TensorSpec> specs = extra;
  for (const auto& [name, t] : ck.tensors())
    if (name != drop) specs.push_back({name, t.dtype, t.shape});
  fs::create_directories(to);
  fs::copy_file(fs::path(from) / "config.json", fs::path(to) / "config.json", fs::copy_options::overwrite_existing);
  CheckpointWriter w(to, specs);
  for (const TensorSpec& s : w.tensors()) {
    if (ck.has(s.name) && s.name != drop) {
      w.write(s.name, ck.get(s.name).data, ck.get(s.name).nbytes);
    } else {
      std::vector<uint8_t> zeros(s.nbytes());
      w.write(s.name, zeros.data(), zeros.size());
    }
  }
  w.finish();
}

std::vector<float> logits_of(const Model& m, int64_t W = 16) {
  const Window w = window(310, W, 0);
  std::vector<float> out(size_t(W * m.config().vocab_size));
  m.forward(w.fb, out.data());
  return out;
}

TEST(Llada22Config, NewFieldsTurnTheBehaviourOn) {
  const ModelConfig old = ModelConfig::from_json_text(tiny_a_config().dump(), "a");
  EXPECT_FALSE(old.llada22);
  EXPECT_FALSE(old.block_routing());
  EXPECT_FALSE(old.delete_token_id);
  EXPECT_TRUE(old.stop_token_ids.empty());

  json j = tiny_a_config();
  j["expert_capacity"] = 4;
  j["block_size"] = 8;
  j["delete_token_id"] = 316;
  j["split_token_id"] = 317;
  j["eos_token_id"] = {311, 312, 311};
  ModelConfig c = ModelConfig::from_json_text(j.dump(), "22");
  EXPECT_TRUE(c.llada22);
  EXPECT_TRUE(c.block_routing());
  EXPECT_EQ(c.expert_capacity, 4);
  EXPECT_EQ(c.block_size, 8);
  EXPECT_EQ(c.delete_token_id, 316);
  EXPECT_EQ(c.split_token_id, 317);
  EXPECT_EQ(c.eos_token_id, 311);
  EXPECT_EQ(c.stop_token_ids, (std::vector<int64_t>{311, 312}));

  // Any one field marks a LLaDA2.2 config; block routing needs a capacity above 0.
  for (const char* field : {"delete_token_id", "split_token_id", "expert_capacity", "block_size"}) {
    json k = tiny_a_config();
    k[field] = field[0] == 'e' ? 0 : 300;
    const ModelConfig ck = ModelConfig::from_json_text(k.dump(), field);
    EXPECT_TRUE(ck.llada22) << field;
    EXPECT_FALSE(ck.block_routing()) << field;
  }
  // With block routing the group fields are optional and unchecked.
  j.erase("n_group");
  j.erase("topk_group");
  EXPECT_NO_THROW(ModelConfig::from_json_text(j.dump(), "22"));
}

TEST(Llada22Config, InvalidFieldsAreNamed) {
  json j = tiny_a_config();
  j["expert_capacity"] = 1;  // top-2 routing
  j["block_size"] = 8;
  EXPECT_HAS(config_error(j), "'expert_capacity' must be >= num_experts_per_tok (2)");
  j["expert_capacity"] = 4;
  j.erase("block_size");
  EXPECT_HAS(config_error(j), "'block_size' is missing");
  j["block_size"] = 0;
  EXPECT_HAS(config_error(j), "'block_size' must be >= 1");
  j["block_size"] = 8;
  j["delete_token_id"] = 320;
  EXPECT_HAS(config_error(j), "'delete_token_id' is 320, outside the vocabulary [0, 320)");
  j["delete_token_id"] = 316;
  j["split_token_id"] = 316;
  EXPECT_HAS(config_error(j), "'split_token_id' must differ from delete_token_id");
  j["split_token_id"] = "x";
  EXPECT_HAS(config_error(j), "'split_token_id' must be an integer");
  j["split_token_id"] = 317;
  j["eos_token_id"] = {311, "x"};
  EXPECT_HAS(config_error(j), "'eos_token_id' must be a token id or a list of token ids");
}

TEST(Llada22Config, GenerationConfigAddsStopIds) {
  const fs::path dir = fresh_temp_dir();
  json j = tiny_a_config();
  j["eos_token_id"] = 311;
  write_text(dir / "config.json", j.dump());
  EXPECT_EQ(ModelConfig::from_file((dir / "config.json").string()).stop_token_ids, (std::vector<int64_t>{311}));
  write_text(dir / "generation_config.json", R"({"eos_token_id": [5, 311, 7], "do_sample": false})");
  const ModelConfig c = ModelConfig::from_file((dir / "config.json").string());
  EXPECT_EQ(c.stop_token_ids, (std::vector<int64_t>{311, 5, 7}));
  EXPECT_EQ(c.eos_token_id, 311);  // config.json's stays the EOS id
  write_text(dir / "generation_config.json", R"({"eos_token_id": 9})");
  EXPECT_EQ(ModelConfig::from_file((dir / "config.json").string()).stop_token_ids, (std::vector<int64_t>{311, 9}));
  for (const char* bad : {R"({"eos_token_id": [1, -2]})", "[1]", "{"}) {
    write_text(dir / "generation_config.json", bad);
    try {
      ModelConfig::from_file((dir / "config.json").string());
      ADD_FAILURE() << bad;
    } catch (const FileError& e) {
      EXPECT_HAS(e.what(), "generation_config.json");
    }
  }
  fs::remove_all(dir);
}

TEST(Llada22TestModel, ShapesCarryTheNewFields) {
  const json tiny = json::parse(test_model_config_json("tiny-22", DType::F32));
  EXPECT_EQ(tiny["expert_capacity"], 4);
  EXPECT_EQ(tiny["block_size"], 8);
  EXPECT_EQ(tiny["delete_token_id"], 316);
  EXPECT_EQ(tiny["split_token_id"], 317);
  EXPECT_EQ(tiny["mask_token_id"], 319);
  EXPECT_EQ(tiny["num_experts"], 16);
  EXPECT_EQ(json::parse(test_model_generation_config_json("tiny-22"))["eos_token_id"], json({311, 312}));

  json mini22 = json::parse(test_model_config_json("mini22-L3", DType::BF16));
  EXPECT_EQ(mini22["expert_capacity"], 48);
  EXPECT_EQ(mini22["block_size"], 32);
  EXPECT_EQ(mini22["delete_token_id"], 156930);
  EXPECT_EQ(mini22["split_token_id"], 156931);
  for (const char* k : {"expert_capacity", "block_size", "delete_token_id", "split_token_id"}) mini22.erase(k);
  EXPECT_EQ(mini22, json::parse(test_model_config_json("mini-L3", DType::BF16)));
  EXPECT_EQ(json::parse(test_model_generation_config_json("mini22-L20"))["eos_token_id"], json({156892, 156900}));
  EXPECT_EQ(test_model_generation_config_json("mini-L2"), "");
  for (const char* bad : {"mini22-L0", "mini22-L1001", "mini22-L", "tiny-21"})
    EXPECT_THROW(test_model_config_json(bad, DType::BF16), InputError) << bad;

  // The full LLaDA2.2-mini plan: the LLaDA2.1-mini parameters, experts packed or not.
  const ModelConfig c = ModelConfig::from_json_text(test_model_config_json("mini22-L20", DType::BF16), "mini22");
  for (bool packed : {false, true}) {
    uint64_t params = 0;
    const auto tensors = test_model_tensors(c, DType::BF16, packed);
    for (const auto& t : tensors) params += t.spec.nbytes() / dtype_size(t.spec.dtype);
    EXPECT_EQ(params, 16255643392ull);
    EXPECT_EQ(tensors.size(), 3u + 20u * 6u + 3u + 19u * (2u + (packed ? 3u : 256u * 3u) + 3u));
    for (const TestTensor& t : tensors) {
      const std::vector<std::string> parts = test_model_tensor_parts(t);
      if (t.spec.name == "model.layers.19.mlp.experts.down_proj.weight") {
        ASSERT_EQ(parts.size(), 256u);
        EXPECT_EQ(parts[7], "model.layers.19.mlp.experts.7.down_proj.weight");
      } else {
        const bool stacked = packed && t.spec.name.find(".mlp.experts.") != std::string::npos;
        EXPECT_EQ(parts.size(), stacked ? 256u : 0u) << t.spec.name;
      }
    }
  }
}

TEST(Llada22TestModel, WritesGenerationConfigAndPackedExperts) {
  const std::string flat = llada22_model_dir(), packed = llada22_model_dir("tiny-22", true);
  EXPECT_TRUE(fs::exists(fs::path(flat) / "generation_config.json"));
  EXPECT_EQ(Model::load(flat)->config().stop_token_ids, (std::vector<int64_t>{311, 312}));
  Checkpoint f(flat), p(packed);
  const std::string ex = "model.layers.1.mlp.experts.";
  EXPECT_FALSE(p.has(ex + "0.gate_proj.weight"));
  EXPECT_EQ(p.get(ex + "gate_proj.weight").shape, (std::vector<int64_t>{16, 32, 64}));
  EXPECT_EQ(p.get(ex + "up_proj.weight").shape, (std::vector<int64_t>{16, 32, 64}));
  EXPECT_EQ(p.get(ex + "down_proj.weight").shape, (std::vector<int64_t>{16, 64, 32}));
  EXPECT_EQ(p.tensors().size() + 16 * 3 - 3, f.tensors().size());
  // Expert e's slice of a packed tensor holds exactly expert e's tensor.
  for (const char* proj : {"gate_proj", "up_proj", "down_proj"})
    for (int e : {0, 7, 15}) {
      const TensorView& one = f.get(ex + std::to_string(e) + "." + proj + ".weight");
      const TensorView& all = p.get(ex + proj + ".weight");
      EXPECT_EQ(std::memcmp(all.data + size_t(e) * one.nbytes, one.data, one.nbytes), 0) << proj << " " << e;
    }
  // The same tensors elsewhere, byte for byte.
  for (const auto& [name, t] : p.tensors()) {
    if (name.find(".experts.") != std::string::npos) continue;
    ASSERT_TRUE(f.has(name)) << name;
    EXPECT_EQ(std::memcmp(f.get(name).data, t.data, t.nbytes), 0) << name;
  }
  // With a tokenizer there is no generation config (the stop id is the tokenizer's EOS).
  const fs::path dir = fresh_temp_dir();
  TestModelOptions o;
  o.shape = "tiny-22";
  o.dtype = DType::F32;
  o.tokenizer_dir = data_path("tok/ling-synth");
  write_test_model((dir / "t").string(), o);
  EXPECT_FALSE(fs::exists(dir / "t" / "generation_config.json"));
  fs::remove_all(dir);
}

TEST(Llada22Loader, PackedExpertsComputeWhatOneTensorPerExpertComputes) {
  for (DType dt : {DType::F32, DType::BF16}) {
    auto flat = Model::load(llada22_model_dir("tiny-22", false, dt));
    auto packed = Model::load(llada22_model_dir("tiny-22", true, dt));
    EXPECT_EQ(logits_of(*flat), logits_of(*packed)) << dtype_name(dt);
    // Where the tier repacks the experts (BF16 into panels), a packed tensor leaves the process once
    // its last expert is repacked, as one tensor per expert does.
    const std::string ex = "model.layers.1.mlp.experts.";
    uint16_t one = 0;
    const bool packs = dt == DType::BF16 && kernels::panels_preferred(kernels::Weight{&one, DType::BF16, 32, 64});
    EXPECT_EQ(packed->checkpoint().released(ex + "gate_proj.weight"), packs);
    EXPECT_EQ(packed->checkpoint().released(ex + "down_proj.weight"), packs);
    EXPECT_EQ(flat->checkpoint().released(ex + "15.down_proj.weight"), packs);
  }
}

TEST(Llada22Loader, NamesBadPackedTensors) {
  const std::string packed = llada22_model_dir("tiny-22", true);
  const fs::path dir = fresh_temp_dir();
  const std::string up = "model.layers.1.mlp.experts.up_proj.weight";
  rewrite(packed, (dir / "missing").string(), up, {});
  try {
    Model::load((dir / "missing").string());
    ADD_FAILURE() << "loaded without " << up;
  } catch (const FileError& e) {
    EXPECT_HAS(e.what(), "missing " + up);
  }
  rewrite(packed, (dir / "shape").string(), up, {TensorSpec{up, DType::F32, {15, 32, 64}}});
  try {
    Model::load((dir / "shape").string());
    ADD_FAILURE() << "loaded 15 experts";
  } catch (const FileError& e) {
    EXPECT_HAS(e.what(), up + " has shape [15, 32, 64], expected [16, 32, 64]");
  }
  fs::remove_all(dir);
}

TEST(Llada22Quantize, PackedExpertsQuantizeExpertByExpert) {
  const std::string flat = llada22_model_dir(), packed = llada22_model_dir("tiny-22", true);
  const fs::path dir = fresh_temp_dir();
  const std::string gate = "model.layers.1.mlp.experts.gate_proj.weight",
                    down = "model.layers.1.mlp.experts.down_proj.weight";
  for (QuantType type : {QuantType::Q8, QuantType::Q4})
    for (bool panels : {false, true}) {
      QuantizeOptions o;
      o.type = type;
      o.panels = panels;
      const std::string tag = std::string(quant_type_name(type)) + (panels ? "-panels" : "-rows");
      quantize_checkpoint(flat, (dir / ("flat-" + tag)).string(), o);
      quantize_checkpoint(packed, (dir / ("packed-" + tag)).string(), o);
      Checkpoint q((dir / ("packed-" + tag)).string());
      const bool q8 = type == QuantType::Q8;
      // gate [16, 32, 64]; down [16, 64, 32]: K = 32 is no multiple of q8's group 64 (kept as it is).
      if (panels) {
        EXPECT_EQ(q.get(gate).shape, (std::vector<int64_t>{16, 2, q8 ? 16 : 8, 16, 4})) << tag;
        EXPECT_EQ(q.get(gate + ".qscale").shape, (std::vector<int64_t>{16, 2, q8 ? 1 : 2, 16})) << tag;
      } else {
        EXPECT_EQ(q.get(gate).shape, (std::vector<int64_t>{16, 32, q8 ? 64 : 32})) << tag;
        EXPECT_EQ(q.get(gate + ".qscale").shape, (std::vector<int64_t>{16, 32, q8 ? 1 : 2})) << tag;
      }
      EXPECT_EQ(q.get(down).dtype, q8 ? DType::F32 : DType::U8) << tag;
      EXPECT_EQ(q.has(down + ".qscale"), !q8) << tag;
      auto a = Model::load((dir / ("flat-" + tag)).string());
      auto b = Model::load((dir / ("packed-" + tag)).string());
      EXPECT_EQ(logits_of(*a), logits_of(*b)) << tag;
    }
  fs::remove_all(dir);
}

TEST(Llada22TestModelCli, ShapesAndPackedExperts) {
  std::string out, err;
  ASSERT_EQ(run_cli("make-test-model --help", &out, &err), 0);
  for (const char* s : {"--packed-experts", "tiny-22", "mini22-L<n>"}) EXPECT_HAS(out, s);
  const fs::path dir = fresh_temp_dir();
  ASSERT_EQ(run_cli("make-test-model --shape tiny-22 --dtype f32 --seed 5 --packed-experts --quiet --out " +
                        (dir / "m").string(),
                    &out, &err),
            0)
      << err;
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors"}) {
    EXPECT_EQ(read_file(dir / "m" / f), read_file(fs::path(llada22_model_dir("tiny-22", true)) / f)) << f;
  }
  // --force replaces a LLaDA2.2 checkpoint's generation config with none.
  ASSERT_EQ(run_cli("make-test-model --shape tiny-a --force --quiet --out " + (dir / "m").string(), &out, &err), 0);
  EXPECT_FALSE(fs::exists(dir / "m" / "generation_config.json"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace llada2::testing
