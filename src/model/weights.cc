// Binding the checkpoint's tensors to the config, and repacking them into panels (Model::prepare).
#include "model/weights.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <string>
#include <unordered_map>

#include "llada2/error.h"

namespace llada2 {

using kernels::Weight;

namespace {

// Collects every missing or mis-shaped tensor so one error lists them all.
class WeightBinder {
 public:
  explicit WeightBinder(const Checkpoint& ck) : ck_(ck) {}

  Weight matrix(const std::string& name, int64_t rows, int64_t cols) {
    const TensorView* t = find(name, {rows, cols});
    if (!t) return {};
    return Weight{t->data, t->dtype, rows, cols};
  }
  // A linear layer's weight [rows, cols]: float as stored, or quantized (docs/quantization.md):
  // I8 [rows, cols] (q8) or U8 [rows, cols / 2] (q4) with F32 scales `name.qscale` [rows, cols / G].
  Weight linear(const std::string& name, int64_t rows, int64_t cols) {
    if (!ck_.has(name + ".qscale") || !ck_.has(name)) return matrix(name, rows, cols);
    return quantized(name, ck_.get(name), ck_.get(name + ".qscale"), rows, cols);
  }
  // The routed experts' matrices of one projection packed in one tensor (as transformers 5 writes
  // them): `name` [E, rows, cols], or quantized like linear() with the expert as a leading dimension
  // of the weight and its scales. One view per expert.
  std::vector<Weight> packed(const std::string& name, int64_t E, int64_t rows, int64_t cols) {
    std::vector<Weight> out(static_cast<size_t>(E));
    if (!ck_.has(name + ".qscale")) {
      const TensorView* t = find(name, {E, rows, cols});
      if (!t) return out;
      const size_t bytes = t->nbytes / size_t(E);
      for (int64_t e = 0; e < E; ++e) out[size_t(e)] = Weight{t->data + size_t(e) * bytes, t->dtype, rows, cols};
      return out;
    }
    if (!ck_.has(name)) {
      problems_.push_back("missing " + name);
      return out;
    }
    const TensorView& t = ck_.get(name);
    const TensorView& s = ck_.get(name + ".qscale");
    if (t.shape.empty() || t.shape[0] != E || s.shape.empty() || s.shape[0] != E) {
      problems_.push_back(name + " has shape " + t.shape_str() + " and scales " + s.shape_str() +
                          ", expected one quantized matrix per expert (leading dimension " + std::to_string(E) + ")");
      return out;
    }
    // One expert's slice of a packed tensor.
    auto slice = [E](const TensorView& v, int64_t e) {
      TensorView x = v;
      x.shape.erase(x.shape.begin());
      x.nbytes = v.nbytes / size_t(E);
      x.data = v.data + size_t(e) * x.nbytes;
      return x;
    };
    for (int64_t e = 0; e < E; ++e) {
      out[size_t(e)] = quantized(name, slice(t, e), slice(s, e), rows, cols);
      if (!out[size_t(e)].data) break;  // the same problem in every slice: reported once
    }
    return out;
  }
  // A quantized linear weight: I8 / U8 in rows, or U8 in panel order, with its scales s.
  Weight quantized(const std::string& name, const TensorView& t, const TensorView& s, int64_t rows, int64_t cols) {
    if (t.shape.size() == 4) return panels(name, t, s, rows, cols);
    const kernels::Quant kind = t.dtype == DType::I8 ? kernels::Quant::Q8 : kernels::Quant::Q4;
    const int64_t stored = kind == kernels::Quant::Q8 ? cols : cols / 2;
    const int64_t groups = s.shape.size() == 2 ? s.shape[1] : 0;
    std::string bad;
    if (t.dtype != DType::I8 && t.dtype != DType::U8) {
      bad = "has dtype " + std::string(dtype_name(t.dtype)) + " but a .qscale (quantized weights must be I8 or U8)";
    } else if (t.shape != std::vector<int64_t>{rows, stored} || (kind == kernels::Quant::Q4 && cols % 2 != 0)) {
      TensorView want;
      want.shape = {rows, stored};
      bad = "has shape " + t.shape_str() + ", expected " + want.shape_str() + " for " + dtype_name(t.dtype) +
            " quantized [" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
    } else if (s.dtype != DType::F32 || s.shape.size() != 2 || s.shape[0] != rows || groups <= 0 ||
               cols % groups != 0 || (kind == kernels::Quant::Q4 && (cols / groups) % 2 != 0)) {
      bad = "has scales " + name + ".qscale " + dtype_name(s.dtype) + " " + s.shape_str() + ", expected F32 [" +
            std::to_string(rows) + ", " + std::to_string(cols) + " / group]";
    }
    if (!bad.empty()) {
      problems_.push_back(name + " " + bad);
      return {};
    }
    Weight w{t.data, t.dtype, rows, cols};
    w.quant = kind;
    w.group = cols / groups;
    w.scales = reinterpret_cast<const float*>(s.data);
    return w;
  }
  // A quantized linear weight stored in panel order (kernels.h): U8 [ceil(rows/16), cols/4 (q8) or
  // cols/8 (q4), 16, 4] with scales F32 [ceil(rows/16), cols/G, 16].
  Weight panels(const std::string& name, const TensorView& t, const TensorView& s, int64_t rows, int64_t cols) {
    const int64_t P = (rows + 15) / 16;
    const bool q8 = cols % 8 == 0 && t.shape[1] == cols / 4, q4 = cols % 8 == 0 && t.shape[1] == cols / 8;
    const int64_t groups = s.shape.size() == 3 ? s.shape[1] : 0;
    std::string bad;
    if (t.dtype != DType::U8 || t.shape[0] != P || (!q8 && !q4) || t.shape[2] != 16 || t.shape[3] != 4) {
      bad = "has " + std::string(dtype_name(t.dtype)) + " " + t.shape_str() + ", expected U8 [" + std::to_string(P) +
            ", " + std::to_string(cols / 4) + " (q8) or " + std::to_string(cols / 8) +
            " (q4), 16, 4] in panel order for [" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
    } else if (s.dtype != DType::F32 || s.shape.size() != 3 || s.shape[0] != P || s.shape[2] != 16 || groups <= 0 ||
               cols % groups != 0 || (cols / groups) % (q4 ? 8 : 1) != 0) {
      bad = "has scales " + name + ".qscale " + dtype_name(s.dtype) + " " + s.shape_str() + ", expected F32 [" +
            std::to_string(P) + ", " + std::to_string(cols) + " / group, 16] in panel order";
    }
    if (!bad.empty()) {
      problems_.push_back(name + " " + bad);
      return {};
    }
    Weight w{t.data, DType::U8, rows, cols};
    w.quant = q8 ? kernels::Quant::Q8 : kernels::Quant::Q4;
    w.group = cols / groups;
    w.scales = reinterpret_cast<const float*>(s.data);
    w.panels = true;
    return w;
  }
  Weight vector(const std::string& name, int64_t n) {
    const TensorView* t = find(name, {n});
    if (!t) return {};
    return Weight{t->data, t->dtype, 1, n};
  }
  std::vector<float> floats(const std::string& name, int64_t n) {
    Weight w = vector(name, n);
    std::vector<float> out(n);
    if (w.data) kernels::to_f32(w.dtype, w.data, 0, n, out.data());
    return out;
  }
  void finish() const {
    if (problems_.empty()) return;
    std::string msg = "checkpoint does not match config.json (" + std::to_string(problems_.size()) + " problem" +
                      (problems_.size() > 1 ? "s" : "") + "):";
    for (size_t i = 0; i < problems_.size() && i < 25; ++i) msg += "\n  " + problems_[i];
    if (problems_.size() > 25) msg += "\n  ... and " + std::to_string(problems_.size() - 25) + " more";
    throw FileError(ck_.dir(), msg);
  }

