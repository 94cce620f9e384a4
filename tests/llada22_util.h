// LLaDA2.2 test checkpoints (make-test-model's tiny-22 shape), written once per test process.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <unistd.h>

#include "llada2/model.h"
#include "llada2/test_model.h"

namespace llada2::testing {

// A random checkpoint of `shape` (f32 unless said otherwise) in a temporary folder removed at exit.
inline const std::string& llada22_model_dir(const std::string& shape = "tiny-22", bool packed = false,
                                            DType dtype = DType::F32, uint64_t seed = 5) {
  static std::mutex mu;
  static auto* dirs = new std::map<std::string, std::string>;
  std::lock_guard<std::mutex> lk(mu);
  const std::string key = shape + (packed ? "-packed-" : "-") + dtype_name(dtype) + "-" + std::to_string(seed);
  std::string& dir = (*dirs)[key];
  if (dir.empty()) {
    dir = (std::filesystem::temp_directory_path() / ("llada2_l22_" + key + "_" + std::to_string(::getpid()))).string();
    TestModelOptions o;
    o.shape = shape;
    o.dtype = dtype;
    o.seed = seed;
    o.packed_experts = packed;
    write_test_model(dir, o);
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

}  // namespace llada2::testing
