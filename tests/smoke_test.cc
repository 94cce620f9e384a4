#include <gtest/gtest.h>

#include "llada2/types.h"

TEST(Types, DtypeSizes) {
  EXPECT_EQ(llada2::dtype_size(llada2::DType::BF16), 2u);
  EXPECT_EQ(llada2::dtype_size(llada2::DType::F32), 4u);
}

#include <atomic>

#include "core/thread_pool.h"

TEST(ThreadPool, ResizeAfterUseRunsOnlyNewJobs) {
  std::atomic<int64_t> sum{0};
  llada2::parallel_for(1000, [&](int64_t a, int64_t b) { sum += b - a; });
  EXPECT_EQ(sum.load(), 1000);
  for (int n : {3, 1, 2}) {
    llada2::set_num_threads(n);
    EXPECT_EQ(llada2::num_threads(), n);
    sum = 0;
    llada2::parallel_for(1000, [&](int64_t a, int64_t b) { sum += b - a; });
    EXPECT_EQ(sum.load(), 1000);
  }
}

TEST(ThreadPool, ExceptionsReachTheCaller) {
  EXPECT_THROW(llada2::parallel_for(100,
                                    [](int64_t a, int64_t) {
                                      if (a > 0) throw std::runtime_error("boom");
                                    }),
               std::runtime_error);
  std::atomic<int64_t> sum{0};
  llada2::parallel_for(10, [&](int64_t a, int64_t b) { sum += b - a; });
  EXPECT_EQ(sum.load(), 10);
}

// A parallel_for inside a parallel_for (the MoE's expert loop around the kernels' products)
// completes with any thread count, one included.
TEST(ThreadPool, NestedCallsWithAnyThreadCount) {
  for (int n : {1, 2, 3}) {
    llada2::set_num_threads(n);
    for (int64_t outer : {1, 2, 7}) {
      std::atomic<int64_t> sum{0};
      llada2::parallel_for(outer, [&](int64_t a, int64_t b) {
        for (int64_t i = a; i < b; ++i) llada2::parallel_for(100, [&](int64_t c, int64_t d) { sum += d - c; });
      });
      EXPECT_EQ(sum.load(), outer * 100) << n << " threads";
    }
  }
  llada2::set_num_threads(2);
}
