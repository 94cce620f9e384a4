#include "live_view.h"

#include <algorithm>
#include <thread>

namespace llada2::cli {

namespace {

// Drops an incomplete UTF-8 sequence (or a lone replacement character from one) at the end.
std::string complete_utf8(const std::string& s) {
  static const std::string kReplacement = "\xEF\xBF\xBD";
  std::string t = s;
  while (t.size() >= 3 && t.compare(t.size() - 3, 3, kReplacement) == 0) t.resize(t.size() - 3);
  return t;
}

}  // namespace

LiveView::LiveView(const Tokenizer& tok, const ResolvedCall& call, std::FILE* out, int frame_ms)
    : tok_(tok),
      mask_id_(call.mask_token_id),
      eos_id_(call.eos_token_id),
      prompt_length_(call.prompt_length()),
      block_length_(call.block_length),
      out_(out),
      frame_ms_(frame_ms) {}

std::string LiveView::cell_text(int64_t id) const {
  if (id == mask_id_) return "\xE2\x96\x91";  // ░
  std::string s = tok_.decode({id}, true);
  std::string r;
  for (char c : s) r += c == '\n' ? std::string("\xE2\x8F\x8E") : std::string(1, c);  // ⏎
  return r;
}

void LiveView::print_final(const std::vector<int64_t>& generated) {
  // Cells still masked (a generation stopped early) are not text.
  std::vector<int64_t> ids = generated;
  ids.erase(std::remove(ids.begin(), ids.end(), mask_id_), ids.end());
  std::string text = complete_utf8(decode_generated(tok_, ids.data(), int64_t(ids.size()), eos_id_));
  if (live_line_) std::fputs(("\r\033[K" + current_line()).c_str(), out_);
  live_line_ = false;
  if (text.size() > printed_.size() && text.compare(0, printed_.size(), printed_) == 0) {
    std::fputs(text.c_str() + printed_.size(), out_);
    printed_ = text;
  }
  std::fflush(out_);
}

void LiveView::attach(GenerateOptions& o) {
  o.callback_on_step_end_tensor_inputs = std::vector<std::string>{"block_x"};
  auto last_window = std::make_shared<int64_t>(0);
  o.callback_on_step_end = [this, last_window](int64_t, int64_t, const std::map<std::string, CallbackTensor>& t) {
    const CallbackTensor& bx = t.at("block_x");
    const int64_t W = bx.shape[1];
    const int64_t* row = bx.ints.data();
    const int64_t active_start = std::max(prompt_length_, W - block_length_);
    if (W != *last_window) {
      // A new block began: everything before it is final.
      print_final(std::vector<int64_t>(row + prompt_length_, row + active_start));
      *last_window = W;
    }
    std::string line = "\r\033[K" + current_line();
    for (int64_t j = active_start; j < W; ++j) line += cell_text(row[j]);
    std::fputs(line.c_str(), out_);
    std::fflush(out_);
    live_line_ = true;
    if (frame_ms_ > 0) {
      const auto due = last_frame_ + std::chrono::milliseconds(frame_ms_);
      std::this_thread::sleep_until(due);
      last_frame_ = std::max(due, std::chrono::steady_clock::now());
    }
    return CallbackResult{};
  };
}

std::string LiveView::current_line() const {
  size_t nl = printed_.rfind('\n');
  return nl == std::string::npos ? printed_ : printed_.substr(nl + 1);
}

void LiveView::finish(const PipelineOutput& out) {
  if (out.sequences.rows > 0)
    print_final(std::vector<int64_t>(out.sequences.row(0), out.sequences.row(0) + out.sequences.cols));
  std::fputs("\n", out_);
  std::fflush(out_);
}

}  // namespace llada2::cli
