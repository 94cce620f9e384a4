// tokenizer.json loading and the encode/decode pipeline of the Rust `tokenizers` library:
// added tokens are split off first (those with normalized=false on the raw text, the others after the
// normalizer), then the pre-tokenizer, the BPE model and the post-processor run on what is left.
#include "llada2/tokenizer.h"

#include <nlohmann/json.hpp>

#include <utf8proc.h>
#include <algorithm>
#include <array>
#include <filesystem>
#include <unordered_map>

#include "core/read_file.h"
#include "core/utf8.h"
#include "llada2/chat_template.h"
#include "llada2/error.h"
#include "llada2/json.h"
#include "tokenizer/bpe.h"
#include "tokenizer/components.h"
#include "tokenizer/unicode.h"

namespace llada2 {

using json = nlohmann::json;
using namespace tok;

namespace {

struct AddedToken {
  std::string content;
  std::string as_token;  // what id_to_token/decode give: tokenizers keeps normalized tokens normalized
  uint32_t id = 0;
  bool special = false, single_word = false, lstrip = false, rstrip = false, normalized = true;
};

// Leftmost-longest matching of the added tokens' strings (what tokenizers' Aho-Corasick does).
class TokenTrie {
 public:
  void add(std::string_view s, int token) {
    if (s.empty()) return;
    int node = 0;
    for (unsigned char c : s) {
      uint64_t key = (uint64_t(node) << 8) | c;
      auto it = edges_.find(key);
      if (it == edges_.end()) {
        terminal_.push_back(-1);
        it = edges_.emplace(key, int(terminal_.size() - 1)).first;
      }
      node = it->second;
    }
    if (terminal_[size_t(node)] < 0) terminal_[size_t(node)] = token;
    first_[static_cast<unsigned char>(s[0])] = true;
    empty_ = false;
  }
  bool empty() const { return empty_; }
  // Longest token starting at s[i]: (token, end) or token -1.
  std::pair<int, size_t> longest_at(std::string_view s, size_t i) const {
    std::pair<int, size_t> best{-1, i};
    if (!first_[static_cast<unsigned char>(s[i])]) return best;
    int node = 0;
    for (size_t k = i; k < s.size(); ++k) {
      auto it = edges_.find((uint64_t(node) << 8) | static_cast<unsigned char>(s[k]));
      if (it == edges_.end()) break;
      node = it->second;
      if (terminal_[size_t(node)] >= 0) best = {terminal_[size_t(node)], k + 1};
    }
    return best;
  }

 private:
  std::unordered_map<uint64_t, int> edges_;
  std::vector<int> terminal_{-1};
  std::array<bool, 256> first_{};
  bool empty_ = true;
};

// Rust regex `\w` for one character: alphabetic, marks, decimal digits, connector punctuation, joiners.
bool is_word_char(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  if (c == 0x200C || c == 0x200D) return true;
  auto cat = utf8proc_category(int32_t(c));
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_ND) || cat == UTF8PROC_CATEGORY_NL ||
         cat == UTF8PROC_CATEGORY_PC;
}

char32_t last_cp(std::string_view s) {
  size_t k = s.size() - 1;
  while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
  size_t i = k;
  return next_cp(s, i);
}

std::optional<std::string> special_string(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content")) return it->at("content").get<std::string>();
  throw InputError(std::string(key) + " must be a string or {\"content\": ...}");
}

// Parses tokenizer.json into a DOM, except model.vocab and model.merges, which are streamed into
// vectors: building DOM nodes for 150k+ entries would dominate the load time.
class TokenizerJsonReader : public json::json_sax_t {
 public:
  std::vector<std::pair<std::string, int64_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  json root;
  bool saw_vocab = false;