 private:
  const TensorView* find(const std::string& name, std::vector<int64_t> shape) {
    if (!ck_.has(name)) {
      problems_.push_back("missing " + name);
      return nullptr;
    }
    const TensorView& t = ck_.get(name);
    if (t.shape != shape) {
      TensorView want;
      want.shape = shape;
      problems_.push_back(name + " has shape " + t.shape_str() + ", expected " + want.shape_str());
      return nullptr;
    }
    if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16) {
      problems_.push_back(name + " has dtype " + dtype_name(t.dtype) + " (weights must be F32, BF16 or F16)");
      return nullptr;
    }
    return &t;
  }

  const Checkpoint& ck_;
  std::vector<std::string> problems_;
};

// The int8 kernels of the avx512vnni / avx512bf16 tiers multiply Q8 / Q4 weights in panels of 16
// rows (kernels.h); packing a panel on every product costs about a third of their time on a
// compute-bound step, so such weights are repacked once, by Model::prepare, and the file's pages
// of the originals leave the process (resident memory stays about the file's size). BF16 weights
// go the same way on the avx2 and avx512 tiers (their panel kernels widen each weight once for up
// to 4 / 24 input rows); a tied LM head stays in rows, since the embedding reads the same rows. Other tiers
// and settings keep the file's rows, and so does a checkpoint written in panel order (already
// what the kernels read). LLADA2_PANELS=0 keeps the weights as the file stores them.
bool repacking_enabled() {
  const char* env = std::getenv("LLADA2_PANELS");
  if (!env || !*env || std::strcmp(env, "1") == 0) return true;
  if (std::strcmp(env, "0") == 0) return false;
  throw InputError(std::string("LLADA2_PANELS=") + env + ": expected 0 or 1");
}

}  // namespace

