#include "tokenizer/bpe.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <unordered_map>

#include "llada2/error.h"
#include "tokenizer/unicode.h"

namespace llada2::tok {

using json = nlohmann::json;

namespace {

std::optional<std::string> opt_string(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  return it->get<std::string>();
}

bool opt_bool(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && !it->is_null() && it->get<bool>();
}

}  // namespace

void StrMap::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  if (cap > slots_.size()) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    for (const auto& s : old) {
      if (!s.hash) continue;
      size_t i = s.hash & mask_;
      while (slots_[i].hash) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }
}

void StrMap::grow() { reserve(slots_.empty() ? 8 : slots_.size()); }

void StrMap::insert_or_assign(std::string_view key, uint32_t value) {
  if ((size_ + 1) * 2 > slots_.size()) grow();
  uint64_t h = hash(key);
  for (size_t i = h & mask_;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.hash == 0) {
      s.hash = h;
      s.off = uint32_t(arena_.size());
      s.len = uint32_t(key.size());
      s.value = value;
      arena_.append(key);
      ++size_;
      return;
    }
    if (s.hash == h && s.len == key.size() && arena_.compare(s.off, s.len, key) == 0) {
      s.value = value;
      return;
    }
  }
}

Bpe::Bpe(const json& m, const std::vector<std::pair<std::string, int64_t>>& vocab,
         const std::vector<std::pair<std::string, std::string>>& merges) {
  if (auto it = m.find("dropout"); it != m.end() && !it->is_null() && it->get<double>() != 0.0)
    throw InputError("BPE dropout is not supported (it makes encoding random)");
  unk_token_ = opt_string(m, "unk_token");
  prefix_ = opt_string(m, "continuing_subword_prefix");
  suffix_ = opt_string(m, "end_of_word_suffix");
  byte_fallback_ = opt_bool(m, "byte_fallback");
  fuse_unk_ = opt_bool(m, "fuse_unk");
  ignore_merges_ = opt_bool(m, "ignore_merges");

  vocab_.reserve(vocab.size());
  uint32_t max_id = 0;
  size_t total = 0;
  for (const auto& [tok, id] : vocab) {
    if (id < 0 || id >= (int64_t(1) << 24)) throw InputError("BPE vocab id out of range: " + std::to_string(id));
    if (tok.size() >= (size_t(1) << 30)) throw InputError("BPE vocab token too long");
    vocab_.insert_or_assign(tok, uint32_t(id));
    max_id = std::max(max_id, uint32_t(id));
    total += tok.size();
  }
  token_arena_.reserve(total);
  id_to_token_.assign(vocab_.size() == 0 ? 0 : size_t(max_id) + 1, {0, 0});
  vocab_.for_each([&](std::string_view tok, uint32_t id) {
    id_to_token_[id] = {uint32_t(token_arena_.size()), uint32_t(tok.size() + 1)};
    token_arena_.append(tok);
  });

  size_t prefix_len = prefix_ ? prefix_->size() : 0;
  merges_.reserve(merges.size());
  std::string merged;
  uint32_t rank = 0;
  for (const auto& [first, second] : merges) {
    std::string_view a = first, b = second;
    const uint32_t* ia = vocab_.find(a);
    const uint32_t* ib = vocab_.find(b);
    if (!ia) throw InputError("BPE merge token not in the vocab: " + std::string(a));
    if (!ib) throw InputError("BPE merge token not in the vocab: " + std::string(b));
    if (b.size() < prefix_len)
      throw InputError("BPE merge token shorter than continuing_subword_prefix: " + std::string(b));
    merged.assign(a);
    merged.append(b.substr(prefix_len));
    const uint32_t* im = vocab_.find(merged);
    if (!im) throw InputError("BPE merge result not in the vocab: " + merged);
    merges_.insert_or_assign(pair_key(*ia, *ib), Merge{rank, *im});
    ++rank;
  }
  if (unk_token_ && !vocab_.find(*unk_token_)) throw InputError("BPE unk_token not in the vocab: " + *unk_token_);
  static std::atomic<uint64_t> instances{0};
  instance_ = ++instances;
  char_ids_.assign(0x10000, -1);
  vocab_.for_each([&](std::string_view tok, uint32_t id) {
    if (tok.empty() || tok.size() > 3) return;
    size_t i = 0;
    char32_t cp = next_cp(tok, i);
    if (i == tok.size() && cp < 0x10000) char_ids_[cp] = int32_t(id);
  });
  if (byte_fallback_) {
    has_byte_ids_ = true;
    for (int i = 0; i < 256; ++i) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", i);
      const uint32_t* id = vocab_.find(std::string_view(name));
      if (!id) {
        has_byte_ids_ = false;
        break;
      }
      byte_ids_[i] = *id;
    }
  }
}

std::optional<uint32_t> Bpe::token_to_id(std::string_view token) const {
  const uint32_t* id = vocab_.find(token);
  if (!id) return std::nullopt;
  return *id;
}

std::optional<std::string_view> Bpe::id_to_token(uint32_t id) const {
  if (id >= id_to_token_.size() || id_to_token_[id].second == 0) return std::nullopt;
  return std::string_view(token_arena_).substr(id_to_token_[id].first, id_to_token_[id].second - 1);
}

