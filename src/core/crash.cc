#include "llada2/crash.h"

#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

namespace llada2 {

namespace {

// The handler reads this thread's context from a fixed buffer: no allocation, no locks. The
// library is linked statically into its executables, so the thread-local access needs no call
// into the dynamic loader.
thread_local char t_context[256];

// An alternate signal stack is per thread; threads get one the first time they name their work.
// Its owner switches it off before freeing it when the thread ends.
struct AltStack {
  std::unique_ptr<char[]> memory;
  AltStack() {
    const size_t size = std::max<size_t>(SIGSTKSZ, 64 * 1024);
    memory.reset(new char[size]);
    stack_t ss{};
    ss.ss_sp = memory.get();
    ss.ss_size = size;
    if (sigaltstack(&ss, nullptr) != 0) memory.reset();
  }
  ~AltStack() {
    if (!memory) return;
    stack_t ss{};
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, nullptr);
  }
};

void ensure_alt_stack() { thread_local AltStack stack; }

constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

const char* signal_name(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    default: return "signal";
  }
}

void put(const char* s) {
  for (size_t n = std::strlen(s); n > 0;) {
    const ssize_t w = ::write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= size_t(w);
  }
}

void put_hex(uintptr_t v) {
  char buf[2 + 2 * sizeof v + 1];
  char* p = buf + sizeof buf;
  *--p = '\0';
  do {
    *--p = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v != 0);
  *--p = 'x';
  *--p = '0';
  put(p);
}

void on_fatal_signal(int sig, siginfo_t* info, void*) {
  put("\nllada2: fatal signal ");
  put(signal_name(sig));
  if ((sig == SIGSEGV || sig == SIGBUS) && info) {
    put(" at address ");
    put_hex(reinterpret_cast<uintptr_t>(info->si_addr));
  }
  if (t_context[0]) {
    put(" while handling ");
    put(t_context);
  }
  put("\nbacktrace:\n");
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
  // SA_RESETHAND restored the default action: a re-executed faulting instruction or this pending
  // signal ends the process as if there had been no handler.
  raise(sig);
}

}  // namespace

void install_crash_handler() {
  static const bool installed = [] {
    // The first backtrace() loads libgcc's unwinder, which allocates: not in a handler.
    void* frame;
    backtrace(&frame, 1);
    ensure_alt_stack();
    struct sigaction sa {};
    sa.sa_sigaction = on_fatal_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (int sig : kSignals) sigaction(sig, &sa, nullptr);
    return true;
  }();
  (void)installed;
}

CrashContext::CrashContext(std::string_view what) {
  ensure_alt_stack();
  std::memcpy(previous_, t_context, sizeof previous_);
  const size_t n = std::min(what.size(), sizeof t_context - 1);
  std::memcpy(t_context, what.data(), n);
  t_context[n] = '\0';
}

CrashContext::~CrashContext() { std::memcpy(t_context, previous_, sizeof previous_); }

}  // namespace llada2
