// Running the CLI on a pseudo-terminal of a given size, and a small terminal emulator that replays
// what it wrote, so tests can check what a person would see on the screen.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace llada2::testing {

struct PtyRun {
  int exit_code = -1;  // -1: killed by a signal or not started
  std::string output;  // every byte the program wrote to the terminal (stdout and stderr)
};

// Runs `llada2 ARGS` (through /bin/sh) with a terminal of `columns` x `rows` as its stdin, stdout and
// stderr. `on_output` (optional) sees the output so far each time more arrives and may return bytes to
// type (e.g. "\x03" for Ctrl-C); the run ends when the program exits (or after `timeout_s`: killed).
PtyRun run_cli_pty(const std::string& args, int columns, int rows,
                   const std::function<std::string(const std::string&)>& on_output = nullptr, int timeout_s = 120);

// A terminal screen: printable characters with auto-wrap (wide characters take two cells), CR, LF,
// BS, TAB, ESC[nA/B/C/D (cursor moves), ESC[J and ESC[K (clear below / to the end of the line);
// the screen scrolls when a line feed leaves the bottom row. Other escape sequences are skipped.
class Screen {
 public:
  Screen(int columns, int rows);
  void feed(const std::string& bytes);
  // The rows with trailing blanks removed, trailing empty rows dropped.
  std::vector<std::string> lines() const;
  int cursor_row() const { return row_; }

 private:
  void put(const std::string& ch, int width);
  void line_feed();
  int columns_, rows_, row_ = 0, col_ = 0;
  bool pending_wrap_ = false;
  std::vector<std::vector<std::string>> cells_;  // "" in the second cell of a wide character
};

// Wraps text (with \n) at `columns` terminal cells the way a terminal would print it.
std::vector<std::string> wrap_like_a_terminal(const std::string& text, int columns);

}  // namespace llada2::testing
