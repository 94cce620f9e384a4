// make-test-model: layout equal to the golden tiny models, determinism, distributions, the
// planned size of the full LLaDA2-mini, sharding, and the CLI's errors.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>
#include "test_util.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "llada2/config.h"
#include "llada2/error.h"
#include "llada2/safetensors.h"
#include "pipeline/test_model.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace llada2;

namespace {

const std::string kModels = std::string(LLADA2_TEST_DATA) + "/models/";

fs::path temp_dir() { return llada2::testing::fresh_temp_dir(); }
using llada2::testing::read_file;

// The bytes of every weight file of a checkpoint folder, by file name.
std::map<std::string, std::string> weight_files(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename() != "config.json") out[e.path().filename().string()] = read_file(e.path());
  return out;
}

void make(const fs::path& dir, const std::string& shape, DType dtype, uint64_t seed,
          uint64_t shard = kDefaultMaxShardBytes) {
  TestModelOptions o;
  o.shape = shape;
  o.dtype = dtype;
  o.seed = seed;
  o.max_shard_bytes = shard;
  write_test_model(dir.string(), o);
}

float bf16_to_float(uint16_t h) {
  uint32_t x = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

float f16_to_float(uint16_t h) {
  const int e = (h >> 10) & 31, m = h & 1023;
  float v = e == 0 ? std::ldexp(float(m), -24) : std::ldexp(float(m | 1024), e - 25);
  return (h & 0x8000) ? -v : v;
}

struct Stats {
  double mean = 0, stddev = 0;
};

Stats stats(const TensorView& t) {
  const int64_t n = t.numel();
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (t.dtype == DType::F32) {
      float f;
      std::memcpy(&f, t.data + 4 * i, 4);
      v[size_t(i)] = f;
    } else {
      uint16_t h;
      std::memcpy(&h, t.data + 2 * i, 2);
      v[size_t(i)] = t.dtype == DType::BF16 ? bf16_to_float(h) : f16_to_float(h);
    }
  }
  Stats s;
  for (double x : v) s.mean += x / double(n);
  for (double x : v) s.stddev += (x - s.mean) * (x - s.mean) / double(n);
  s.stddev = std::sqrt(s.stddev);
  return s;
}

#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

}  // namespace

TEST(MakeTestModel, LayoutMatchesGoldenTinyModels) {
  const fs::path dir = temp_dir();
  for (const char* shape : {"tiny-a", "tiny-b"}) {
    make(dir / shape, shape, DType::F32, 7);
    ModelConfig c = ModelConfig::from_file((dir / shape / "config.json").string());
    json expected = json::parse(std::ifstream(kModels + shape + "-f32/tensors.json"));
    Checkpoint ck((dir / shape).string());
    ASSERT_EQ(ck.tensors().size(), expected.size()) << shape;
    for (const auto& [name, t] : ck.tensors()) {
      ASSERT_TRUE(expected.contains(name)) << name;
      EXPECT_EQ(t.shape, expected[name]["shape"].get<std::vector<int64_t>>()) << name;
      EXPECT_EQ(dtype_name(t.dtype), expected[name]["dtype"].get<std::string>()) << name;
    }
    EXPECT_TRUE(fs::exists(dir / shape / "model.safetensors"));
    EXPECT_FALSE(fs::exists(dir / shape / "model.safetensors.index.json"));
    EXPECT_EQ(c.num_hidden_layers, shape[5] == 'a' ? 2 : 3);
  }
  fs::remove_all(dir);
}

TEST(MakeTestModel, ConfigEqualsGoldenPlusSpecialIds) {
  for (const char* shape : {"tiny-a", "tiny-b"}) {
    for (const char* dt : {"f32", "bf16"}) {
      json got = json::parse(test_model_config_json(shape, parse_test_model_dtype(dt)));
      const std::string golden_name = std::string(shape) + (dt == std::string("f32") ? "-f32" : "-bf16");
      json want = json::parse(std::ifstream(kModels + golden_name + "/config.json"));
      const bool a = shape == std::string("tiny-a");
      EXPECT_EQ(got["mask_token_id"], a ? 319 : 999);
      EXPECT_EQ(got["eos_token_id"], a ? 311 : 972);
      got.erase("mask_token_id");
      got.erase("eos_token_id");
      EXPECT_EQ(got, want) << golden_name;
    }
  }
  json f16 = json::parse(test_model_config_json("tiny-a", DType::F16));
  EXPECT_EQ(f16["torch_dtype"], "float16");
}

