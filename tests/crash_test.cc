// The fatal-signal report: the signal, the request the thread was handling and a backtrace on
// stderr, then death by the same signal (exit status 128 + signal), also after a stack overflow.
#include <gtest/gtest.h>

#include <signal.h>

#include <cstdlib>
#include <string>
#include <thread>

#include "llada2/crash.h"

namespace llada2::testing {
namespace {

volatile bool g_never = false;

// Recurses until the stack runs out; the volatile buffer keeps each frame and the call itself.
int overflow(int n) {
  if (g_never) return 0;
  volatile char frame[1024];
  frame[0] = char(n);
  return overflow(n + 1) + frame[0];
}

TEST(CrashHandlerDeathTest, SegvReportsSignalRequestAndBacktrace) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        install_crash_handler();
        const CrashContext context("chatcmpl-42");
        raise(SIGSEGV);
      },
      ::testing::KilledBySignal(SIGSEGV), "fatal signal SIGSEGV.*while handling chatcmpl-42\nbacktrace:\n");
}

TEST(CrashHandlerDeathTest, AbortIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        install_crash_handler();
        std::abort();
      },
      ::testing::KilledBySignal(SIGABRT), "fatal signal SIGABRT\nbacktrace:\n");
}

TEST(CrashHandlerDeathTest, StackOverflowInAThreadIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        install_crash_handler();
        std::thread([] {
          const CrashContext context("cmpl-7");
          std::exit(overflow(0));
        }).join();
      },
      ::testing::KilledBySignal(SIGSEGV),
      "fatal signal SIGSEGV at address 0x[0-9a-f]+ while handling cmpl-7\nbacktrace:");
}

TEST(CrashHandlerDeathTest, EndedContextGivesBackThePreviousOne) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        install_crash_handler();
        const CrashContext outer("batch-1");
        { const CrashContext inner(std::string(1000, 'x')); }
        raise(SIGBUS);
      },
      ::testing::KilledBySignal(SIGBUS), "fatal signal SIGBUS at address 0x[0-9a-f]+ while handling batch-1\n");
}

}  // namespace
}  // namespace llada2::testing
