// Incremental text of one choice: stop strings, and only ever sending a prefix of the final text.
#pragma once

#include <string>
#include <vector>

namespace llada2::server {

// Position of the earliest stop string in `text` (std::string::npos when none).
size_t find_stop(const std::string& text, const std::vector<std::string>& stops);

// Grows a choice's text as blocks become final. `update` gets the decoded text of every final token
// so far and returns what may be sent now: it holds back an incomplete UTF-8 tail (and the
// decoder's U+FFFD for it) and a tail that could begin a stop string, unless the text is complete.
class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stops) : stops_(std::move(stops)) {}

  std::string update(const std::string& text, bool complete);
  bool stopped() const { return stopped_; }  // a stop string ended the text
  const std::string& sent() const { return sent_; }

 private:
  std::vector<std::string> stops_;
  std::string sent_;
  bool stopped_ = false;
};

}  // namespace llada2::server
