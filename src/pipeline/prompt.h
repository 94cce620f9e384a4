// Prompt preparation (SPEC B §2.3): text or chat messages -> prompt ids and their 2-D mask.
#pragma once

#include "llada2/chat_template.h"
#include "llada2/pipeline.h"
#include "llada2/tokenizer.h"

namespace llada2 {

struct PreparedPrompt {
  Matrix<int64_t> ids;   // [B, P]
  Matrix<int64_t> mask;  // [B, P]: 1 real token, 0 padding
};

// `tpl` is null when the tokenizer has no chat template.
PreparedPrompt prepare_prompt(const GenerateOptions& o, const Tokenizer& tok, const ChatTemplate* tpl);

// The special-token strings a chat template sees (bos_token, eos_token, ...).
nlohmann::ordered_json special_token_vars(const Tokenizer& tok);

}  // namespace llada2
