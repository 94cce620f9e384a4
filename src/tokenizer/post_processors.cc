// tokenizer.json post-processors: TemplateProcessing (and the no-op ones), Sequence.
#include "tokenizer/components.h"

#include "tokenizer/component_json.h"

namespace llada2::tok {

namespace {

struct NoOpPost : PostProcessor {
  void process(std::vector<int64_t>&, bool) const override {}
};

// A fixed list of ids before and after the sequence (TemplateProcessing's single template,
// BertProcessing, RobertaProcessing).
struct AroundPost : PostProcessor {
  std::vector<int64_t> before, after;
  void process(std::vector<int64_t>& ids, bool add_special_tokens) const override {
    if (!add_special_tokens) return;
    ids.insert(ids.begin(), before.begin(), before.end());
    ids.insert(ids.end(), after.begin(), after.end());
  }
};

struct PostSequence : PostProcessor {
  std::vector<std::unique_ptr<PostProcessor>> steps;
  void process(std::vector<int64_t>& ids, bool add_special_tokens) const override {
    for (const auto& p : steps) p->process(ids, add_special_tokens);
  }
};

int64_t id_of(const json& pair) {
  // ["[SEP]", 102]
  if (!pair.is_array() || pair.size() != 2) throw InputError("post_processor special token must be [token, id]");
  return pair.at(1).get<int64_t>();
}

std::unique_ptr<PostProcessor> make_template(const json& j) {
  auto p = std::make_unique<AroundPost>();
  const json& special = j.at("special_tokens");
  const json& single = j.at("single");
  if (!single.is_array()) throw InputError("TemplateProcessing single must be a list");
  bool seen_a = false;
  for (const auto& piece : single) {
    if (auto it = piece.find("SpecialToken"); it != piece.end()) {
      std::string name = it->at("id").get<std::string>();
      auto st = special.find(name);
      if (st == special.end()) throw InputError("TemplateProcessing: missing special token \"" + name + "\"");
      for (const auto& id : st->at("ids")) (seen_a ? p->after : p->before).push_back(id.get<int64_t>());
    } else if (auto it2 = piece.find("Sequence"); it2 != piece.end()) {
      if (seen_a) throw InputError("TemplateProcessing single template with two sequences");
      seen_a = true;
    } else {
      throw InputError("TemplateProcessing: unknown template piece");
    }
  }
  if (!seen_a) throw InputError("TemplateProcessing single template without a sequence");
  return p;
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const json& j) {
  if (j.is_null()) return nullptr;
  std::string t = type_of(j, "post_processor");
  if (t == "ByteLevel") return std::make_unique<NoOpPost>();  // it only adjusts offsets
  if (t == "TemplateProcessing") return make_template(j);
  if (t == "BertProcessing" || t == "RobertaProcessing") {
    auto p = std::make_unique<AroundPost>();
    p->before.push_back(id_of(j.at("cls")));
    p->after.push_back(id_of(j.at("sep")));
    return p;
  }
  if (t == "Sequence") {
    auto seq = std::make_unique<PostSequence>();
    for (const auto& p : j.at("processors")) {
      auto step = make_post_processor(p);
      if (step) seq->steps.push_back(std::move(step));
    }
    return seq;
  }
  throw InputError("unsupported post_processor type \"" + t + "\"");
}

}  // namespace llada2::tok