TEST(MakeTestModel, MiniConfigIsLlada2Mini) {
  ModelConfig c = ModelConfig::from_json_text(test_model_config_json("mini-L3", DType::BF16), "mini");
  EXPECT_EQ(c.vocab_size, 157184);
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.num_hidden_layers, 3);
  EXPECT_EQ(c.num_attention_heads, 16);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.intermediate_size, 5120);
  EXPECT_EQ(c.moe_intermediate_size, 512);
  EXPECT_EQ(c.num_experts, 256);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.num_shared_experts, 1);
  EXPECT_EQ(c.n_group, 8);
  EXPECT_EQ(c.topk_group, 4);
  EXPECT_EQ(c.first_k_dense_replace, 1);
  EXPECT_DOUBLE_EQ(c.rope_theta, 600000);
  EXPECT_EQ(c.rotary_dim, 64);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.5);
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_EQ(c.pad_token_id, 156892);
  EXPECT_FALSE(c.mask_token_id.has_value());
  EXPECT_FALSE(c.eos_token_id.has_value());
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  for (const char* bad : {"mini", "mini-L0", "mini-L", "mini-Lx", "mini-L1001", "tiny-c", "TINY-A", ""})
    EXPECT_THROW(test_model_config_json(bad, DType::BF16), InputError) << bad;
  EXPECT_THROW(test_model_config_json("tiny-a", DType::I64), InputError);
  EXPECT_THROW(parse_test_model_dtype("fp32"), InputError);
}

TEST(MakeTestModel, FullMiniPlanMatchesPublishedSize) {
  // LLaDA2.1-mini: 16,255,643,392 parameters, 32,511,296,512 bytes of bf16 weights + F32 expert_bias.
  ModelConfig c = ModelConfig::from_json_text(test_model_config_json("mini-L20", DType::BF16), "mini");
  auto tensors = test_model_tensors(c, DType::BF16);
  uint64_t params = 0, bytes = 0;
  for (const auto& t : tensors) {
    params += t.spec.nbytes() / dtype_size(t.spec.dtype);
    bytes += t.spec.nbytes();
  }
  EXPECT_EQ(params, 16255643392ull);
  EXPECT_EQ(bytes, 32511296512ull);
  EXPECT_EQ(tensors.size(), 3u + 20u * 6u + 3u + 19u * (2u + 256u * 3u + 3u));

  // Sharded at 4 GB: the writer only writes the first shard's header before being dropped.
  const fs::path dir = temp_dir();
  std::vector<TensorSpec> specs;
  for (const auto& t : tensors) specs.push_back(t.spec);
  {
    CheckpointWriter w(dir.string(), specs);
    EXPECT_EQ(w.files().size(), 9u);
    EXPECT_EQ(w.files().front(), "model-00001-of-00009.safetensors");
    std::map<std::string, uint64_t> per_file;
    for (const auto& t : specs) per_file[w.weight_map().at(t.name)] += t.nbytes();
    for (const auto& [f, b] : per_file) EXPECT_LE(b, kDefaultMaxShardBytes) << f;
  }
  EXPECT_TRUE(fs::is_empty(dir)) << "an unfinished shard must not be left behind";
  fs::remove_all(dir);

  ModelConfig c1 = ModelConfig::from_json_text(test_model_config_json("mini-L1", DType::BF16), "mini");
  for (const auto& t : test_model_tensors(c1, DType::BF16)) EXPECT_EQ(t.spec.name.find("experts"), std::string::npos);
}

TEST(MakeTestModel, DeterministicForASeed) {
  const fs::path dir = temp_dir();
  make(dir / "a", "tiny-b", DType::BF16, 42);
  make(dir / "b", "tiny-b", DType::BF16, 42);
  make(dir / "c", "tiny-b", DType::BF16, 43);
  // One worker thread instead of the machine's count (the CLI reads LLADA2_THREADS).
  const std::string cmd = std::string("LLADA2_THREADS=1 '") + LLADA2_CLI_PATH +
                          "' make-test-model --shape tiny-b --dtype bf16 --seed 42 --out '" + (dir / "d").string() +
                          "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_EQ(weight_files(dir / "a"), weight_files(dir / "b"));
  EXPECT_EQ(weight_files(dir / "a"), weight_files(dir / "d")) << "output must not depend on the thread count";
  EXPECT_NE(weight_files(dir / "a"), weight_files(dir / "c"));
  EXPECT_EQ(read_file(dir / "a" / "config.json"), read_file(dir / "c" / "config.json"));
  fs::remove_all(dir);
}

