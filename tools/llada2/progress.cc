#include "progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "llada2/safetensors.h"

namespace llada2::cli {

ByteProgress::ByteProgress(std::string what, bool quiet, std::string unit_note)
    : what_(std::move(what)),
      note_(std::move(unit_note)),
      quiet_(quiet),
      tty_(::isatty(2)),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

double ByteProgress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ByteProgress::operator()(uint64_t done, uint64_t total) {
  if (quiet_ || total < (256ull << 20)) return;  // small work finishes too fast for progress to help
  const auto now = std::chrono::steady_clock::now();
  const double secs = std::chrono::duration<double>(now - start_).count();
  const int pct = int(100.0 * double(done) / double(total));
  const bool finished = done == total;
  if (tty_ ? (now - last_ < std::chrono::milliseconds(500) && !finished) : (pct / 10 == last_decile_ && !finished))
    return;
  last_ = now;
  last_decile_ = pct / 10;
  std::fprintf(stderr, "%s%s: %3d%% (%.0f / %.0f MB%s, %.0f MB/s)%s", tty_ ? "\r" : "", what_.c_str(), pct,
               double(done) / 1e6, double(total) / 1e6, note_.c_str(), secs > 0 ? double(done) / 1e6 / secs : 0.0,
               tty_ && !finished ? "" : "\n");
  std::fflush(stderr);
  printed_ = true;
}

void attach_status_line(ResolvedCall& call) {
  const int64_t P = call.prompt_length(), K = call.block_length, mask = call.mask_token_id;
  const int64_t blocks = call.num_blocks() - call.first_block();
  const auto start = std::chrono::steady_clock::now();
  auto last = start;
  call.options.callback_on_step_end_tensor_inputs = std::vector<std::string>{"block_x"};
  call.options.callback_on_step_end = [=](int64_t step, int64_t,
                                          const std::map<std::string, CallbackTensor>& t) mutable {
    const auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::milliseconds(200)) return CallbackResult{};
    last = now;
    const CallbackTensor& bx = t.at("block_x");
    const int64_t B = bx.shape[0], W = bx.shape[1];
    int64_t filled = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = std::min(P, W); j < W; ++j) filled += bx.ints[size_t(b * W + j)] != mask;
    const double secs = std::chrono::duration<double>(now - start).count();
    std::fprintf(stderr, "\r\033[Kblock %lld/%lld, step %lld, %lld tokens, %.1f s", (long long)(W / K - P / K),
                 (long long)blocks, (long long)step + 1, (long long)filled, secs);
    std::fflush(stderr);
    return CallbackResult{};
  };
}

void clear_status_line() {
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
}

Model::LoadProgress repack_progress(const std::string& dir, bool quiet) {
  auto progress = std::make_shared<ByteProgress>("preparing " + dir + " (weight panels)", quiet);
  return [progress, dir](uint64_t done, uint64_t total) {
    (*progress)(done, total);
    if (done == total && progress->printed())
      std::fprintf(stderr, "prepared %s: %.1f GB of weights repacked in %.1f s\n", dir.c_str(), double(total) / 1e9,
                   progress->seconds());
  };
}

void load_weights(const Model& model, const std::string& dir, bool quiet) {
  model.prepare(repack_progress(dir, quiet));
  const Checkpoint& ck = model.checkpoint();
  const double bytes = double(ck.total_bytes());
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  const double ram = pages > 0 && page > 0 ? double(pages) * double(page) : 0.0;
  if (ram > 0 && bytes > 0.85 * ram) {
    if (!quiet)
      std::fprintf(stderr, "%s: weights (%.1f GB) exceed 85%% of RAM (%.1f GB): read from disk as needed\n",
                   dir.c_str(), bytes / 1e9, ram / 1e9);
    return;
  }
  // Pages in the page cache already cost no disk read: a rate over them would be a memory copy's, so
  // the progress and the summary count what comes from the disk.
  const uint64_t cached = ck.resident_bytes();
  uint64_t total = 0;  // without what Model::load repacked already
  ByteProgress progress("loading " + dir + " from disk", quiet);
  ck.prefault([&](uint64_t done, uint64_t all) {
    total = all;
    const uint64_t from_disk = all > cached ? all - cached : 0;
    if (from_disk >= all / 10) progress(uint64_t(double(done) / double(all) * double(from_disk)), from_disk);
  });
  if (progress.printed()) {
    const uint64_t from_disk = total > cached ? total - cached : 0;
    std::fprintf(stderr,
                 "loaded %s: %.1f GB of weights, %.1f GB read from disk in %.1f s (%.0f MB/s), %.1f GB cached\n",
                 dir.c_str(), double(total) / 1e9, double(from_disk) / 1e9, progress.seconds(),
                 double(from_disk) / 1e6 / std::max(progress.seconds(), 1e-3), double(cached) / 1e9);
  }
}

}  // namespace llada2::cli
