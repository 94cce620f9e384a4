#include "llada2/quantize.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "llada2/error.h"
#include "llada2/safetensors.h"

namespace llada2 {

namespace fs = std::filesystem;

QuantType parse_quant_type(const std::string& s) {
  if (s == "q8") return QuantType::Q8;
  if (s == "q4") return QuantType::Q4;
  throw InputError("--type: expected q8 or q4, got '" + s + "'");
}

const char* quant_type_name(QuantType t) { return t == QuantType::Q8 ? "q8" : "q4"; }

int64_t default_quant_group(QuantType t) { return t == QuantType::Q8 ? 64 : 32; }

bool is_quantizable_linear(const std::string& name) {
  auto ends_with = [&](const char* suffix) {
    const size_t n = std::strlen(suffix);
    return name.size() >= n && name.compare(name.size() - n, n, suffix) == 0;
  };
  if (name == "lm_head.weight") return true;
  if (name.rfind("model.layers.", 0) != 0) return false;
  return ends_with(".attention.query_key_value.weight") || ends_with(".attention.dense.weight") ||
         ends_with(".gate_proj.weight") || ends_with(".up_proj.weight") || ends_with(".down_proj.weight");
}

namespace {

float group_absmax(const float* x, int64_t n) {
  float m = 0.f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

template <int kMax, typename Store>
void quantize_row(const float* x, int64_t n, int64_t group, float* scales, Store store) {
  for (int64_t g = 0; g < n / group; ++g) {
    const float* xg = x + g * group;
    const float s = group_absmax(xg, group) / float(kMax);
    scales[g] = s;
    for (int64_t i = 0; i < group; ++i) {
      long q = s > 0.f ? std::lrint(xg[i] / s) : 0;
      q = std::clamp<long>(q, -kMax, kMax);
      store(g * group + i, int(q));
    }
  }
}

}  // namespace

void quantize_row_q8(const float* x, int64_t n, int64_t group, int8_t* q, float* scales) {
  quantize_row<127>(x, n, group, scales, [&](int64_t i, int v) { q[i] = int8_t(v); });
}

void quantize_row_q4(const float* x, int64_t n, int64_t group, uint8_t* q, float* scales) {
  std::memset(q, 0, size_t(n / 2));
  quantize_row<7>(x, n, group, scales,
                  [&](int64_t i, int v) { q[i / 2] = uint8_t(q[i / 2] | ((unsigned(v) & 0x0Fu) << ((i & 1) * 4))); });
}

namespace {

bool is_weight_file(const fs::path& p) {
  const std::string name = p.filename().string();
  const std::string ext = p.extension().string();
  return ext == ".safetensors" || name == "model.safetensors.index.json" || ext == ".bin" || ext == ".pt" ||
         ext == ".pth" || ext == ".gguf" || ext == ".ckpt" || name == "pytorch_model.bin.index.json";
}

struct Plan {
  const TensorView* src = nullptr;
  bool quantize = false;
  bool scales = false;  // this output is the .qscale of src
  bool panels = false;  // written in panel order (QuantizeOptions::panels)
};

// A 64-byte aligned byte buffer (the SIMD panel packer wants aligned output).
struct AlignedBytes {
  uint8_t* p = nullptr;
  size_t cap = 0;
  AlignedBytes() = default;
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;
  ~AlignedBytes() { std::free(p); }
  uint8_t* get(size_t n) {
    if (n > cap) {
      std::free(p);
      cap = (n + 63) / 64 * 64;
      p = static_cast<uint8_t*>(std::aligned_alloc(64, cap));
      if (!p) throw std::bad_alloc();
    }
    return p;
  }
};

}  // namespace

QuantizeStats quantize_checkpoint(const std::string& in_dir, const std::string& out_dir, const QuantizeOptions& o) {
  const int64_t G = o.group > 0 ? o.group : default_quant_group(o.type);
  if (G < 16 || (G & (G - 1)) != 0 || G > (1 << 20))
    throw InputError("--group: expected a power of two >= 16, got " + std::to_string(G));
  if (o.max_shard_bytes == 0) throw InputError("the shard size limit must be positive");
  std::error_code ec;
  if (!fs::is_directory(in_dir, ec)) throw InputError("--model " + in_dir + ": not a folder");
  if (!fs::exists(fs::path(in_dir) / "config.json", ec))
    throw FileError(in_dir, "no config.json (expected a checkpoint folder)");
  if (fs::exists(out_dir, ec)) {
    if (!fs::is_directory(out_dir, ec)) throw InputError("--out " + out_dir + " exists and is not a folder");
    if (!fs::is_empty(out_dir, ec)) throw InputError("--out " + out_dir + " is not empty");
  }
  if (fs::exists(out_dir, ec) && fs::equivalent(in_dir, out_dir, ec))
    throw InputError("--out must differ from --model");

  Checkpoint ck(in_dir);
  const bool q8 = o.type == QuantType::Q8;
  const std::string qname = std::string(quant_type_name(o.type)) + "_g" + std::to_string(G);

  // The output tensors, in name order, and where each comes from.
  std::vector<TensorSpec> specs;
  std::map<std::string, Plan> plan;
  QuantizeStats stats;
  for (const auto& [name, t] : ck.tensors()) {
    if (name.size() > 7 && name.compare(name.size() - 7, 7, ".qscale") == 0)
      throw FileError(in_dir, "tensor " + name + ": the checkpoint is already quantized");
    stats.in_bytes += t.nbytes;
    const bool fl = t.dtype == DType::F32 || t.dtype == DType::BF16 || t.dtype == DType::F16;
    // Routed experts packed in one tensor [E, N, K] (transformers 5) are E matrices [N, K]: each is
    // quantized as a matrix of its own, and the expert stays the leading dimension.
    const bool stacked = t.shape.size() == 3 && name.find(".mlp.experts.") != std::string::npos;
    if (is_quantizable_linear(name) && fl && (t.shape.size() == 2 || stacked) && t.shape.back() % G == 0 &&
        t.numel() > 0) {
      const int64_t N = t.shape[t.shape.size() - 2], K = t.shape.back();
      const std::vector<int64_t> lead = stacked ? std::vector<int64_t>{t.shape[0]} : std::vector<int64_t>{};
      auto shape = [&](std::vector<int64_t> dims) {
        dims.insert(dims.begin(), lead.begin(), lead.end());
        return dims;
      };
      // Panels only where the int8 kernels would read them (their groups: q8 64-4096, q4 32-4096).
      const bool panels = o.panels && N % 16 == 0 && K % 64 == 0 && G >= (q8 ? 64 : 32) && G <= 4096;
      if (panels) {
        specs.push_back({name, DType::U8, shape({N / 16, q8 ? K / 4 : K / 8, 16, 4})});
        specs.push_back({name + ".qscale", DType::F32, shape({N / 16, K / G, 16})});
      } else {
        specs.push_back({name, q8 ? DType::I8 : DType::U8, shape({N, q8 ? K : K / 2})});
        specs.push_back({name + ".qscale", DType::F32, shape({N, K / G})});
      }
      plan[name] = {&t, true, false, panels};
      plan[name + ".qscale"] = {&t, true, true, panels};
      ++stats.quantized;
    } else {
      specs.push_back({name, t.dtype, t.shape});
      plan[name] = {&t, false, false};
      ++stats.kept;
    }
  }
  std::sort(specs.begin(), specs.end(), [](const TensorSpec& a, const TensorSpec& b) { return a.name < b.name; });

  // Shards as CheckpointWriter cuts them, written with the quantization in each header.
  std::vector<std::vector<TensorSpec>> shards;
  std::vector<uint64_t> shard_bytes;
  for (const TensorSpec& t : specs) {
    const uint64_t b = t.nbytes();
    stats.out_bytes += b;
    if (shards.empty() || (shard_bytes.back() > 0 && shard_bytes.back() + b > o.max_shard_bytes)) {
      shards.emplace_back();
      shard_bytes.push_back(0);
    }
    shards.back().push_back(t);
    shard_bytes.back() += b;
  }
  if (shards.empty()) shards.emplace_back();
  std::vector<std::string> files;
  for (size_t s = 0; s < shards.size(); ++s) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    files.push_back(shards.size() == 1 ? "model.safetensors" : buf);
  }

