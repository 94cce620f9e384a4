#include "node_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <system_error>
#include <thread>

#include "test_util.h"

extern char** environ;

namespace llada2::testing {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<char*> c_argv(std::vector<std::string>& args) {
  std::vector<char*> v;
  for (auto& a : args) v.push_back(a.data());
  v.push_back(nullptr);
  return v;
}

// Waits for `pid` up to `seconds`; the wait status, or nothing if it still runs.
std::optional<int> wait_exit(pid_t pid, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return -1;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

fs::path js_dir() { return fs::path(LLADA2_TEST_DATA).parent_path() / "js"; }

std::optional<fs::path> find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (!path) return std::nullopt;
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    const fs::path p = fs::path(dir) / name;
    if (::access(p.c_str(), X_OK) == 0 && fs::is_regular_file(p)) return p;
  }
  return std::nullopt;
}

bool Child::running() {
  if (pid < 0 || status) return false;
  if (auto s = wait_exit(pid, 0)) status = s;
  return !status;
}

int Child::stop(double grace_seconds) {
  if (pid < 0) return -1;
  if (!status) {
    ::kill(group ? -pid : pid, SIGTERM);
    status = wait_exit(pid, grace_seconds);
    if (!status) {
      ::kill(group ? -pid : pid, SIGKILL);
      int s = 0;
      ::waitpid(pid, &s, 0);
      status = -1;
    }
  }
  return *status;
}

NodeRun run_node_test(const fs::path& node, const fs::path& file, const std::vector<std::string>& extra_env,
                      double timeout_seconds) {
  NodeRun result;
  int out[2];
  if (::pipe(out) != 0) {
    result.output = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {  // the environment, less the variables set here
    const std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('=') + 1);
    if (std::none_of(extra_env.begin(), extra_env.end(), [&](const std::string& x) { return x.rfind(key, 0) == 0; }))
      env.push_back(kv);
  }
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  std::vector<std::string> args = {node.string(), "--test", "--test-reporter=spec", file.string()};
  auto argv = c_argv(args);
  auto envp = c_argv(env);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, out[1], 2);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  posix_spawn_file_actions_addclose(&actions, out[1]);
  // Its own process group: node --test runs the file in a child process, which a timeout must end too.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  Child child;
  child.group = true;
  const int rc = ::posix_spawn(&child.pid, node.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    child.pid = -1;
    result.output = "cannot start " + node.string() + ": " + std::strerror(rc);
    return result;
  }
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_seconds);
  char buf[4096];
  bool eof = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      result.output += "\n[node did not finish within " + std::to_string(int(timeout_seconds)) + " s: killed]\n";
      break;
    }
    pollfd p{out[0], POLLIN, 0};
    const int n = ::poll(&p, 1, int(std::min<long long>(left, 1000)));
    if (n <= 0) continue;  // timeout or EINTR
    const ssize_t got = ::read(out[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {  // EOF: node and the processes it started closed the pipe
      eof = true;
      break;
    }
    result.output.append(buf, size_t(got));
  }
  ::close(out[0]);
  if (eof) child.status = wait_exit(child.pid, 10);  // let it exit on its own
  const int status = child.stop(5);                  // kills it only if it still runs
  ::kill(-child.pid, SIGKILL);                       // what it started and left behind (a browser)
  result.exit_code = status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

ServeProcess::ServeProcess(const std::vector<std::string>& args) : dir_(fresh_temp_dir()) {
  std::vector<std::string> argv_strings = {LLADA2_CLI_PATH, "serve", "--port", "0"};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  auto argv = c_argv(argv_strings);
  const fs::path log = dir_ / "serve_stderr.txt";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int rc = ::posix_spawn(&child_.pid, LLADA2_CLI_PATH, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    child_.pid = -1;
    start_error_ = std::string("cannot start ") + LLADA2_CLI_PATH + ": " + std::strerror(rc);
  }
}

ServeProcess::~ServeProcess() {
  child_.stop();
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string ServeProcess::stderr_text() const { return read_file(dir_ / "serve_stderr.txt"); }

std::string ServeProcess::wait_started(double seconds) {
  if (!start_error_.empty()) return start_error_;
  // "llada2 serve: model '...' on http://127.0.0.1:PORT/v1 (...)"
  const std::string marker = "on http://127.0.0.1:";
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (port_ == 0 && Clock::now() < deadline && child_.running()) {
    const std::string text = stderr_text();
    const size_t at = text.find(marker);
    if (at != std::string::npos && text.find("/v1", at) != std::string::npos)
      port_ = std::atoi(text.c_str() + at + marker.size());
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (port_ > 0) return "";
  return std::string("no port line from llada2 serve (") + (child_.running() ? "still running" : "exited") +
         "); its stderr:\n" + stderr_text();
}

}  // namespace llada2::testing
