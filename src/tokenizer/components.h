// The pipeline stages of a tokenizer.json (normalizer, pre-tokenizer, decoder, post-processor), each
// built from its JSON description and behaving like the Rust `tokenizers` component of that name.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace llada2::tok {

// A piece of the text on its way to the model. An added token matched earlier already has its id and
// skips the later stages.
struct Piece {
  std::string text;
  int64_t id = -1;
  bool at_start = false;  // begins at offset 0 of the original text (Metaspace's "first" scheme)
};
using Pieces = std::vector<Piece>;

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits/transforms the pieces that have no id yet.
  virtual void pre_tokenize(Pieces& pieces) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Resolves special-token strings of a post-processor to ids.
class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<int64_t>& ids, bool add_special_tokens) const = 0;
};

// Each returns nullptr for a JSON null and throws InputError naming an unsupported type.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j);
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j);
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j);

// GPT-2's byte -> printable character map used by the ByteLevel components (UTF-8 of each char).
const std::string& byte_level_char(unsigned char b);

}  // namespace llada2::tok