void Weights::bind(const ModelConfig& c, const Checkpoint& ck) {
  const int64_t H = c.hidden_size, D = c.head_dim, Hq = c.num_attention_heads, Hkv = c.num_key_value_heads;
  WeightBinder b(ck);
  embed = b.matrix("model.word_embeddings.weight", c.vocab_size, H);
  final_norm = b.vector("model.norm.weight", H);
  if (c.tie_word_embeddings && !ck.has("lm_head.weight")) {
    lm_head = embed;
  } else {
    lm_head = b.linear("lm_head.weight", c.vocab_size, H);
  }
  layers.resize(size_t(c.num_hidden_layers));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    Layer& L = layers[size_t(l)];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    L.input_norm = b.vector(p + "input_layernorm.weight", H);
    L.post_norm = b.vector(p + "post_attention_layernorm.weight", H);
    L.qkv = b.linear(p + "attention.query_key_value.weight", (Hq + 2 * Hkv) * D, H);
    if (c.use_qkv_bias) L.qkv_bias = b.floats(p + "attention.query_key_value.bias", (Hq + 2 * Hkv) * D);
    if (c.use_qk_norm) {
      L.q_norm = b.vector(p + "attention.query_layernorm.weight", D);
      L.k_norm = b.vector(p + "attention.key_layernorm.weight", D);
    }
    L.dense = b.linear(p + "attention.dense.weight", H, Hq * D);
    if (c.use_bias) L.dense_bias = b.floats(p + "attention.dense.bias", H);
    L.moe = c.is_moe_layer(l);
    auto bind_mlp = [&](const std::string& q, int64_t I) {
      return Mlp{b.linear(q + "gate_proj.weight", I, H), b.linear(q + "up_proj.weight", I, H),
                 b.linear(q + "down_proj.weight", H, I)};
    };
    if (!L.moe) {
      L.mlp = bind_mlp(p + "mlp.", c.intermediate_size);
      continue;
    }
    L.router = b.matrix(p + "mlp.gate.weight", c.num_experts, H);
    if (ck.has(p + "mlp.gate.expert_bias")) {
      L.expert_bias = b.floats(p + "mlp.gate.expert_bias", c.num_experts);
    } else {
      L.expert_bias.assign(size_t(c.num_experts), 0.f);  // a zero buffer in the original when absent
    }
    // The routed experts: one tensor per expert and projection, or each projection packed.
    const std::string ex = p + "mlp.experts.";
    const int64_t E = c.num_experts, I = c.moe_intermediate_size;
    if (ck.has(ex + "gate_proj.weight") || ck.has(ex + "up_proj.weight") || ck.has(ex + "down_proj.weight")) {
      const std::vector<Weight> gate = b.packed(ex + "gate_proj.weight", E, I, H),
                                up = b.packed(ex + "up_proj.weight", E, I, H),
                                down = b.packed(ex + "down_proj.weight", E, H, I);
      for (int64_t e = 0; e < E; ++e) L.experts.push_back(Mlp{gate[size_t(e)], up[size_t(e)], down[size_t(e)]});
    } else {
      for (int64_t e = 0; e < E; ++e) L.experts.push_back(bind_mlp(ex + std::to_string(e) + ".", I));
    }
    if (c.num_shared_experts > 0) {
      L.has_shared = true;
      L.shared = bind_mlp(p + "mlp.shared_experts.", c.moe_intermediate_size * c.num_shared_experts);
    }
  }
  b.finish();
}

