// Hugging Face `tokenizer.json` tokenizers (byte-level / SentencePiece-style BPE), reproducing the
// Rust `tokenizers` library's encode and decode exactly.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace llada2 {

class Tokenizer {
 public:
  // Loads a tokenizer.json. Throws FileError for unreadable/malformed files and for components
  // this implementation does not support (the message names the component).
  static Tokenizer from_file(const std::string& tokenizer_json_path);
  // Loads DIR/tokenizer.json and, if present, DIR/tokenizer_config.json (special token strings,
  // padding_side, chat_template, add_bos_token/add_eos_token) and DIR/chat_template.jinja.
  static Tokenizer from_dir(const std::string& dir);

  // Text must be valid UTF-8 (InputError otherwise).
  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Ids that no token has (e.g. the padding rows of a model's embedding past the tokenizer's
  // vocabulary) are skipped, as `tokenizers` does; a negative id or one past 2^32 - 1 (which
  // `tokenizers` cannot take) throws InputError.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;

  std::optional<int64_t> token_to_id(const std::string& token) const;
  std::optional<std::string> id_to_token(int64_t id) const;
  // Number of distinct tokens, added tokens included.
  int64_t vocab_size() const;

  // From tokenizer_config.json (empty when absent).
  const std::optional<std::string>& bos_token() const;
  const std::optional<std::string>& eos_token() const;
  const std::optional<std::string>& pad_token() const;
  const std::optional<std::string>& mask_token() const;
  const std::optional<std::string>& unk_token() const;
  std::optional<int64_t> bos_token_id() const;
  std::optional<int64_t> eos_token_id() const;
  std::optional<int64_t> pad_token_id() const;
  std::optional<int64_t> mask_token_id() const;
  std::optional<int64_t> unk_token_id() const;
  const std::string& padding_side() const;   // "right" unless the config says otherwise
  const std::string& chat_template() const;  // "" when none
  bool add_bos_token() const;                // tokenizer_config.json's flags (false when absent)
  bool add_eos_token() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace llada2
