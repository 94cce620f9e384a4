// The process-wide thread pool: one set of workers for every parallel loop, so
// nested libraries never oversubscribe the cores.
#pragma once

#include <cstdint>
#include <functional>

namespace llada2 {

// Number of worker threads (including the caller). Defaults to the hardware
// concurrency; LLADA2_THREADS or set_num_threads() overrides it.
int num_threads();
void set_num_threads(int n);

// Runs fn(begin, end) over [0, n) split into contiguous chunks, one per thread,
// and returns when all chunks are done. Runs inline when n is small or when
// called from inside another parallel_for.
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk = 1);

}  // namespace llada2
