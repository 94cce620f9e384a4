// `llada2 serve` as a process, driven by the official `openai` npm client: starts the server on the
// tiny chat model and runs tests/js/openai_client.test.mjs with node's test runner against it. Needs
// node and tests/js/node_modules (scripts/fetch-test-data.sh installs them).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

extern char** environ;

namespace llada2::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The folder of the JavaScript tests: LLADA2_TEST_DATA is <repo>/tests/data.
fs::path js_dir() { return fs::path(LLADA2_TEST_DATA).parent_path() / "js"; }

// `name` found on PATH, or nothing.
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

std::vector<char*> c_argv(std::vector<std::string>& args) {
  std::vector<char*> v;
  for (auto& a : args) v.push_back(a.data());
  v.push_back(nullptr);
  return v;
}

// Waits for `pid` up to `seconds`; the exit status, or nothing if it still runs.
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

// A child process that is always ended and reaped: SIGTERM, a bounded wait, then SIGKILL (to its
// whole process group when it leads one).
struct Child {
  pid_t pid = -1;
  bool group = false;
  std::optional<int> status;  // set once reaped

  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { stop(); }

  bool running() {
    if (pid < 0 || status) return false;
    if (auto s = wait_exit(pid, 0)) status = s;
    return !status;
  }
  // Returns the exit status (or -1 when it had to be killed).
  int stop(double grace_seconds = 10) {
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
};

// The node test run's exit status (-1: timed out and killed) and everything it printed.
struct NodeRun {
  int exit_code = -1;
  std::string output;
};

NodeRun run_node(const fs::path& node, const std::vector<std::string>& extra_env, double timeout_seconds) {
  NodeRun result;
  int out[2];
  if (::pipe(out) != 0) {
    result.output = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {  // the environment, less the variables set here
    const std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('=') + 1);
    if (std::none_of(extra_env.begin(), extra_env.end(), [&](const std::string& x) { return x.rfind(key, 0) == 0; }))
      env_strings.push_back(kv);
  }
  for (const auto& e : extra_env) env_strings.push_back(e);
  std::vector<std::string> args = {node.string(), "--test", "--test-reporter=spec",
                                   (js_dir() / "openai_client.test.mjs").string()};
  auto argv = c_argv(args);
  auto envp = c_argv(env_strings);

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
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
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
  result.exit_code = status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

TEST(OpenAIClient, NodeOpenAIPackageAgainstServe) {
  const auto node = find_on_path("node");
  ASSERT_TRUE(node) << "node is not on PATH: install Node.js 20+ (scripts/install-deps.sh) and run "
                       "scripts/fetch-test-data.sh, which installs the openai npm package into tests/js/node_modules";
  ASSERT_TRUE(fs::exists(js_dir() / "node_modules" / "openai" / "package.json"))
      << (js_dir() / "node_modules" / "openai").string()
      << " is missing: run scripts/fetch-test-data.sh (it runs npm ci in tests/js)";

  const std::string model = chat_model_dir();
  const std::string model_id = fs::path(model).filename().string();
  const fs::path tmp = fresh_temp_dir();
  const fs::path log = tmp / "serve_stderr.txt";
  struct RemoveTmp {
    fs::path dir;
    ~RemoveTmp() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } remove_tmp{tmp};

  // The server, its stderr into a file that is read for the port line.
  Child server;
  {
    std::vector<std::string> args = {LLADA2_CLI_PATH, "serve",    "--model",    model, "--port", "0",
                                     "--api-key",     "test-key", "--parallel", "2"};
    auto argv = c_argv(args);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int rc = ::posix_spawn(&server.pid, LLADA2_CLI_PATH, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ASSERT_EQ(rc, 0) << "cannot start " << LLADA2_CLI_PATH << ": " << std::strerror(rc);
  }

  // "llada2 serve: model '...' on http://127.0.0.1:PORT/v1 (...)"
  int port = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (port == 0 && Clock::now() < deadline && server.running()) {
    const std::string text = read_file(log);
    const std::string marker = "on http://127.0.0.1:";
    const size_t at = text.find(marker);
    if (at != std::string::npos && text.find("/v1", at) != std::string::npos)
      port = std::atoi(text.c_str() + at + marker.size());
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GT(port, 0) << "no port line from llada2 serve (" << (server.running() ? "still running" : "exited")
                     << "); its stderr:\n"
                     << read_file(log);

  const std::string base_url = "http://127.0.0.1:" + std::to_string(port) + "/v1";
  const auto started = Clock::now();
  const NodeRun run = run_node(*node,
                               {"LLADA2_BASE_URL=" + base_url, "LLADA2_API_KEY=test-key", "LLADA2_MODEL=" + model_id,
                                "NO_COLOR=1", "OPENAI_LOG=off"},
                               120);
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  EXPECT_EQ(run.exit_code, 0) << "node --test tests/js/openai_client.test.mjs against " << base_url
                              << " failed; its output:\n"
                              << run.output << "\nllada2 serve stderr:\n"
                              << read_file(log);
  std::printf("[ node     ] openai client tests against %s: %.1f s\n", base_url.c_str(), seconds);

  // SIGTERM stops the server cleanly, with exit code 0.
  const bool was_running = server.running();
  const int status = server.stop();
  EXPECT_TRUE(was_running) << "llada2 serve exited during the tests; its stderr:\n" << read_file(log);
  EXPECT_TRUE(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "llada2 serve did not exit 0 on SIGTERM (status " << status << "); its stderr:\n"
      << read_file(log);
}

}  // namespace
}  // namespace llada2::testing