  fs::create_directories(out_dir, ec);
  if (!fs::is_directory(out_dir, ec)) throw FileError(out_dir, "cannot create the output folder");
  std::map<std::string, std::string> metadata{{"format", "pt"}, {"llada2.quantization", qname}};
  if (o.panels) metadata["llada2.layout"] = "panels";

  uint64_t done = 0;
  std::map<std::string, std::vector<float>> pending_scales;  // written right after their weight
  constexpr size_t kChunkBytes = 16u << 20;
  std::vector<uint8_t> out;
  AlignedBytes panel_out;
  for (size_t s = 0; s < shards.size(); ++s) {
    SafetensorsWriter w((fs::path(out_dir) / files[s]).string(), shards[s], metadata);
    for (const TensorSpec& spec : w.tensors()) {
      const Plan& p = plan.at(spec.name);
      const TensorView& t = *p.src;
      if (!p.quantize) {
        for (size_t off = 0; off < t.nbytes; off += kChunkBytes) {
          const size_t n = std::min(kChunkBytes, t.nbytes - off);
          w.write(spec.name, t.data + off, n);
          release_pages(t.data + off, n);
          done += n;
          if (o.progress) o.progress(done, stats.in_bytes);
        }
        if (t.nbytes == 0) w.write(spec.name, nullptr, 0);
        continue;
      }
      if (p.scales) {
        auto it = pending_scales.find(t.name);
        if (it == pending_scales.end()) throw InputError(spec.name + ": scales before their weight");
        w.write(spec.name, it->second.data(), it->second.size() * 4);
        pending_scales.erase(it);
        continue;
      }
      const int64_t K = t.shape.back(), N = t.numel() / K;  // a packed tensor's experts one after another
      const size_t row_out = size_t(q8 ? K : K / 2), row_in = size_t(K) * dtype_size(t.dtype);
      std::vector<float>& scales = pending_scales[t.name];
      scales.resize(size_t(N * (K / G)));
      std::vector<float> row_scales(p.panels ? scales.size() : 0);  // panels: rows' scales before reordering
      int64_t rows = std::max<int64_t>(1, int64_t(kChunkBytes / std::max<size_t>(1, row_in)));
      if (p.panels) rows = (rows + 15) / 16 * 16;  // whole panels per piece
      for (int64_t r0 = 0; r0 < N; r0 += rows) {
        const int64_t r1 = std::min(N, r0 + rows);
        out.resize(size_t(r1 - r0) * row_out);
        parallel_for(
            r1 - r0,
            [&](int64_t a, int64_t b) {
              std::vector<float> x(static_cast<size_t>(K));
              for (int64_t r = r0 + a; r < r0 + b; ++r) {
                kernels::to_f32(t.dtype, t.data, r * K, K, x.data());
                float* sc = (p.panels ? row_scales.data() : scales.data()) + r * (K / G);
                uint8_t* q = out.data() + size_t(r - r0) * row_out;
                if (q8) {
                  quantize_row_q8(x.data(), K, G, reinterpret_cast<int8_t*>(q), sc);
                } else {
                  quantize_row_q4(x.data(), K, G, q, sc);
                }
              }
            },
            8);
        if (p.panels) {
          kernels::Weight piece{
              out.data(), q8 ? DType::I8 : DType::U8,      r1 - r0, K, q8 ? kernels::Quant::Q8 : kernels::Quant::Q4,
              G,          row_scales.data() + r0 * (K / G)};
          uint8_t* packed = panel_out.get(size_t(kernels::panel_bytes(piece)));
          kernels::pack_panels(piece, packed, scales.data() + r0 * (K / G));  // r0 is a multiple of 16
          w.write(spec.name, packed, size_t(kernels::panel_bytes(piece)));
        } else {
          w.write(spec.name, out.data(), out.size());
        }
        release_pages(t.data + size_t(r0) * row_in, size_t(r1 - r0) * row_in);
        done += size_t(r1 - r0) * row_in;
        if (o.progress) o.progress(done, stats.in_bytes);
      }
    }
    w.finish();
  }
  if (shards.size() > 1) {
    nlohmann::json idx;
    idx["metadata"] = {{"total_size", stats.out_bytes}, {"llada2.quantization", qname}};
    nlohmann::json wm = nlohmann::json::object();
    for (size_t s = 0; s < shards.size(); ++s)
      for (const TensorSpec& t : shards[s]) wm[t.name] = files[s];
    idx["weight_map"] = wm;
    std::ofstream f(fs::path(out_dir) / "model.safetensors.index.json");
    f << idx.dump(2) << "\n";
    if (!f) throw FileError(out_dir, "cannot write model.safetensors.index.json");
  }
  // config.json, tokenizer and chat template files: everything but the weights.
  for (const auto& e : fs::directory_iterator(in_dir)) {
    if (!e.is_regular_file() || is_weight_file(e.path()) || e.path().filename().string().front() == '.') continue;
    fs::copy_file(e.path(), fs::path(out_dir) / e.path().filename(), fs::copy_options::overwrite_existing, ec);
    if (ec) throw FileError(e.path().string(), "cannot copy: " + ec.message());
  }
  return stats;
}

}  // namespace llada2
