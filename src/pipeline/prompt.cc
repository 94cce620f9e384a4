#include "pipeline/prompt.h"

#include <algorithm>

#include "llada2/error.h"

namespace llada2 {

namespace {

nlohmann::ordered_json special_token_vars(const Tokenizer& tok) {
  nlohmann::ordered_json v = nlohmann::ordered_json::object();
  auto put = [&](const char* name, const std::optional<std::string>& s) {
    if (s) v[name] = *s;
  };
  put("bos_token", tok.bos_token());
  put("eos_token", tok.eos_token());
  put("unk_token", tok.unk_token());
  put("pad_token", tok.pad_token());
  put("mask_token", tok.mask_token());
  return v;
}

// apply_chat_template: render, then tokenize without special tokens (the template writes them).
std::vector<int64_t> chat_ids(const nlohmann::ordered_json& messages, bool add_generation_prompt, const Tokenizer& tok,
                              const ChatTemplate* tpl) {
  return tok.encode(render_chat(messages, nullptr, add_generation_prompt, tok, tpl), false);
}

}  // namespace

std::string render_chat(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                        bool add_generation_prompt, const Tokenizer& tok, const ChatTemplate* tpl) {
  if (!tpl)
    throw InputError(
        "Cannot use chat template functions because tokenizer.chat_template is not set (the checkpoint's "
        "tokenizer_config.json has no chat_template and there is no chat_template.jinja)");
  return tpl->render(messages, tools, add_generation_prompt, special_token_vars(tok));
}

std::string Pipeline::apply_chat_template(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                                          bool add_generation_prompt) const {
  if (!tokenizer_) throw InputError("Tokenizer is required to apply a chat template.");
  return render_chat(messages, tools, add_generation_prompt, *tokenizer_, chat_template_.get());
}

std::string decode_generated(const Tokenizer& tokenizer, const int64_t* ids, int64_t n, std::optional<int64_t> eos_id) {
  const int64_t* eos = eos_id ? std::find(ids, ids + n, *eos_id) : ids + n;
  const int64_t* end = eos == ids + n ? eos : eos + 1;
  return tokenizer.decode(std::vector<int64_t>(ids, end), true);
}

PreparedPrompt prepare_prompt(const GenerateOptions& o, const Tokenizer& tok, const ChatTemplate* tpl) {
  std::vector<std::vector<int64_t>> rows;
  bool pad = false;
  if (o.messages) {
    rows.push_back(chat_ids(*o.messages, o.add_generation_prompt, tok, tpl));
  } else if (o.use_chat_template && tpl) {
    if (!std::holds_alternative<std::string>(*o.prompt))
      throw InputError("`prompt` must be a string when `use_chat_template=True`.");
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    messages.push_back({{"role", "user"}, {"content", std::get<std::string>(*o.prompt)}});
    rows.push_back(chat_ids(messages, o.add_generation_prompt, tok, tpl));
  } else if (std::holds_alternative<std::string>(*o.prompt)) {
    rows.push_back(tok.encode(std::get<std::string>(*o.prompt), true));
  } else {
    const auto& prompts = std::get<std::vector<std::string>>(*o.prompt);
    if (prompts.empty()) throw InputError("`prompt` is an empty list.");
    for (const auto& p : prompts) rows.push_back(tok.encode(p, true));
    pad = true;
  }
  size_t P = 0;
  for (const auto& r : rows) P = std::max(P, r.size());
  if (P == 0) throw InputError("the prompt encodes to no tokens");
  PreparedPrompt out{Matrix<int64_t>(int64_t(rows.size()), int64_t(P)),
                     Matrix<int64_t>(int64_t(rows.size()), int64_t(P), 0)};
  std::optional<int64_t> pad_id;
  if (pad) {
    pad_id = tok.pad_token_id();
    bool ragged = std::any_of(rows.begin(), rows.end(), [&](const auto& r) { return r.size() != P; });
    if (ragged && !pad_id)
      throw InputError(
          "Asking to pad but the tokenizer does not have a padding token (tokenizer_config.json pad_token).");
  }
  const bool left = tok.padding_side() == "left";
  for (size_t b = 0; b < rows.size(); ++b) {
    const auto& r = rows[b];
    const size_t offset = left ? P - r.size() : 0;
    for (size_t j = 0; j < P; ++j) {
      const bool real = j >= offset && j < offset + r.size();
      out.ids.at(int64_t(b), int64_t(j)) = real ? r[j - offset] : *pad_id;
      out.mask.at(int64_t(b), int64_t(j)) = real ? 1 : 0;
    }
  }
  return out;
}

}  // namespace llada2