void Weights::pack(const Checkpoint& ck, const Model::LoadProgress& progress) {
  const bool enabled = repacking_enabled();  // checked on every machine, so a bad value always errs
  std::vector<Weight*> ws;
  auto consider = [&](Weight& w) {
    if (kernels::panels_preferred(w)) ws.push_back(&w);
  };
  if (lm_head.data != embed.data) consider(lm_head);  // tied: the embedding reads the same rows
  for (Layer& L : layers) {
    consider(L.qkv);
    consider(L.dense);
    auto mlp = [&](Mlp& m) {
      for (Weight* w : {&m.gate, &m.up, &m.down}) consider(*w);
    };
    if (!L.moe) mlp(L.mlp);
    for (Mlp& e : L.experts) mlp(e);
    if (L.has_shared) mlp(L.shared);
  }
  if (ws.empty() || !enabled) return;
  // In file order: reading a large checkpoint from disk in its name order seeks all over it.
  std::sort(ws.begin(), ws.end(),
            [](const Weight* a, const Weight* b) { return std::less<const void*>()(a->data, b->data); });
  // A tensor leaves the process once its last weight is packed: weights are views that end where
  // their tensor ends (a whole tensor, or the last expert's slice of a packed one).
  std::unordered_map<const void*, const TensorView*> by_end;
  for (const auto& [name, t] : ck.tensors())
    if (t.nbytes > 0) by_end[t.data + t.nbytes] = &t;
  auto rounded = [](uint64_t bytes) { return (bytes + 63) / 64 * 64; };
  uint64_t need = 0;
  for (const Weight* w : ws) need += rounded(kernels::panel_bytes(*w)) + rounded(kernels::panel_scales(*w) * 4);
  // The copies must fit in memory with room to spare: a checkpoint larger than that keeps running
  // from the file's pages (products pack their panels as they go) instead of failing to load.
  const long phys = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
  if (phys > 0 && psize > 0 && double(need) > 0.85 * double(phys) * double(psize)) return;
  constexpr uint64_t kHuge = uint64_t(2) << 20;
  arena_.size = size_t((need + kHuge - 1) / kHuge * kHuge);
  void* base = mmap(nullptr, arena_.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) throw std::bad_alloc();
  arena_.base = base;
  madvise(base, arena_.size, MADV_HUGEPAGE);
  // Where the copies and the checkpoint's pages do not both fit in memory with room to spare, the pages
  // leave the page cache as soon as they are packed: a full memory otherwise slows every later step
  // (the kernel reclaiming beside the worker threads; mini-L20 q8 in 24 GB: 446 ms steps with the
  // page cache full against 339 ms with it dropped).
  const bool drop_cache = double(need + ck.total_bytes()) > 0.7 * double(phys) * double(psize);
  uint8_t* cursor = static_cast<uint8_t*>(base);
  auto aligned = [&](uint64_t bytes) {
    void* p = cursor;
    cursor += rounded(bytes);
    return p;
  };
  uint64_t total = 0, done = 0, ahead = 0, last = 0;
  for (const Weight* w : ws) total += kernels::weight_bytes(*w);
  // Reads from disk run ahead of the packing (up to 64 MB of the next weights asked for).
  size_t next = 0;
  constexpr uint64_t kAhead = uint64_t(64) << 20;
  for (size_t i = 0; i < ws.size(); ++i) {
    Weight& w = *ws[i];
    for (; next < ws.size() && ahead < done + kAhead; ++next) {
      const Weight& u = *ws[next];
      const uint64_t scale_bytes = u.scales ? uint64_t(u.rows * (u.cols / u.group)) * 4 : 0;
      prefetch_pages(static_cast<const uint8_t*>(u.data), size_t(kernels::weight_bytes(u) - scale_bytes));
      prefetch_pages(reinterpret_cast<const uint8_t*>(u.scales), size_t(scale_bytes));
      ahead += kernels::weight_bytes(u);
    }
    const uint64_t bytes = kernels::weight_bytes(w);
    const uint64_t scale_bytes = w.scales ? uint64_t(w.rows * (w.cols / w.group)) * 4 : 0;
    const Weight packed = kernels::pack_panels(w, static_cast<uint8_t*>(aligned(kernels::panel_bytes(w))),
                                               static_cast<float*>(aligned(kernels::panel_scales(w) * 4)));
    const uint8_t* data_end = static_cast<const uint8_t*>(w.data) + (bytes - scale_bytes);
    const uint8_t* scales_end = reinterpret_cast<const uint8_t*>(w.scales) + scale_bytes;
    if (auto it = by_end.find(data_end); it != by_end.end()) ck.release(*it->second, drop_cache);
    if (auto it = by_end.find(scales_end); w.scales && it != by_end.end()) ck.release(*it->second, drop_cache);
    w = packed;
    done += bytes;
    if (progress && (done - last >= kAhead || i + 1 == ws.size())) {
      progress(done, total);
      last = done;
    }
  }
}

Weights::Arena::~Arena() {
  if (base) munmap(base, size);
}

}  // namespace llada2
