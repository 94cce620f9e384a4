#include "llada2/prefix_cache.h"

#include <algorithm>

#include "llada2/runtime.h"

namespace llada2 {

size_t CachedPrefix::bytes() const {
  size_t s = tokens.size() * sizeof(int64_t);
  for (size_t l = 0; l < k.size(); ++l) s += k[l].size() + v[l].size();
  return s;
}

uint32_t arithmetic_mode() { return (runtime::bf16_activations() ? 1u : 0u) | (runtime::int8_activations() ? 2u : 0u); }

int64_t reusable_length(const CachedPrefix& c, const Model& model, int64_t block_length, const int64_t* prompt,
                        int64_t P) {
  if (c.model != &model || c.block_length != block_length || block_length <= 0 || c.arithmetic != arithmetic_mode())
    return 0;
  const int64_t limit = std::min(c.length(), (P / block_length) * block_length);
  int64_t same = 0;
  while (same < limit && c.tokens[size_t(same)] == prompt[same]) ++same;
  return (same / block_length) * block_length;
}

PrefixCache::PrefixCache(size_t max_bytes, size_t max_entries) : max_bytes_(max_bytes), max_entries_(max_entries) {
  stats_.max_bytes = max_bytes;
}

std::shared_ptr<const CachedPrefix> PrefixCache::lookup(const Model& model, int64_t block_length, const int64_t* prompt,
                                                        int64_t P) {
  std::lock_guard<std::mutex> lock(mu_);
  auto best = lru_.end();
  int64_t best_len = 0;
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    const int64_t n = reusable_length(**it, model, block_length, prompt, P);
    if (n > best_len) best = it, best_len = n;
  }
  if (best == lru_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, best);
  return lru_.front();
}

void PrefixCache::count(int64_t rows, int64_t hits, int64_t reused_tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.lookups += rows;
  stats_.hits += hits;
  stats_.reused_tokens += reused_tokens;
}

void PrefixCache::insert(std::shared_ptr<const CachedPrefix> entry) {
  if (!entry || entry->length() == 0) return;
  const size_t size = entry->bytes();
  if (size > max_bytes_ || max_entries_ == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  // Entries this one extends (or repeats) serve nothing it does not serve.
  for (auto it = lru_.begin(); it != lru_.end();) {
    const CachedPrefix& e = **it;
    const bool covered = e.model == entry->model && e.block_length == entry->block_length &&
                         e.arithmetic == entry->arithmetic && e.length() <= entry->length() &&
                         std::equal(e.tokens.begin(), e.tokens.end(), entry->tokens.begin());
    if (covered) {
      bytes_ -= e.bytes();
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
  while (!lru_.empty() && (bytes_ + size > max_bytes_ || lru_.size() >= max_entries_)) {
    bytes_ -= lru_.back()->bytes();
    lru_.pop_back();
    ++stats_.evictions;
  }
  bytes_ += size;
  lru_.push_front(std::move(entry));
}

PrefixCacheStats PrefixCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  PrefixCacheStats s = stats_;
  s.entries = int64_t(lru_.size());
  s.bytes = bytes_;
  return s;
}

}  // namespace llada2
