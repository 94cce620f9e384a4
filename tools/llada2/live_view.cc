#include "live_view.h"

#include <sys/ioctl.h>
#include <unistd.h>
#include <utf8proc.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <thread>

namespace llada2::cli {

namespace {

std::atomic<bool> g_resized{false};
extern "C" void on_winch(int) { g_resized.store(true); }

// Drops an incomplete UTF-8 sequence (or a lone replacement character from one) at the end.
std::string complete_utf8(const std::string& s) {
  static const std::string kReplacement = "\xEF\xBF\xBD";
  std::string t = s;
  while (t.size() >= 3 && t.compare(t.size() - 3, 3, kReplacement) == 0) t.resize(t.size() - 3);
  return t;
}

// Calls f(code point, byte length) for each UTF-8 sequence of s (an invalid byte is U+FFFD, length 1).
template <class F>
void for_each_code_point(const std::string& s, F f) {
  for (size_t i = 0; i < s.size();) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t n =
        utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i), utf8proc_ssize_t(s.size() - i), &cp);
    if (n <= 0) {
      cp = 0xFFFD;
      n = 1;
    }
    f(char32_t(cp), size_t(n));
    i += size_t(n);
  }
}

std::string encode_utf8(char32_t cp) {
  utf8proc_uint8_t buf[4];
  utf8proc_ssize_t n = utf8proc_encode_char(utf8proc_int32_t(cp), buf);
  return std::string(reinterpret_cast<const char*>(buf), size_t(n));
}

// Control characters made visible (U+2400 block), so a token cannot move the cursor or start an
// escape sequence; `keep_newline_tab` keeps \n and \t for the final text.
std::string visible(const std::string& s, bool keep_newline_tab) {
  std::string r;
  for_each_code_point(s, [&](char32_t cp, size_t) {
    if (keep_newline_tab && (cp == '\n' || cp == '\t'))
      r += char(cp);
    else if (cp == '\n')
      r += "\xE2\x8F\x8E";  // ⏎
    else if (cp < 0x20)
      r += encode_utf8(0x2400 + cp);
    else if (cp == 0x7F)
      r += "\xE2\x90\xA1";  // ␡
    else
      r += encode_utf8(cp);
  });
  return r;
}

}  // namespace

int cell_width(char32_t cp) {
  if (cp < 0x20 || cp == 0x7F) return 0;
  int w = utf8proc_charwidth(utf8proc_int32_t(cp));
  return std::clamp(w, 0, 2);
}

int64_t cursor_row(const std::string& text, int64_t columns) {
  columns = std::max<int64_t>(columns, 1);
  int64_t row = 0, col = 0;
  int escape = 0;  // 1: after ESC, 2: inside ESC [ ... up to its final byte
  for_each_code_point(text, [&](char32_t cp, size_t) {
    if (escape == 1) {
      escape = cp == '[' ? 2 : 0;
    } else if (escape == 2) {
      if (cp >= 0x40 && cp <= 0x7E) escape = 0;
    } else if (cp == 0x1B) {
      escape = 1;
    } else if (cp == '\n') {
      ++row;
      col = 0;
    } else if (cp == '\r') {
      col = 0;
    } else if (cp == '\t') {
      col = std::min((col / 8 + 1) * 8, columns - 1);  // a tab stops at the last column, it does not wrap
    } else if (int w = cell_width(cp); w > 0) {
      if (col + w > columns) {  // wraps (also out of the pending-wrap state after a full row)
        ++row;
        col = 0;
      }
      col += w;
    }
  });
  return row;
}

bool is_terminal(std::FILE* f) { return ::isatty(::fileno(f)) == 1; }

LiveView::LiveView(const Tokenizer& tok, const ResolvedCall& call, std::FILE* out, int frame_ms, int64_t columns)
    : tok_(tok),
      mask_id_(call.mask_token_id),
      delete_id_(call.delete_token_id),
      split_id_(call.split_token_id),
      prompt_length_(call.prompt_length()),
      block_length_(call.block_length),
      out_(out),
      fixed_columns_(columns),
      frame_ms_(frame_ms) {
  if (call.decoding == Decoding::Llada22)
    stop_ids_ = call.stop_token_ids;
  else if (call.eos_token_id)
    stop_ids_ = {*call.eos_token_id};
  struct sigaction sa {};
  sa.sa_handler = on_winch;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGWINCH, &sa, &previous_winch_);
  g_resized.store(true);  // the first frame reads the width
}

