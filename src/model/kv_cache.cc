#include "llada2/model.h"

namespace llada2 {

void KvCache::reset(int64_t b, int64_t cap, int64_t layers, int64_t r, DType t) {
  batch = b;
  capacity = cap;
  length = 0;
  row = r;
  dtype = t;
  const int64_t es = int64_t(dtype_size(t)), lines = (cap * es + 63) / 64;
  key_stride = (lines | 1) * 64 / es;
  k.assign(size_t(layers), std::vector<uint8_t>(size_t(b * r * key_stride * es)));
  v.assign(size_t(layers), std::vector<uint8_t>(size_t(b * cap * r * es)));
}

size_t KvCache::bytes() const {
  size_t s = 0;
  for (size_t l = 0; l < k.size(); ++l) s += k[l].size() + v[l].size();
  return s;
}

KvCache Model::make_cache(int64_t batch, int64_t capacity) const {
  KvCache c;
  c.reset(batch, capacity, config().num_hidden_layers, config().num_key_value_heads * config().head_dim, kv_dtype());
  return c;
}

}  // namespace llada2