  bool null() override { return value(json()); }
  bool boolean(bool v) override { return value(json(v)); }
  bool number_integer(number_integer_t v) override {
    if (mode_ == Mode::Vocab) return vocab_id(v);
    return value(json(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (mode_ == Mode::Vocab) return vocab_id(v > uint64_t(INT64_MAX) ? -1 : int64_t(v));
    return value(json(v));
  }
  bool number_float(number_float_t v, const string_t&) override {
    if (mode_ != Mode::None) throw InputError("model.vocab ids and merges must be integers and strings");
    return value(json(v));
  }
  bool string(string_t& v) override {
    if (mode_ == Mode::Merges) {
      if (merge_depth_ == 0) {  // legacy "a b"
        size_t sp = v.find(' ');
        if (sp == std::string::npos) throw InputError("BPE merge \"" + v + "\" is not two tokens separated by a space");
        merges.emplace_back(v.substr(0, sp), v.substr(sp + 1));
      } else if (merge_parts_ == 0) {
        merges.emplace_back(std::move(v), std::string());
        merge_parts_ = 1;
      } else if (merge_parts_ == 1) {
        merges.back().second = std::move(v);
        merge_parts_ = 2;
      } else {
        throw InputError("BPE merge must be \"a b\" or [a, b]");
      }
      return true;
    }
    if (mode_ == Mode::Vocab) throw InputError("model.vocab ids must be integers");
    return value(json(std::move(v)));
  }
  bool binary(binary_t&) override { throw InputError("unexpected binary value"); }
  bool start_object(std::size_t) override {
    if (mode_ == Mode::Merges) throw InputError("BPE merge must be \"a b\" or [a, b]");
    if (mode_ == Mode::Vocab) throw InputError("model.vocab ids must be integers");
    if (is_model_field("vocab")) {
      mode_ = Mode::Vocab;
      saw_vocab = true;
      return true;
    }
    return open(json::object());
  }
  bool key(string_t& k) override {
    if (mode_ == Mode::Vocab) {
      pending_key_ = std::move(k);
      return true;
    }
    key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    if (mode_ == Mode::Vocab) {
      mode_ = Mode::None;
      return true;
    }
    return close();
  }
  bool start_array(std::size_t) override {
    if (mode_ == Mode::Vocab) throw InputError("model.vocab ids must be integers");
    if (mode_ == Mode::Merges) {
      if (merge_depth_ != 0) throw InputError("BPE merge must be \"a b\" or [a, b]");
      merge_depth_ = 1;
      merge_parts_ = 0;
      return true;
    }
    if (is_model_field("merges")) {
      mode_ = Mode::Merges;
      merge_depth_ = 0;
      return true;
    }
    return open(json::array());
  }
  bool end_array() override {
    if (mode_ == Mode::Merges) {
      if (merge_depth_ == 1) {
        if (merge_parts_ != 2) throw InputError("BPE merge must be \"a b\" or [a, b]");
        merge_depth_ = 0;
      } else {
        mode_ = Mode::None;
      }
      return true;
    }
    return close();
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    throw InputError(std::string("malformed JSON: ") + e.what());
  }

 private:
  enum class Mode { None, Vocab, Merges };
  bool is_model_field(const char* name) const {
    return stack_.size() == 2 && stack_[1]->is_object() && key_ == name && model_key_depth_ok();
  }
  bool model_key_depth_ok() const { return stack_key_.size() == 2 && stack_key_[1] == "model"; }
  bool vocab_id(int64_t v) {
    vocab.emplace_back(std::move(pending_key_), v);
    return true;
  }
  bool value(json v) {
    if (mode_ != Mode::None) throw InputError("model.vocab ids and merges must be integers and strings");
    if (stack_.empty()) {
      root = std::move(v);
      return true;
    }
    json* top = stack_.back();
    if (top->is_object())
      (*top)[key_] = std::move(v);
    else
      top->push_back(std::move(v));
    return true;
  }
  bool open(json v) {
    json* slot;
    std::string k = key_;
    if (stack_.empty()) {
      root = std::move(v);
      slot = &root;
    } else if (stack_.back()->is_object()) {
      slot = &((*stack_.back())[key_] = std::move(v));
    } else {
      stack_.back()->push_back(std::move(v));
      slot = &stack_.back()->back();
    }
    stack_.push_back(slot);
    stack_key_.push_back(std::move(k));
    return true;
  }
  bool close() {
    stack_.pop_back();
    stack_key_.pop_back();
    return true;
  }

  Mode mode_ = Mode::None;
  int merge_depth_ = 0, merge_parts_ = 0;
  std::vector<json*> stack_;
  std::vector<std::string> stack_key_;  // the key each open container was stored under
  std::string key_, pending_key_;
};

}  // namespace

struct Tokenizer::Impl {
  std::unique_ptr<Bpe> model;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;

