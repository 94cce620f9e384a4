#include "tokenizer/bpe.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <algorithm>

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

Bpe::Bpe(const json& m) {
  if (auto it = m.find("dropout"); it != m.end() && !it->is_null() && it->get<double>() != 0.0)
    throw InputError("BPE dropout is not supported (it makes encoding random)");
  unk_token_ = opt_string(m, "unk_token");
  prefix_ = opt_string(m, "continuing_subword_prefix");
  suffix_ = opt_string(m, "end_of_word_suffix");
  byte_fallback_ = opt_bool(m, "byte_fallback");
  fuse_unk_ = opt_bool(m, "fuse_unk");
  ignore_merges_ = opt_bool(m, "ignore_merges");

  const json& v = m.at("vocab");
  if (!v.is_object()) throw InputError("BPE vocab must be an object");
  vocab_.reserve(v.size());
  uint32_t max_id = 0;
  for (auto it = v.begin(); it != v.end(); ++it) {
    int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= (int64_t(1) << 26)) throw InputError("BPE vocab id out of range: " + std::to_string(id));
    vocab_.insert_or_assign(it.key(), uint32_t(id));
    max_id = std::max(max_id, uint32_t(id));
  }
  id_to_token_.assign(vocab_.empty() ? 0 : size_t(max_id) + 1, nullptr);
  for (const auto& [tok, id] : vocab_) id_to_token_[id] = &tok;

  size_t prefix_len = prefix_ ? prefix_->size() : 0;
  const json& merges = m.at("merges");
  if (!merges.is_array()) throw InputError("BPE merges must be a list");
  merges_.reserve(merges.size());
  std::string a, b;
  uint32_t rank = 0;
  for (const auto& mj : merges) {
    if (mj.is_string()) {
      const auto& s = mj.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos) throw InputError("BPE merge \"" + s + "\" is not two tokens separated by a space");
      a.assign(s, 0, sp);
      b.assign(s, sp + 1);
    } else if (mj.is_array() && mj.size() == 2) {
      a = mj[0].get<std::string>();
      b = mj[1].get<std::string>();
    } else {
      throw InputError("BPE merge must be \"a b\" or [a, b]");
    }
    auto ia = vocab_.find(a), ib = vocab_.find(b);
    if (ia == vocab_.end()) throw InputError("BPE merge token not in the vocab: " + a);
    if (ib == vocab_.end()) throw InputError("BPE merge token not in the vocab: " + b);
    if (b.size() < prefix_len) throw InputError("BPE merge token shorter than continuing_subword_prefix: " + b);
    std::string merged = a + b.substr(prefix_len);
    auto im = vocab_.find(merged);
    if (im == vocab_.end()) throw InputError("BPE merge result not in the vocab: " + merged);
    merges_.insert_or_assign(pair_key(ia->second, ib->second), Merge{rank, im->second});
    ++rank;
  }
  if (unk_token_ && !vocab_.count(*unk_token_)) throw InputError("BPE unk_token not in the vocab: " + *unk_token_);
  if (byte_fallback_) {
    has_byte_ids_ = true;
    for (int i = 0; i < 256; ++i) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", i);
      auto it = vocab_.find(std::string_view(name));
      if (it == vocab_.end()) {
        has_byte_ids_ = false;
        break;
      }
      byte_ids_[i] = it->second;
    }
  }
}

std::optional<uint32_t> Bpe::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* Bpe::id_to_token(uint32_t id) const { return id < id_to_token_.size() ? id_to_token_[id] : nullptr; }

void Bpe::tokenize(std::string_view w, std::vector<int64_t>& out) const {
  if (w.empty()) return;
  if (ignore_merges_) {
    if (auto it = vocab_.find(w); it != vocab_.end()) {
      out.push_back(it->second);
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
  std::optional<std::pair<uint32_t, uint32_t>> unk;  // (id, byte length) waiting to be emitted
  thread_local std::string s;
  for (size_t i = 0; i < w.size();) {
    size_t b = i;
    i += utf8_seq_len(static_cast<unsigned char>(w[i]));
    if (i > w.size()) i = w.size();
    uint32_t byte_len = uint32_t(i - b);
    std::string_view ch = w.substr(b, i - b);
    bool first = b == 0, last = i == w.size();
    std::string_view key = ch;
    if ((!first && prefix_ && !prefix_->empty()) || (last && suffix_ && !suffix_->empty())) {
      s.clear();
      if (!first && prefix_) s += *prefix_;
      s += ch;
      if (last && suffix_) s += *suffix_;
      key = s;
    }
    if (auto it = vocab_.find(key); it != vocab_.end()) {
      if (unk) {
        add(unk->first, unk->second);
        unk.reset();
      }
      add(it->second, byte_len);
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
        auto it = vocab_.find(std::string_view(name));
        if (it == vocab_.end()) {
          all = false;
          break;
        }
        ids.push_back(it->second);
      }
      if (all) {
        // Unlike a known character, byte tokens do not flush a pending unknown (as in tokenizers).
        for (uint32_t id : ids) add(id, 1);
        continue;
      }
    }
    if (unk_token_) {
      uint32_t unk_id = vocab_.find(*unk_token_)->second;
      if (unk && fuse_unk_) {
        unk->second += byte_len;
      } else {
        if (unk) add(unk->first, unk->second);
        unk = std::make_pair(unk_id, byte_len);
      }
    }
  }
  if (unk) add(unk->first, unk->second);
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
    auto it = merges_.find(pair_key(syms[k].id, syms[k + 1].id));
    if (it != merges_.end()) heap.push_back({it->second.rank, int(k), it->second.new_id});
  }
  std::make_heap(heap.begin(), heap.end());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    Cand top = heap.back();
    heap.pop_back();
    size_t pos = size_t(top.pos);
    if (syms[pos].len == 0 || syms[pos].next == -1) continue;
    size_t rpos = size_t(syms[pos].next);
    auto it = merges_.find(pair_key(syms[pos].id, syms[rpos].id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;  // stale entry
    syms[pos].id = top.new_id;
    syms[pos].len += syms[rpos].len;
    syms[pos].next = syms[rpos].next;
    syms[rpos].len = 0;
    if (syms[pos].next != -1) syms[size_t(syms[pos].next)].prev = int(pos);
    if (syms[pos].prev >= 0) {
      auto p = merges_.find(pair_key(syms[size_t(syms[pos].prev)].id, syms[pos].id));
      if (p != merges_.end()) push({p->second.rank, syms[pos].prev, p->second.new_id});
    }
    if (syms[pos].next != -1) {
      auto n = merges_.find(pair_key(syms[pos].id, syms[size_t(syms[pos].next)].id));
      if (n != merges_.end()) push({n->second.rank, int(pos), n->second.new_id});
    }
  }
  for (const auto& sym : syms)
    if (sym.len != 0) out.push_back(sym.id);
}

}  // namespace llada2::tok