LiveView::~LiveView() { ::sigaction(SIGWINCH, &previous_winch_, nullptr); }

int64_t LiveView::columns() {
  if (fixed_columns_ > 0) return fixed_columns_;
  if (g_resized.exchange(false)) {
    struct winsize ws {};
    if (::ioctl(::fileno(out_), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
      columns_ = ws.ws_col;
    } else if (const char* c = std::getenv("COLUMNS"); c && std::atoi(c) > 0) {
      columns_ = std::atoi(c);
    }
  }
  return columns_;
}

std::string LiveView::cell_text(int64_t id) const {
  if (id == mask_id_) return "\xE2\x96\x91";  // ░
  return visible(tok_.decode({id}, true), false);
}

void LiveView::redraw(const std::string& region) {
  // Back to the first row of what the region shows now (measured at today's width: a terminal that
  // reflows on resize reflows the region with it), then clear everything below and draw.
  std::string s = "\r";
  if (int64_t up = cursor_row(region_, columns()); up > 0) s += "\033[" + std::to_string(up) + "A";
  s += "\033[J";
  s += region;
  std::fputs(s.c_str(), out_);
  std::fflush(out_);
}

void LiveView::print_final(const std::vector<int64_t>& generated, bool whole) {
  // Cells still masked (a generation stopped early) are not text.
  std::vector<int64_t> ids = generated;
  ids.erase(std::remove(ids.begin(), ids.end(), mask_id_), ids.end());
  std::optional<int64_t> end_id;  // the text ends after the first stop id
  if (auto stop = std::find_first_of(ids.begin(), ids.end(), stop_ids_.begin(), stop_ids_.end()); stop != ids.end()) {
    end_id = *stop;
    ids.erase(stop + 1, ids.end());
  }
  const std::string decoded = decode_generated(tok_, ids.data(), int64_t(ids.size()), end_id);
  std::string text = visible(whole ? decoded : complete_utf8(decoded), true);
  std::string added;
  if (text.size() > printed_.size() && text.compare(0, printed_.size(), printed_) == 0)
    added = text.substr(printed_.size());
  redraw(current_line() + added);
  printed_ += added;
  region_ = current_line();  // the region now starts at the last line of the final text
}

// The active block from `active_start` on, cell by cell; with the LLaDA2.2 rules the step's deletions
// (a red ×) stand where the deleted cells were and the masks its splits inserted are a green +.
std::string LiveView::block_text(const std::map<std::string, CallbackTensor>& t, int64_t active_start) const {
  static const std::string kDeleted = "\033[31m\xC3\x97\033[0m", kInserted = "\033[32m+\033[0m";
  const CallbackTensor& bx = t.at("block_x");
  const int64_t W = bx.shape[1], K = block_length_, first = active_start - (W - K);
  const int64_t* cells = bx.ints.data() + (W - K);
  BlockEdits edits;
  if (delete_id_ || split_id_)
    edits = block_edits(t.at("sampled_tokens").ints.data(), t.at("transfer_index").ints.data(),
                        t.at("editing_transfer_index").ints.data(), K, delete_id_, split_id_);
  std::string s;
  for (int64_t j = first; j <= K; ++j) {
    for (int64_t d : edits.deleted)
      if (d == j) s += kDeleted;
    if (j == K) break;
    const bool inserted = std::find(edits.inserted.begin(), edits.inserted.end(), j) != edits.inserted.end();
    s += inserted ? kInserted : cell_text(cells[j]);
  }
  return s;
}

void LiveView::attach(GenerateOptions& o) {
  o.callback_on_step_end_tensor_inputs = std::vector<std::string>{"block_x"};
  if (delete_id_ || split_id_)
    o.callback_on_step_end_tensor_inputs =
        std::vector<std::string>{"block_x", "sampled_tokens", "transfer_index", "editing_transfer_index"};
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
    const std::string region = current_line() + block_text(t, active_start);
    redraw(region);
    region_ = region;
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
    print_final(std::vector<int64_t>(out.sequences.row(0), out.sequences.row(0) + out.sequences.cols), true);
  else
    redraw(current_line());
  std::fputs("\n", out_);
  std::fflush(out_);
}

}  // namespace llada2::cli