void Bpe::tokenize(std::string_view w, std::vector<int64_t>& out) const {
  // Words repeat, so each thread keeps the ids of recent short words (tokenizers caches them too).
  struct Cache {
    uint64_t owner = 0;
    std::unordered_map<std::string, std::vector<uint32_t>> words;
  };
  thread_local Cache cache;
  if (w.size() > 64) return tokenize_uncached(w, out);
  if (cache.owner != instance_) {
    cache.words.clear();
    cache.owner = instance_;
  }
  thread_local std::string key;
  key.assign(w);
  if (auto it = cache.words.find(key); it != cache.words.end()) {
    out.insert(out.end(), it->second.begin(), it->second.end());
    return;
  }
  size_t before = out.size();
  tokenize_uncached(w, out);
  if (cache.words.size() >= 65536) cache.words.clear();
  cache.words.emplace(key, std::vector<uint32_t>(out.begin() + long(before), out.end()));
}

void Bpe::tokenize_uncached(std::string_view w, std::vector<int64_t>& out) const {
  if (w.empty()) return;
  if (ignore_merges_) {
    if (const uint32_t* id = vocab_.find(w)) {
      out.push_back(*id);
      return;
    }
  }
  struct Sym {
    uint32_t id;
    int prev, next;
    uint32_t len;  // 0 once merged into its left neighbour
  };
  thread_local std::vector<Sym> syms;
  syms.clear();
  auto add = [&](uint32_t id, uint32_t len) {
    int n = int(syms.size());
    syms.push_back({id, n - 1, n + 1, len});
  };
  // An unknown-token symbol waiting to be emitted (id, byte length). Plain fields rather than a
  // std::optional<std::pair>: GCC 12 wrongly warns that an engaged optional's pair may be uninitialized.
  bool unk = false;
  uint32_t unk_id = 0, unk_len = 0;
  auto flush_unk = [&] {
    if (unk) add(unk_id, unk_len);
    unk = false;
  };
  thread_local std::string s;
  for (size_t i = 0; i < w.size();) {
    size_t b = i;
    i += utf8_seq_len(static_cast<unsigned char>(w[i]));
    if (i > w.size()) i = w.size();
    uint32_t byte_len = uint32_t(i - b);
    std::string_view ch = w.substr(b, i - b);
    bool first = b == 0, last = i == w.size();
    std::string_view key = ch;
    bool affixed = (!first && prefix_ && !prefix_->empty()) || (last && suffix_ && !suffix_->empty());
    if (!affixed && byte_len <= 3) {
      size_t k = 0;
      int32_t id = char_ids_[next_cp(ch, k)];
      if (id >= 0) {
        flush_unk();
        add(uint32_t(id), byte_len);
        continue;
      }
    }
    if (affixed) {
      s.clear();
      if (!first && prefix_) s += *prefix_;
      s += ch;
      if (last && suffix_) s += *suffix_;
      key = s;
    }
    if (const uint32_t* id = vocab_.find(key)) {
      flush_unk();
      add(*id, byte_len);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      thread_local std::vector<uint32_t> ids;
      ids.clear();
      for (char c : key) {
        if (has_byte_ids_) {
          ids.push_back(byte_ids_[static_cast<unsigned char>(c)]);
          continue;
        }
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", static_cast<unsigned char>(c));
        const uint32_t* id = vocab_.find(std::string_view(name));
        if (!id) {
          all = false;
          break;
        }
        ids.push_back(*id);
      }
      if (all) {
        // Unlike a known character, byte tokens do not flush a pending unknown (as in tokenizers).
        for (uint32_t id : ids) add(id, 1);
        continue;
      }
    }
    if (unk_token_) {
      if (unk && fuse_unk_) {
        unk_len += byte_len;
      } else {
        flush_unk();
        unk = true;
        unk_id = *vocab_.find(*unk_token_);
        unk_len = byte_len;
      }
    }
  }
  flush_unk();
  if (syms.empty()) return;
  syms.back().next = -1;

  struct Cand {
    uint32_t rank;
    int pos;
    uint32_t new_id;
    bool operator<(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<Cand> heap;
  heap.clear();
  auto push = [&](Cand c) {
    heap.push_back(c);
    std::push_heap(heap.begin(), heap.end());
  };
  for (size_t k = 0; k + 1 < syms.size(); ++k) {
    if (const Merge* mg = merges_.find(pair_key(syms[k].id, syms[k + 1].id)))
      heap.push_back({mg->rank, int(k), mg->new_id});
  }
  std::make_heap(heap.begin(), heap.end());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    Cand top = heap.back();
    heap.pop_back();
    size_t pos = size_t(top.pos);
    if (syms[pos].len == 0 || syms[pos].next == -1) continue;
    size_t rpos = size_t(syms[pos].next);
    const Merge* mg = merges_.find(pair_key(syms[pos].id, syms[rpos].id));
    if (!mg || mg->new_id != top.new_id) continue;  // stale entry
    syms[pos].id = top.new_id;
    syms[pos].len += syms[rpos].len;
    syms[pos].next = syms[rpos].next;
    syms[rpos].len = 0;
    if (syms[pos].next != -1) syms[size_t(syms[pos].next)].prev = int(pos);
    if (syms[pos].prev >= 0) {
      if (const Merge* p = merges_.find(pair_key(syms[size_t(syms[pos].prev)].id, syms[pos].id)))
        push({p->rank, syms[pos].prev, p->new_id});
    }
    if (syms[pos].next != -1) {
      if (const Merge* n = merges_.find(pair_key(syms[pos].id, syms[size_t(syms[pos].next)].id)))
        push({n->rank, int(pos), n->new_id});
    }
  }
  for (const auto& sym : syms)
    if (sym.len != 0) out.push_back(sym.id);
}

}  // namespace llada2::tok
