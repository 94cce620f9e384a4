// Exact reuse of a conversation's keys and values across calls (block_causal attention with the KV
// cache). In block_causal attention the keys and values of a position depend only on the tokens of
// its own block and of the blocks before it (positions are absolute, blocks aligned to position 0),
// so a new prompt that starts with the same tokens as an earlier call's canvas, over whole blocks,
// may start from that call's final keys and values instead of computing them again: the results are
// the same, token for token. A CachedPrefix is one row's final keys and values; PrefixCache keeps
// several, least recently used first out, within a memory cap (the server's cache of conversations).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <vector>

#include "llada2/types.h"

namespace llada2 {

class Model;

// The final keys and values of one row's positions [0, length()), with the tokens they were computed
// from and what else they depend on: the model, the block length, the arithmetic mode.
struct CachedPrefix {
  const Model* model = nullptr;
  int64_t block_length = 0;
  uint32_t arithmetic = 0;      // arithmetic_mode() when computed
  std::vector<int64_t> tokens;  // positions [0, length), a whole number of blocks
  int64_t heads = 0;            // num_key_value_heads
  int64_t head_dim = 0;
  DType dtype = DType::F32;  // of k and v (KvCache::dtype)
  // Per layer, elements of dtype: k [heads, head_dim, length] (transposed, as in KvCache), v [heads, length,
  // head_dim].
  std::vector<std::vector<uint8_t>> k, v;

  int64_t length() const { return int64_t(tokens.size()); }
  size_t bytes() const;
};

// The runtime's arithmetic mode (SPEC A6: exact, bf16 or int8 activations) as a number: keys and
// values computed in one mode are reused only in the same mode.
uint32_t arithmetic_mode();

// How many leading positions of `prompt` (length P) may come from `c` for a call with block length
// `block_length` on `model` in the current arithmetic mode: the common prefix of the two token
// sequences, rounded down to whole blocks, and never the block that holds the prompt's last token
// (that block is refined, not cached). 0 when anything else differs.
int64_t reusable_length(const CachedPrefix& c, const Model& model, int64_t block_length, const int64_t* prompt,
                        int64_t P);

// What a PrefixCache did so far (the server's /health).
struct PrefixCacheStats {
  int64_t entries = 0;
  size_t bytes = 0;
  size_t max_bytes = 0;
  int64_t lookups = 0;        // rows looked up
  int64_t hits = 0;           // rows that reused a cached prefix
  int64_t reused_tokens = 0;  // positions not computed again, summed over the hits
  int64_t evictions = 0;
};

// A bounded store of CachedPrefix entries: the least recently used go first when an insert would
// pass `max_bytes` or `max_entries`. Thread-safe. Entries are shared and never changed, so a caller
// may hold one while it is evicted.
class PrefixCache {
 public:
  explicit PrefixCache(size_t max_bytes, size_t max_entries = 256);

  // The entry whose reusable part for this prompt is longest (at least one block), or null; it
  // becomes the most recently used.
  std::shared_ptr<const CachedPrefix> lookup(const Model& model, int64_t block_length, const int64_t* prompt,
                                             int64_t P);
  // Counts what a call made of its lookups: rows looked up, rows that started from a cached prefix,
  // positions they did not compute again.
  void count(int64_t rows, int64_t hits, int64_t reused_tokens);
  // Adds an entry (ignored when larger than the whole cap). An entry whose tokens start another one
  // replaces it: the longer conversation serves every prompt the shorter one served.
  void insert(std::shared_ptr<const CachedPrefix> entry);

  PrefixCacheStats stats() const;
  size_t max_bytes() const { return max_bytes_; }

 private:
  mutable std::mutex mu_;
  const size_t max_bytes_, max_entries_;
  std::list<std::shared_ptr<const CachedPrefix>> lru_;  // most recently used first
  size_t bytes_ = 0;
  PrefixCacheStats stats_;
};

}  // namespace llada2
