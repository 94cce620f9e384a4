// A live terminal view of the diffusion: final blocks are printed as text, the active block is
// redrawn in place each step (masked cells as ░, commits and edits appearing; with the LLaDA2.2
// rules a cell deleted in the step shows as a red ×, a mask a split inserted as a green +).
//
// The redrawn region is the last line of the final text plus the active block's cells. Its width is
// measured in terminal cells (wide CJK characters count two, combining marks none), so the view knows
// how many rows a frame took when it wrapped, moves the cursor back up over all of them and clears to
// the end of the screen before the next frame: nothing of an earlier frame is left behind. The width is
// read from the terminal again after a resize (SIGWINCH).
#pragma once

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "llada2/pipeline.h"
#include "llada2/tokenizer.h"

namespace llada2::cli {

// Terminal cells taken by one UTF-8 encoded code point (0, 1 or 2).
int cell_width(char32_t cp);
// The row (0-based) the cursor is on after `text` is written from column 0 of a terminal `columns`
// wide (a line exactly as wide as the terminal leaves the cursor on its own row, as terminals do);
// escape sequences (the view's colours) take no cells.
int64_t cursor_row(const std::string& text, int64_t columns);

// Whether `f` is a terminal (the only place the live view draws).
bool is_terminal(std::FILE* f);

class LiveView {
 public:
  // Shows row 0 of the call's generation on `out` (a terminal). Each step's frame stays at least
  // `frame_ms` milliseconds (a small model refines faster than an eye can follow; 0: as fast as it
  // runs). `columns` > 0 fixes the width instead of asking the terminal.
  LiveView(const Tokenizer& tok, const ResolvedCall& call, std::FILE* out, int frame_ms = 0, int64_t columns = 0);
  ~LiveView();

  // The step callback that draws (asks for "block_x").
  void attach(GenerateOptions& o);
  // Prints what is left of the final text and ends the line.
  void finish(const PipelineOutput& out);

 private:
  // `whole`: the generation is over, so a character cut at the end is not waiting for the next block.
  void print_final(const std::vector<int64_t>& generated, bool whole = false);
  void redraw(const std::string& region);  // replaces the region on screen
  std::string cell_text(int64_t id) const;
  std::string block_text(const std::map<std::string, CallbackTensor>& t, int64_t active_start) const;
  std::string current_line() const;  // the final text after its last newline
  int64_t columns();

  const Tokenizer& tok_;
  int64_t mask_id_;
  std::vector<int64_t> stop_ids_;                // the text ends after the first of them
  std::optional<int64_t> delete_id_, split_id_;  // LLaDA2.2 rules: the edits the frames show
  int64_t prompt_length_, block_length_;
  std::FILE* out_;
  std::string printed_;  // final text already on the terminal
  std::string region_;   // what the region shows now
  int64_t fixed_columns_ = 0, columns_ = 80;
  int frame_ms_ = 0;
  struct sigaction previous_winch_ {};  // restored when the view ends
  std::chrono::steady_clock::time_point last_frame_{};
};

}  // namespace llada2::cli
