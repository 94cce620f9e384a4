// Evidence when the process dies of a fatal signal: which signal, which request the thread was
// serving, and a backtrace, on stderr.
#pragma once

#include <string_view>

namespace llada2 {

// Installs handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT that write
// "llada2: fatal signal SIGSEGV ..." (with the calling thread's CrashContext, if any) and a
// backtrace to stderr, then die of the same signal with its default action, so the exit status
// stays 128 + signal. They run on an alternate stack, so a stack overflow is reported too. Once per
// process is enough; later calls do nothing.
void install_crash_handler();

// Names the work the calling thread is doing (e.g. a request id, cut to 255 bytes) for the handler's
// message while it lives; the previous name comes back when it ends. Also gives the thread the
// alternate signal stack the handler needs to report a stack overflow.
class CrashContext {
 public:
  explicit CrashContext(std::string_view what);
  ~CrashContext();
  CrashContext(const CrashContext&) = delete;
  CrashContext& operator=(const CrashContext&) = delete;

 private:
  char previous_[256];
};

}  // namespace llada2