TEST(MakeTestModel, ValuesAreValuesOfTheDocumentedStream) {
  TestTensor t{{"x", DType::F32, {3 * kTestModelChunk + 5}}, 0.0f, 1.0f};
  const int64_t n = t.spec.shape[0];
  std::vector<float> whole(static_cast<size_t>(n)), part(static_cast<size_t>(n - kTestModelChunk));
  test_model_values(t, 9, 0, n, whole.data());
  test_model_values(t, 9, kTestModelChunk, n - kTestModelChunk, part.data());
  EXPECT_TRUE(std::equal(part.begin(), part.end(), whole.begin() + kTestModelChunk));
  EXPECT_THROW(test_model_values(t, 9, 1, 1, part.data()), InputError);
  // Chunks differ from each other.
  EXPECT_NE(whole[0], whole[size_t(kTestModelChunk)]);
  double mean = 0, var = 0;
  for (float v : whole) mean += v / double(n);
  for (float v : whole) var += (v - mean) * (v - mean) / double(n);
  EXPECT_NEAR(mean, 0.0, 0.02);
  EXPECT_NEAR(var, 1.0, 0.02);
}

TEST(MakeTestModel, DistributionsAndDtypes) {
  const fs::path dir = temp_dir();
  make(dir / "f32", "tiny-b", DType::F32, 3);
  make(dir / "bf16", "tiny-b", DType::BF16, 3);
  make(dir / "f16", "tiny-b", DType::F16, 3);
  Checkpoint f32((dir / "f32").string()), bf16((dir / "bf16").string()), f16((dir / "f16").string());
  for (const auto& [name, t] : f32.tensors()) {
    const TensorView& b = bf16.get(name);
    const TensorView& h = f16.get(name);
    if (name.ends_with("expert_bias")) {
      EXPECT_EQ(b.dtype, DType::F32);
      EXPECT_EQ(h.dtype, DType::F32);
      EXPECT_EQ(std::memcmp(b.data, t.data, t.nbytes), 0);
      Stats s = stats(t);
      EXPECT_LT(std::fabs(s.mean), 0.02) << name;
      EXPECT_LT(s.stddev, 0.03) << name;
      continue;
    }
    EXPECT_EQ(b.dtype, DType::BF16) << name;
    EXPECT_EQ(h.dtype, DType::F16) << name;
    // The same values, rounded to nearest even.
    for (int64_t i = 0; i < t.numel(); ++i) {
      float v;
      std::memcpy(&v, t.data + 4 * i, 4);
      uint32_t x;
      std::memcpy(&x, &v, 4);
      uint16_t want = uint16_t((x + 0x7fff + ((x >> 16) & 1)) >> 16), got;
      std::memcpy(&got, b.data + 2 * i, 2);
      ASSERT_EQ(got, want) << name << "[" << i << "]";
      std::memcpy(&got, h.data + 2 * i, 2);
      const float hv = f16_to_float(got);
      ASSERT_LE(std::fabs(hv - v), std::max(std::fabs(v) * 0x1p-11f, 0x1p-25f)) << name << "[" << i << "]";
    }
    Stats s = stats(t);
    if (name.ends_with("norm.weight") || name.ends_with("layernorm.weight")) {
      EXPECT_NEAR(s.mean, 1.0, 0.01) << name;
      EXPECT_NEAR(s.stddev, 0.02, 0.01) << name;
    } else if (name == "model.word_embeddings.weight") {
      EXPECT_NEAR(s.mean, 0.0, 0.02);
      EXPECT_NEAR(s.stddev, 1.0, 0.02);
    } else {
      const double want = 1.0 / std::sqrt(double(t.shape[1]));
      EXPECT_NEAR(s.stddev, want, want * 0.1) << name;
    }
  }
  fs::remove_all(dir);
}

