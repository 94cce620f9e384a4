#include "llada2/model.h"

namespace llada2 {

void KvCache::reset(int64_t b, int64_t cap, int64_t layers, int64_t r) {
  batch = b;
  capacity = cap;
  length = 0;
  row = r;
  k.assign(size_t(layers), std::vector<float>(size_t(b * cap * r)));
  v.assign(size_t(layers), std::vector<float>(size_t(b * cap * r)));
}

size_t KvCache::bytes() const {
  size_t s = 0;
  for (size_t l = 0; l < k.size(); ++l) s += (k[l].size() + v[l].size()) * sizeof(float);
  return s;
}

KvCache Model::make_cache(int64_t batch, int64_t capacity) const {
  KvCache c;
  c.reset(batch, capacity, config().num_hidden_layers, config().num_key_value_heads * config().head_dim);
  return c;
}

}  // namespace llada2
