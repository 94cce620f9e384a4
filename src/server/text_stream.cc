#include "server/text_stream.h"

#include <algorithm>

namespace llada2::server {

size_t find_stop(const std::string& text, const std::vector<std::string>& stops) {
  size_t best = std::string::npos;
  for (const auto& s : stops) best = std::min(best, text.find(s));
  return best;
}

namespace {

// Drops a trailing incomplete UTF-8 sequence and trailing U+FFFD, which a later token may still
// turn into a different character.
size_t stable_length(const std::string& s) {
  size_t n = s.size();
  for (;;) {
    if (n >= 3 && s.compare(n - 3, 3, "\xEF\xBF\xBD") == 0) {
      n -= 3;
      continue;
    }
    size_t lead = n;
    int cont = 0;
    while (lead > 0 && cont < 4 && (static_cast<unsigned char>(s[lead - 1]) & 0xC0) == 0x80) --lead, ++cont;
    if (lead == 0) return n;
    const unsigned char c = static_cast<unsigned char>(s[lead - 1]);
    const int need = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    if (need > cont) n = lead - 1;
    return n;
  }
}

// Length of the longest tail of `text` that is a proper prefix of some stop string.
size_t stop_prefix_tail(const std::string& text, const std::vector<std::string>& stops) {
  size_t best = 0;
  for (const auto& s : stops)
    for (size_t k = std::min(s.size() - 1, text.size()); k > best; --k)
      if (text.compare(text.size() - k, k, s, 0, k) == 0) {
        best = k;
        break;
      }
  return best;
}

}  // namespace

std::string TextStream::update(const std::string& text, bool complete) {
  if (stopped_) return {};
  std::string visible;
  if (size_t pos = find_stop(text, stops_); pos != std::string::npos) {
    visible = text.substr(0, pos);
    stopped_ = true;
  } else if (complete) {
    visible = text;
  } else {
    visible = text.substr(0, stable_length(text));
    visible.resize(visible.size() - stop_prefix_tail(visible, stops_));
  }
  // Never retract: send only what extends the text already sent.
  if (visible.size() <= sent_.size() || visible.compare(0, sent_.size(), sent_) != 0) return {};
  std::string delta = visible.substr(sent_.size());
  sent_ = std::move(visible);
  return delta;
}

}  // namespace llada2::server
