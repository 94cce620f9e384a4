// Progress of long byte-counted work (writing, quantizing, loading weights) on stderr: a line
// rewritten in place on a terminal, a line per 10% otherwise. Work under 256 MB shows nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "llada2/model.h"
#include "llada2/pipeline.h"

namespace llada2::cli {

class ByteProgress {
 public:
  // `what` names the work ("writing /out"); `unit_note` follows the MB counts (" read", "").
  ByteProgress(std::string what, bool quiet, std::string unit_note = "");
  void operator()(uint64_t done, uint64_t total);
  bool printed() const { return printed_; }
  double seconds() const;

 private:
  std::string what_, note_;
  bool quiet_, tty_, printed_ = false;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_;
};

// Adds a step callback to the call that keeps a status line on stderr (block i/n, step, tokens,
// seconds) during the generation.
void attach_status_line(ResolvedCall& call);
// Erases the status line.
void clear_status_line();

// Progress for Model::prepare while weights are repacked for the kernels
// ("preparing DIR"), ending with a summary line when it printed anything.
Model::LoadProgress repack_progress(const std::string& dir, bool quiet = false);

// Repacks what the kernels want repacked (Model::prepare, with progress), then reads the model's
// weights into memory up front with progress (so the first forward does not
// stall on the disk), unless they would not fit in RAM; then says they are read as needed.
void load_weights(const Model& model, const std::string& dir, bool quiet = false);

}  // namespace llada2::cli