TEST(MakeTestModel, ShardedCheckpointHoldsTheSameTensors) {
  const fs::path dir = temp_dir();
  make(dir / "one", "tiny-a", DType::F32, 5);
  make(dir / "many", "tiny-a", DType::F32, 5, 100000);
  EXPECT_TRUE(fs::exists(dir / "many" / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir / "many" / "model.safetensors"));
  Checkpoint one((dir / "one").string()), many((dir / "many").string());
  ASSERT_EQ(one.tensors().size(), many.tensors().size());
  std::set<std::string> files;
  for (const auto& [name, t] : one.tensors()) {
    const TensorView& m = many.get(name);
    ASSERT_EQ(t.nbytes, m.nbytes);
    EXPECT_EQ(std::memcmp(t.data, m.data, t.nbytes), 0) << name;
    files.insert(m.file);
  }
  EXPECT_EQ(files.size(), 6u);  // 585,248 bytes in shards of at most 100,000
  // Rewriting unsharded removes the stale shards and index.
  make(dir / "many", "tiny-a", DType::F32, 5);
  EXPECT_EQ(weight_files(dir / "many"), weight_files(dir / "one"));
  fs::remove_all(dir);
}

TEST(MakeTestModel, OutputPathThatIsAFile) {
  const fs::path dir = temp_dir();
  std::ofstream(dir / "file") << "x";
  try {
    make(dir / "file", "tiny-a", DType::F32, 1);
    ADD_FAILURE();
  } catch (const FileError& e) {
    EXPECT_HAS(e.what(), "cannot create the output folder");
  }
  fs::remove_all(dir);
}

// --- the CLI -------------------------------------------------------------------------------

namespace {

struct CliRun {
  int code = -1;
  std::string output;  // stdout and stderr
};

CliRun run_cli(const std::string& args) {
  CliRun r;
  std::string cmd = std::string("'") + LLADA2_CLI_PATH + "' make-test-model " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace

TEST(MakeTestModelCli, WritesACheckpoint) {
  const fs::path dir = temp_dir();
  const std::string out = (dir / "m").string();
  CliRun r = run_cli("--shape tiny-b --dtype bf16 --seed 11 --out " + out);
  ASSERT_EQ(r.code, 0) << r.output;
  make(dir / "lib", "tiny-b", DType::BF16, 11);
  EXPECT_EQ(weight_files(out), weight_files(dir / "lib"));
  EXPECT_EQ(read_file(dir / "m" / "config.json"), read_file(dir / "lib" / "config.json"));

  r = run_cli("--shape tiny-b --seed 11 --out " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_HAS(r.output, "is not empty; pass --force");

  r = run_cli("--shape tiny-a --dtype f32 --max-shard-size 100KB --force --out " + out);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir / "m" / "model-00006-of-00006.safetensors"));
  EXPECT_EQ(Checkpoint(out).tensors().size(), 47u);
  r = run_cli("--shape tiny-a --dtype f32 --force --quiet --out " + out);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output, "");
  EXPECT_FALSE(fs::exists(dir / "m" / "model-00001-of-00006.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "m" / "model.safetensors"));
  fs::remove_all(dir);
}

TEST(MakeTestModelCli, HelpExplainsEveryFlag) {
  CliRun r = run_cli("--help");
  EXPECT_EQ(r.code, 0);
  for (const char* flag : {"--shape", "--dtype", "--seed", "--out", "--force", "--max-shard-size", "--quiet", "tiny-a",
                           "mini-L<n>", "bf16"})
    EXPECT_HAS(r.output, flag);
}

TEST(MakeTestModelCli, BadFlagsExitWithTwo) {
  const fs::path dir = temp_dir();
  const std::string out = " --out " + (dir / "x").string();
  struct Case {
    std::string args, message;
  } cases[] = {
      {"--dtype bf16" + out, "--shape is required"},
      {"--shape tiny-a", "--out is required"},
      {"--shape tiny-c" + out, "unknown shape 'tiny-c'"},
      {"--shape mini-L0" + out, "1 <= n <= 1000"},
      {"--shape tiny-a --dtype fp8" + out, "dtype must be f32, bf16 or f16, got 'fp8'"},
      {"--shape tiny-a --seed abc" + out, "--seed"},
      {"--shape tiny-a --seed -1" + out, "--seed"},
      {"--shape tiny-a --max-shard-size 0" + out, "--max-shard-size"},
      {"--shape tiny-a --max-shard-size 4XB" + out, "--max-shard-size"},
      {"--shape tiny-a --bogus" + out, "bogus"},
      {"--shape tiny-a --out " + std::string(LLADA2_CLI_PATH), "exists and is not a folder"},
  };
  for (const Case& c : cases) {
    CliRun r = run_cli(c.args);
    EXPECT_EQ(r.code, 2) << c.args << "\n" << r.output;
    EXPECT_HAS(r.output, c.message);
  }
  EXPECT_FALSE(fs::exists(dir / "x")) << "a rejected command must not create the folder";
  fs::remove_all(dir);
}
