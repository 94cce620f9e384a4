// A live terminal view of the diffusion: final blocks are printed as text, the active block is
// redrawn in place on one line each step (masked cells as ░, commits and edits appearing).
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include "llada2/pipeline.h"
#include "llada2/tokenizer.h"

namespace llada2::cli {

class LiveView {
 public:
  // Shows row 0 of the call's generation. Each step's frame stays at least `frame_ms` milliseconds
  // (a small model refines faster than an eye can follow; 0: as fast as it runs).
  LiveView(const Tokenizer& tok, const ResolvedCall& call, std::FILE* out, int frame_ms = 0);

  // The step callback that draws (asks for "block_x").
  void attach(GenerateOptions& o);
  // Prints what is left of the final text and ends the line.
  void finish(const PipelineOutput& out);

 private:
  void print_final(const std::vector<int64_t>& generated);
  std::string cell_text(int64_t id) const;
  std::string current_line() const;  // the final text after its last newline

  const Tokenizer& tok_;
  int64_t mask_id_;
  std::optional<int64_t> eos_id_;
  int64_t prompt_length_, block_length_;
  std::FILE* out_;
  std::string printed_;  // final text already on the terminal
  bool live_line_ = false;
  int frame_ms_ = 0;
  std::chrono::steady_clock::time_point last_frame_{};
};

}  // namespace llada2::cli