  std::vector<AddedToken> added;  // in file order
  std::unordered_map<std::string, uint32_t> added_by_content;
  std::unordered_map<uint32_t, size_t> added_by_id;  // -> index in `added`
  TokenTrie raw_trie, normalized_trie;

  std::optional<std::string> bos, eos, pad, mask, unk;
  std::string padding_side = "right";
  std::string chat_template;
  bool add_bos = false, add_eos = false;

  void load(const json& j, const std::vector<std::pair<std::string, int64_t>>& vocab,
            const std::vector<std::pair<std::string, std::string>>& merges);
  void add_tokens(const json& list);
  void split_added(const Piece& p, const TokenTrie& trie, Pieces& out) const;
  void encode(std::string_view text, bool add_special, std::vector<int64_t>& out) const;

  std::optional<int64_t> token_to_id(std::string_view t) const {
    if (auto it = added_by_content.find(std::string(t)); it != added_by_content.end()) return it->second;
    if (auto id = model->token_to_id(t)) return *id;
    return std::nullopt;
  }
  std::optional<std::string_view> id_to_token(int64_t id) const {
    if (id < 0 || id > int64_t(UINT32_MAX)) return std::nullopt;
    if (auto it = added_by_id.find(uint32_t(id)); it != added_by_id.end()) return added[it->second].as_token;
    return model->id_to_token(uint32_t(id));
  }
};

void Tokenizer::Impl::load(const json& j, const std::vector<std::pair<std::string, int64_t>>& vocab,
                           const std::vector<std::pair<std::string, std::string>>& merges) {
  if (!j.is_object()) throw InputError("not a JSON object");
  const json& m = j.at("model");
  if (!m.is_object()) throw InputError("\"model\" must be an object");
  std::string type = m.contains("type") ? m.at("type").get<std::string>() : (m.contains("merges") ? "BPE" : "");
  if (type != "BPE") throw InputError("unsupported model type \"" + type + "\" (only BPE is implemented)");
  model = std::make_unique<Bpe>(m, vocab, merges);
  // truncation and padding are ignored: callers of the engine pass whole prompts, as transformers
  // does when it calls the tokenizer without truncation/padding.
  normalizer = make_normalizer(j.value("normalizer", json()));
  pre_tokenizer = make_pre_tokenizer(j.value("pre_tokenizer", json()));
  post_processor = make_post_processor(j.value("post_processor", json()));
  decoder = make_decoder(j.value("decoder", json()));
  if (auto it = j.find("added_tokens"); it != j.end() && !it->is_null()) add_tokens(*it);
}

void Tokenizer::Impl::add_tokens(const json& list) {
  if (!list.is_array()) throw InputError("\"added_tokens\" must be a list");
  std::optional<uint32_t> max_added;
  for (const auto& t : list) {
    AddedToken a;
    a.content = t.at("content").get<std::string>();
    a.special = t.value("special", false);
    a.single_word = t.value("single_word", false);
    a.lstrip = t.value("lstrip", false);
    a.rstrip = t.value("rstrip", false);
    a.normalized = t.value("normalized", !a.special);
    if (a.content.empty() || added_by_content.count(a.content)) continue;
    // Ids as tokenizers assigns them: the vocab's id if the model has the token, else the next free id.
    if (auto id = model->token_to_id(a.content)) {
      a.id = *id;
    } else {
      uint32_t vs = uint32_t(model->vocab_size());
      a.id = !max_added ? vs : (*max_added >= vs || vs == 0) ? *max_added + 1 : vs;
    }
    max_added = std::max(max_added.value_or(0), a.id);
    added_by_content.emplace(a.content, a.id);
    added_by_id[a.id] = added.size();
    added.push_back(a);
  }
  // The tries: tokens tokenizers matches on the raw text, and normalized ones on the normalized text.
  for (size_t k = 0; k < added.size(); ++k) {
    auto& a = added[k];
    a.as_token = a.content;
    if (a.normalized && normalizer) normalizer->normalize(a.as_token);
    if (added_by_id[a.id] != k) continue;
    if (!a.normalized)
      raw_trie.add(a.content, int(k));
    else
      normalized_trie.add(a.as_token, int(k));
  }
}

// tokenizers' AddedVocabulary::find_matches + split_with_indices on one piece.
void Tokenizer::Impl::split_added(const Piece& p, const TokenTrie& trie, Pieces& out) const {
  const std::string& s = p.text;
  if (trie.empty()) {
    if (!s.empty()) out.push_back(p);
    return;
  }
  auto emit = [&](size_t b, size_t e, int64_t id) {
    if (b >= e) return;
    Piece q;
    q.text = s.substr(b, e - b);
    q.id = id;
    q.at_start = p.at_start && b == 0;
    out.push_back(std::move(q));
  };
  size_t start_offset = 0;
  for (size_t i = 0; i < s.size();) {
    auto [tok, end] = trie.longest_at(s, i);
    if (tok < 0) {
      ++i;
      continue;
    }
    const AddedToken& a = added[size_t(tok)];
    size_t start = i, stop = end;
    i = end;  // the matcher moves on past every match, used or not
    if (a.single_word) {
      bool start_space = start == 0 || !is_word_char(last_cp(std::string_view(s).substr(0, start)));
      size_t k = stop;
      bool stop_space = stop == s.size() || !is_word_char(next_cp(s, k));
      if (!start_space || !stop_space) continue;
    }
    if (a.lstrip) {
      size_t ns = start;
      while (ns > 0) {
        size_t k = ns - 1;
        while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
        size_t t = k;
        if (!is_white_space(next_cp(s, t))) break;
        ns = k;
      }
      start = std::max(ns, start_offset);
    }
    if (a.rstrip) {
      while (stop < s.size()) {
        size_t t = stop;
        if (!is_white_space(next_cp(s, t))) break;
        stop = t;
      }
    }
    if (start_offset < start) emit(start_offset, start, -1);
    emit(start, stop, a.id);
    start_offset = stop;
  }
  if (start_offset < s.size()) emit(start_offset, s.size(), -1);
}

void Tokenizer::Impl::encode(std::string_view text, bool add_special, std::vector<int64_t>& out) const {
  out.clear();
  Piece whole;
  whole.text = std::string(text);
  whole.at_start = true;
  Pieces raw;
  split_added(whole, raw_trie, raw);
  Pieces pieces;
  pieces.reserve(raw.size());
  for (auto& p : raw) {
    if (p.id >= 0) {
      pieces.push_back(std::move(p));
      continue;
    }
    if (normalizer) normalizer->normalize(p.text);
    split_added(p, normalized_trie, pieces);
  }
  if (pre_tokenizer) pre_tokenizer->pre_tokenize(pieces);
  for (const auto& p : pieces) {
    if (p.id >= 0)
      out.push_back(p.id);
    else
      model->tokenize(p.text, out);
  }
  if (post_processor) post_processor->process(out, add_special);
}

namespace {

std::shared_ptr<Tokenizer::Impl> load_tokenizer_json(const std::string& path) {
  std::string text = read_file(path);
  auto impl = std::make_shared<Tokenizer::Impl>();
  try {
    TokenizerJsonReader reader;
    sax_parse_json(text, &reader, path);
    if (!reader.saw_vocab) throw InputError("model has no \"vocab\" object");
    impl->load(reader.root, reader.vocab, reader.merges);
  } catch (const json::exception& e) {
    throw FileError(path, std::string("malformed tokenizer.json: ") + e.what());
  } catch (const FileError&) {
    throw;
  } catch (const InputError& e) {
    throw FileError(path, e.what());
  }
  return impl;
}

}  // namespace

Tokenizer Tokenizer::from_file(const std::string& path) { return Tokenizer(load_tokenizer_json(path)); }

Tokenizer Tokenizer::from_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  fs::path d(dir);
  auto impl = load_tokenizer_json((d / "tokenizer.json").string());
  fs::path cfg_path = d / "tokenizer_config.json";
  if (fs::exists(cfg_path)) {
    std::string p = cfg_path.string();
    try {
      json cfg = parse_json(read_file(p), p);
      if (!cfg.is_object()) throw InputError("not a JSON object");
      impl->bos = special_string(cfg, "bos_token");
      impl->eos = special_string(cfg, "eos_token");
      impl->pad = special_string(cfg, "pad_token");
      impl->mask = special_string(cfg, "mask_token");
      impl->unk = special_string(cfg, "unk_token");
      if (auto it = cfg.find("padding_side"); it != cfg.end() && !it->is_null()) {
        impl->padding_side = it->get<std::string>();
        if (impl->padding_side != "left" && impl->padding_side != "right")
          throw InputError("padding_side must be \"left\" or \"right\"");
      }
      impl->add_bos = cfg.value("add_bos_token", false);
      impl->add_eos = cfg.value("add_eos_token", false);
    } catch (const json::exception& e) {
      throw FileError(p, e.what());
    } catch (const FileError&) {
      throw;
    } catch (const InputError& e) {
      throw FileError(p, e.what());
    }
  }
  impl->chat_template = find_chat_template(dir);
  return Tokenizer(std::move(impl));
}

std::vector<int64_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  if (!utf8_valid(text)) throw InputError("text to encode is not valid UTF-8");
  std::vector<int64_t> ids;
  impl_->encode(text, add_special_tokens, ids);
  return ids;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) {
    if (id < 0 || id > int64_t(UINT32_MAX))
      throw InputError("cannot decode token id " + std::to_string(id) + ": ids are in [0, 2^32)");
    auto t = impl_->id_to_token(id);
    if (!t) continue;
    if (skip_special_tokens) {
      auto it = impl_->added_by_id.find(uint32_t(id));
      if (it != impl_->added_by_id.end() && impl_->added[it->second].special) continue;
    }
    tokens.emplace_back(*t);
  }
  if (!impl_->decoder) {
    std::string out;
    for (size_t k = 0; k < tokens.size(); ++k) {
      if (k) out += ' ';
      out += tokens[k];
    }
    return out;
  }
  impl_->decoder->decode_chain(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

std::optional<int64_t> Tokenizer::token_to_id(const std::string& token) const { return impl_->token_to_id(token); }

std::optional<std::string> Tokenizer::id_to_token(int64_t id) const {
  auto t = impl_->id_to_token(id);
  if (!t) return std::nullopt;
  return std::string(*t);
}

int64_t Tokenizer::vocab_size() const {
  int64_t n = int64_t(impl_->model->vocab_size());
  for (const auto& [content, id] : impl_->added_by_content)
    if (!impl_->model->token_to_id(content)) ++n;
  return n;
}

const std::optional<std::string>& Tokenizer::bos_token() const { return impl_->bos; }
const std::optional<std::string>& Tokenizer::eos_token() const { return impl_->eos; }
const std::optional<std::string>& Tokenizer::pad_token() const { return impl_->pad; }
const std::optional<std::string>& Tokenizer::mask_token() const { return impl_->mask; }
const std::optional<std::string>& Tokenizer::unk_token() const { return impl_->unk; }

namespace {
std::optional<int64_t> resolve(const Tokenizer& t, const std::optional<std::string>& s) {
  if (!s) return std::nullopt;
  return t.token_to_id(*s);
}
}  // namespace

std::optional<int64_t> Tokenizer::bos_token_id() const { return resolve(*this, impl_->bos); }
std::optional<int64_t> Tokenizer::eos_token_id() const { return resolve(*this, impl_->eos); }
std::optional<int64_t> Tokenizer::pad_token_id() const { return resolve(*this, impl_->pad); }
std::optional<int64_t> Tokenizer::mask_token_id() const { return resolve(*this, impl_->mask); }
std::optional<int64_t> Tokenizer::unk_token_id() const { return resolve(*this, impl_->unk); }
const std::string& Tokenizer::padding_side() const { return impl_->padding_side; }
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }
bool Tokenizer::add_bos_token() const { return impl_->add_bos; }
bool Tokenizer::add_eos_token() const { return impl_->add_eos; }

}  // namespace llada2
