// Processes for the tests that drive the engine from JavaScript: `node --test` runs of the files in
// tests/js, and `llada2 serve` started as a real process on a free port.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace llada2::testing {

// The folder of the JavaScript tests (<repo>/tests/js).
std::filesystem::path js_dir();

// `name` found on PATH, or nothing.
std::optional<std::filesystem::path> find_on_path(const std::string& name);

// A child process that is always ended and reaped: SIGTERM, a bounded wait, then SIGKILL (to its
// whole process group when it leads one).
struct Child {
  pid_t pid = -1;
  bool group = false;
  std::optional<int> status;  // the wait status, once reaped (-1: killed)

  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { stop(); }

  bool running();
  // Ends it if it still runs; returns the wait status (-1 when it had to be killed).
  int stop(double grace_seconds = 10);
};

// What a `node --test` run printed and its exit code (-1: timed out and killed, or not started).
struct NodeRun {
  int exit_code = -1;
  std::string output;
};

// Runs `node --test --test-reporter=spec FILE` with `extra_env` added to (or replacing in) the
// environment, in a process group of its own that is killed, with whatever it started (a browser),
// when it outlives `timeout_seconds` or leaves processes behind.
NodeRun run_node_test(const std::filesystem::path& node, const std::filesystem::path& file,
                      const std::vector<std::string>& extra_env, double timeout_seconds);

// `llada2 serve --port 0 ARGS...` as a process, its stderr in a file; started() waits for its
// "on http://127.0.0.1:PORT/v1" line.
class ServeProcess {
 public:
  explicit ServeProcess(const std::vector<std::string>& args);
  ~ServeProcess();
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  // Waits up to `seconds` for the port line: an empty string when it came, else why not (with the
  // server's stderr).
  std::string wait_started(double seconds = 30);
  int port() const { return port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  std::string stderr_text() const;
  bool running() { return child_.running(); }
  int stop() { return child_.stop(); }

 private:
  Child child_;
  std::filesystem::path dir_;
  std::string start_error_;
  int port_ = 0;
};

}  // namespace llada2::testing
