#include "pty_util.h"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utf8proc.h>

#include <chrono>
#include <cstring>

namespace llada2::testing {

PtyRun run_cli_pty(const std::string& args, int columns, int rows,
                   const std::function<std::string(const std::string&)>& on_output, int timeout_s) {
  PtyRun r;
  struct winsize ws {};
  ws.ws_col = static_cast<unsigned short>(columns);
  ws.ws_row = static_cast<unsigned short>(rows);
  int master = -1;
  const std::string cmd = "exec " + std::string(LLADA2_CLI_PATH) + " " + args;  // signals reach the CLI itself
  pid_t pid = ::forkpty(&master, nullptr, nullptr, &ws);
  if (pid < 0) return r;
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  char buf[4096];
  for (;;) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      break;
    }
    struct pollfd p {
      master, POLLIN, 0
    };
    if (::poll(&p, 1, 100) <= 0) continue;
    ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO once the program (and every holder of the terminal) is gone
    r.output.append(buf, size_t(n));
    if (on_output) {
      std::string typed = on_output(r.output);
      if (!typed.empty() && ::write(master, typed.data(), typed.size()) < 0) break;
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(master);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

Screen::Screen(int columns, int rows)
    : columns_(columns), rows_(rows), cells_(size_t(rows), std::vector<std::string>(size_t(columns), " ")) {}

void Screen::line_feed() {
  if (row_ + 1 < rows_) {
    ++row_;
  } else {
    cells_.erase(cells_.begin());
    cells_.emplace_back(size_t(columns_), " ");
  }
}

void Screen::put(const std::string& ch, int width) {
  if (width == 0) return;
  if (pending_wrap_ || col_ + width > columns_) {
    line_feed();
    col_ = 0;
    pending_wrap_ = false;
  }
  cells_[size_t(row_)][size_t(col_)] = ch;
  if (width == 2) cells_[size_t(row_)][size_t(col_ + 1)] = "";
  col_ += width;
  if (col_ == columns_) {
    col_ = columns_ - 1;
    pending_wrap_ = true;
  }
}

void Screen::feed(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0x1B && i + 1 < s.size() && s[i + 1] == '[') {
      size_t j = i + 2;
      int n = 0;
      bool has_n = false;
      while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == ';' || s[j] == '?')) {
        if (std::isdigit(static_cast<unsigned char>(s[j]))) n = n * 10 + (s[j] - '0'), has_n = true;
        ++j;
      }
      if (j >= s.size()) break;
      const char op = s[j];
      const int k = has_n ? std::max(n, 1) : 1;
      pending_wrap_ = false;
      if (op == 'A') row_ = std::max(0, row_ - k);
      if (op == 'B') row_ = std::min(rows_ - 1, row_ + k);
      if (op == 'C') col_ = std::min(columns_ - 1, col_ + k);
      if (op == 'D') col_ = std::max(0, col_ - k);
      if (op == 'J' || op == 'K') {
        // assign(1, ' '), not = " ": GCC 12 warns (-Wrestrict) about the latter here, wrongly
        for (int x = col_; x < columns_; ++x) cells_[size_t(row_)][size_t(x)].assign(1, ' ');
        if (op == 'J')
          for (int y = row_ + 1; y < rows_; ++y) cells_[size_t(y)].assign(size_t(columns_), " ");
      }
      i = j + 1;
      continue;
    }
    if (c == 0x1B) {  // another escape: skip it and its final byte
      i += 2;
      continue;
    }
    if (c == '\r') {
      col_ = 0;
      pending_wrap_ = false;
      ++i;
      continue;
    }
    if (c == '\n') {
      line_feed();
      pending_wrap_ = false;
      ++i;
      continue;
    }
    if (c == '\b') {
      col_ = std::max(0, col_ - 1);
      pending_wrap_ = false;
      ++i;
      continue;
    }
    if (c == '\t') {
      col_ = std::min(columns_ - 1, (col_ / 8 + 1) * 8);
      ++i;
      continue;
    }
    if (c < 0x20 || c == 0x7F) {
      ++i;
      continue;
    }
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t len =
        utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i), utf8proc_ssize_t(s.size() - i), &cp);
    if (len <= 0) {
      put("\xEF\xBF\xBD", 1);
      ++i;
      continue;
    }
    put(s.substr(i, size_t(len)), std::max(0, utf8proc_charwidth(cp)));
    i += size_t(len);
  }
}

std::vector<std::string> Screen::lines() const {
  std::vector<std::string> out;
  for (const auto& row : cells_) {
    std::string line;
    for (const auto& cell : row) line += cell;
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out.push_back(line);
  }
  while (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

std::vector<std::string> wrap_like_a_terminal(const std::string& text, int columns) {
  Screen s(columns, 4096);
  std::string crlf;
  for (char c : text) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  s.feed(crlf);
  return s.lines();
}

}  // namespace llada2::testing
