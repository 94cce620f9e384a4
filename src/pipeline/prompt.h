// Prompt preparation as the input helper of LLaDA2Pipeline.__call__: text or chat messages -> prompt
// ids and their 2-D mask.
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

// apply_chat_template(tokenize=False): renders with the tokenizer's special tokens (bos_token,
// eos_token, ...) as template variables. `tpl` null is an InputError naming the missing template.
std::string render_chat(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                        bool add_generation_prompt, const Tokenizer& tok, const ChatTemplate* tpl);

}  // namespace llada2
