// The BPE model of tokenizer.json ("type": "BPE"), with the options of the Rust `tokenizers` BPE:
// byte_fallback, unk_token/fuse_unk, continuing_subword_prefix, end_of_word_suffix, ignore_merges.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace llada2::tok {

// String -> id map with open addressing; keys live in one buffer. Loading 150k-token vocabularies and
// looking up pieces while encoding are both hot.
class StrMap {
 public:
  void reserve(size_t n);
  void insert_or_assign(std::string_view key, uint32_t value);
  const uint32_t* find(std::string_view key) const {
    if (slots_.empty()) return nullptr;
    uint64_t h = hash(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.hash == 0) return nullptr;
      if (s.hash == h && s.len == key.size() && arena_.compare(s.off, s.len, key) == 0) return &s.value;
    }
  }
  size_t size() const { return size_; }
  template <class F>
  void for_each(F&& f) const {
    for (const auto& s : slots_)
      if (s.hash) f(std::string_view(arena_).substr(s.off, s.len), s.value);
  }

 private:
  struct Slot {
    uint64_t hash = 0;  // 0: empty
    uint32_t off = 0, len = 0, value = 0;
  };
  static uint64_t hash(std::string_view k) { return std::hash<std::string_view>{}(k) | 1; }
  void grow();
  std::vector<Slot> slots_;
  std::string arena_;
  size_t size_ = 0, mask_ = 0;
};

// (left id, right id) -> merge, open addressing.
template <class V>
class PairMap {
 public:
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    if (cap <= keys_.size()) return;
    std::vector<uint64_t> ok;
    std::vector<V> ov;
    ok.swap(keys_);
    ov.swap(vals_);
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, V{});
    mask_ = cap - 1;
    for (size_t i = 0; i < ok.size(); ++i)
      if (ok[i] != kEmpty) insert_or_assign(ok[i], ov[i]);
  }
  void insert_or_assign(uint64_t key, V v) {
    if ((size_ + 1) * 2 > keys_.size()) reserve(size_ + 1 < 8 ? 8 : size_ + 1);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == kEmpty) {
        keys_[i] = key;
        vals_[i] = v;
        ++size_;
        return;
      }
      if (keys_[i] == key) {
        vals_[i] = v;
        return;
      }
    }
  }
  const V* find(uint64_t key) const {
    if (keys_.empty()) return nullptr;
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return &vals_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);  // ids are below 2^24, so never a real key
  size_t slot(uint64_t k) const { return size_t((k * 0x9E3779B97F4A7C15ull) >> 20) & mask_; }
  std::vector<uint64_t> keys_;
  std::vector<V> vals_;
  size_t size_ = 0, mask_ = 0;
};

class Bpe {
 public:
  // Throws InputError for a malformed model (including merges naming tokens not in the vocab).
  // `options` is the model object; vocab and merges come separately (streamed from the file).
  Bpe(const nlohmann::json& options, const std::vector<std::pair<std::string, int64_t>>& vocab,
      const std::vector<std::pair<std::string, std::string>>& merges);

  // Appends the ids of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<int64_t>& out) const;
  // The same without the per-thread cache of recent words.
  void tokenize_uncached(std::string_view word, std::vector<int64_t>& out) const;

  std::optional<uint32_t> token_to_id(std::string_view token) const;
  std::optional<std::string_view> id_to_token(uint32_t id) const;
  size_t vocab_size() const { return vocab_.size(); }

 private:
  struct Merge {
    uint32_t rank = 0, new_id = 0;
  };
  static uint64_t pair_key(uint32_t a, uint32_t b) { return (uint64_t(a) << 32) | b; }

  StrMap vocab_;
  std::string token_arena_;
  std::vector<std::pair<uint32_t, uint32_t>> id_to_token_;  // (offset, length + 1) in token_arena_; 0 length: no token
  PairMap<Merge> merges_;
  std::optional<std::string> unk_token_;
  std::optional<std::string> prefix_, suffix_;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  uint32_t byte_ids_[256];
  bool has_byte_ids_ = false;
  // Id of each single-character token below U+10000 (-1: none): the first step of every word.
  std::vector<int32_t> char_ids_;
  uint64_t instance_ = 0;  // tells the per-thread word caches of different models apart
};

}  // namespace llada2::tok
