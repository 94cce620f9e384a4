// LLaDA2.2 test checkpoints (make-test-model's tiny-22 shape), written once per test process.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <unistd.h>
#include <nlohmann/json.hpp>

#include "llada2/model.h"
#include "llada2/pipeline.h"
#include "llada2/test_model.h"
#include "test_util.h"

namespace llada2::testing {

// Multiplies rows `ids` of the float32 matrix `name` of the safetensors file `path` by `factor`, in place.
inline void scale_rows(const std::string& path, const std::string& name, const std::vector<int64_t>& ids,
                       float factor) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  uint64_t n = 0;
  f.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  f.read(header.data(), std::streamsize(n));
  const nlohmann::json t = nlohmann::json::parse(header).at(name);
  const int64_t cols = t["shape"][1];
  const uint64_t data = 8 + n + t["data_offsets"][0].get<uint64_t>();
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t id : ids) {
    const auto at = std::streamoff(data + uint64_t(id * cols) * 4);
    f.seekg(at);
    f.read(reinterpret_cast<char*>(row.data()), cols * 4);
    for (float& v : row) v *= factor;
    f.seekp(at);
    f.write(reinterpret_cast<const char*>(row.data()), cols * 4);
  }
}

// A random checkpoint of `shape` (f32 unless said otherwise) in a temporary folder removed at exit;
// with `tokenizer`, tests/data/tok/ling-synth's tokenizer and chat template beside it. `edit_scale` > 0
// multiplies the LM head's rows of the delete and split ids by it, so that deletions and splits happen
// in most generations (random weights alone almost never pick two ids of 8000).
inline const std::string& llada22_model_dir(const std::string& shape = "tiny-22", bool packed = false,
                                            DType dtype = DType::F32, uint64_t seed = 5, bool tokenizer = false,
                                            float edit_scale = 0.f) {
  static std::mutex mu;
  static auto* dirs = new std::map<std::string, std::string>;
  std::lock_guard<std::mutex> lk(mu);
  const std::string key = shape + (packed ? "-packed-" : "-") + dtype_name(dtype) + "-" + std::to_string(seed) +
                          (tokenizer ? "-tok" : "") + (edit_scale > 0 ? "-edits" + std::to_string(edit_scale) : "");
  std::string& dir = (*dirs)[key];
  if (dir.empty()) {
    dir = (std::filesystem::temp_directory_path() / ("llada2_l22_" + key + "_" + std::to_string(::getpid()))).string();
    TestModelOptions o;
    o.shape = shape;
    o.dtype = dtype;
    o.seed = seed;
    o.packed_experts = packed;
    if (tokenizer) o.tokenizer_dir = data_path("tok/ling-synth");
    write_test_model(dir, o);
    if (edit_scale > 0) {
      const nlohmann::json cfg = nlohmann::json::parse(std::ifstream(dir + "/config.json"));
      scale_rows(dir + "/model.safetensors", "lm_head.weight", {cfg["delete_token_id"], cfg["split_token_id"]},
                 edit_scale);
    }
    if (dirs->size() == 1)
      std::atexit([] {
        std::error_code ec;
        for (const auto& [k, d] : *dirs) std::filesystem::remove_all(d, ec);
      });
  }
  return dir;
}

// The default tiny-22 checkpoint, loaded once.
inline std::shared_ptr<const Model> tiny22_model() {
  static std::shared_ptr<const Model> m = Model::load(llada22_model_dir());
  return m;
}

// tiny-22 with the ling-synth tokenizer (EOS and mask from it, no generation_config.json), loaded once.
inline std::shared_ptr<const Pipeline> tiny22_chat_pipeline() {
  static std::shared_ptr<const Pipeline> p = std::make_shared<const Pipeline>(
      Pipeline::from_pretrained(llada22_model_dir("tiny-22", false, DType::F32, 5, true)));
  return p;
}

// tiny-22 with the tokenizer and an LM head that picks deletions and splits often (edit_scale 3).
inline const std::string& tiny22_editing_model_dir() {
  return llada22_model_dir("tiny-22", false, DType::F32, 5, true, 3.f);
}

}  // namespace llada2::testing
