// llada2 eval: answer accuracy on a JSON-lines task file, over a grid of decoding settings.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "cli_util.h"
#include "commands.h"
#include "default_model.h"
#include "gen_flags.h"
#include "llada2/error.h"
#include "llada2/eval.h"
#include "llada2/pipeline.h"
#include "progress.h"

namespace llada2::cli {

namespace {

std::string settings_label(const nlohmann::ordered_json& s) {
  if (s.empty()) return "defaults";
  std::string out;
  for (const auto& [k, v] : s.items()) out += (out.empty() ? "" : " ") + k + "=" + (v.is_null() ? "none" : v.dump());
  return out;
}

void print_run(const eval::RunResult& r, int64_t show_failures) {
  std::printf("\n%s\n", settings_label(r.settings).c_str());
  std::printf("  %-14s %6s %9s %17s %9s %8s %9s\n", "task", "n", "accuracy", "95% CI", "forwards", "tok/fwd", "tok/s");
  auto row = [](const std::string& name, const eval::TaskScore& s) {
    const auto [lo, hi] = eval::wilson(s.correct, s.n);
    std::printf("  %-14s %6lld %8.1f%% %7.1f - %5.1f%% %9lld %8.2f %9.1f\n", name.c_str(), (long long)s.n,
                s.n ? 100.0 * double(s.correct) / double(s.n) : 0.0, 100 * lo, 100 * hi, (long long)s.forwards,
                s.forwards ? double(s.tokens) / double(s.forwards) : 0.0,
                s.seconds > 0 ? double(s.tokens) / s.seconds : 0.0);
  };
  for (const auto& [name, s] : r.tasks) row(name, s);
  if (r.tasks.size() > 1) row("all", r.all);
  for (int64_t i = 0; i < show_failures && i < int64_t(r.failures.size()); ++i) {
    const auto& f = r.failures[size_t(i)];
    std::printf("  wrong [%s] expected %s, got %s\n", f.task.c_str(), f.expected.dump().c_str(),
                nlohmann::json(f.answer).dump().c_str());
  }
  std::fflush(stdout);
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  CLI::App app{
      "Measure answer accuracy on a JSON-lines task file: each line a prompt (or messages, optionally with tools)\n"
      "and the expected answer with a matcher, e.g.\n"
      "  {\"task\": \"add\", \"prompt\": \"What is 2 + 3?\", \"expected\": \"5\", \"match\": \"number\"}\n"
      "Matchers: exact (trimmed text), number (the last number in the answer), json (the first JSON value in\n"
      "the answer, e.g. a tool call), sudoku (expected = the puzzle; the answer must solve it), contains.\n"
      "Reports accuracy per task with a 95% Wilson interval, forwards, tokens per forward and tokens/s.\n"
      "--sweep runs every combination of the listed values of pipeline arguments, e.g.\n"
      "  --sweep threshold=0.5,0.7,0.95 editing_threshold=none,0.5 block_length=8,32\n"
      "(exact=off,on or bf16_activations=off,on switch the arithmetic, SPEC A6). Generation flags, --exact\n"
      "included, set the base arguments.",
      "llada2 eval"};
  std::string model_dir, tasks_file;
  std::vector<std::string> sweeps;
  int64_t limit = 0, show_failures = 0;
  bool json_out = false, quiet = false;
  GenerationFlags flags;
  app.add_option("-m,--model", model_dir, "checkpoint folder (default: the bundled demo model)");
  app.add_option("--tasks", tasks_file, "JSON-lines task file")->required();
  app.add_option("--sweep", sweeps, "KEY=V1,V2,... axes of a grid of pipeline arguments (several allowed)")
      ->expected(1, -1);
  app.add_option("--limit", limit, "use the first N lines of each task (default: all)");
  app.add_option("--show-failures", show_failures, "print up to N wrong answers per run");
  app.add_flag("--json", json_out, "print one JSON object with every run instead of tables");
  app.add_flag("-q,--quiet", quiet, "no progress bar");
  flags.add(app, "2048");
  if (int rc = parse_args(app, argc, argv); rc >= 0) return rc;
  model_dir = resolve_model_dir(model_dir, "eval");

  std::vector<eval::Axis> axes;
  for (const auto& s : sweeps) axes.push_back(eval::parse_axis(s));
  const auto settings = eval::grid(axes);
  const auto items = eval::read_tasks(tasks_file, limit);
  nlohmann::ordered_json base = nlohmann::ordered_json::object();
  flags.apply(app, base);
  // Every setting must be a valid call before the first generation (a typo fails at once).
  for (const auto& s : settings) eval::call_for(base, s);

  Pipeline pipe = Pipeline::from_pretrained(model_dir);
  load_weights(pipe.model(), model_dir, quiet);
  const bool tty = ::isatty(2);
  const int64_t total = int64_t(settings.size() * items.size());
  const auto start = std::chrono::steady_clock::now();
  auto last = start;
  int last_decile = -1;
  nlohmann::json runs = nlohmann::json::array();
  for (size_t si = 0; si < settings.size(); ++si) {
    auto progress = [&](int64_t done, int64_t) {
      if (quiet) return;
      const int64_t all_done = int64_t(si * items.size()) + done;
      const auto now = std::chrono::steady_clock::now();
      const double secs = std::chrono::duration<double>(now - start).count();
      const int pct = int(100 * all_done / total);
      if (tty ? (now - last < std::chrono::milliseconds(200) && all_done != total) : pct / 10 == last_decile) return;
      last = now;
      last_decile = pct / 10;
      const int width = 30, fill = int(width * all_done / total);
      const double eta = all_done ? secs * double(total - all_done) / double(all_done) : 0.0;
      std::fprintf(stderr, "%s[%s%s] %3d%% %lld/%lld answers, run %zu/%zu, %.0f s, ~%.0f s left%s",
                   tty ? "\r\033[K" : "", std::string(size_t(fill), '#').c_str(),
                   std::string(size_t(width - fill), '.').c_str(), pct, (long long)all_done, (long long)total, si + 1,
                   settings.size(), secs, eta, tty ? "" : "\n");
      std::fflush(stderr);
    };
    eval::RunResult r = eval::run(pipe, items, base, settings[si], progress);
    if (tty && !quiet) std::fprintf(stderr, "\r\033[K");
    if (json_out) {
      nlohmann::json tasks = nlohmann::json::object();
      for (const auto& [name, s] : r.tasks) tasks[name] = s.to_json();
      nlohmann::json fails = nlohmann::json::array();
      for (int64_t i = 0; i < show_failures && i < int64_t(r.failures.size()); ++i)
        fails.push_back({{"task", r.failures[size_t(i)].task},
                         {"expected", r.failures[size_t(i)].expected},
                         {"answer", r.failures[size_t(i)].answer}});
      nlohmann::json run = {{"settings", r.settings}, {"tasks", tasks}, {"all", r.all.to_json()}};
      if (show_failures > 0) run["failures"] = fails;
      runs.push_back(std::move(run));
    } else {
      if (si == 0)
        std::printf("model %s, tasks %s (%zu answers per run)\n", model_dir.c_str(), tasks_file.c_str(), items.size());
      print_run(r, show_failures);
    }
  }
  if (json_out)
    std::cout << nlohmann::json{{"model", model_dir}, {"tasks_file", tasks_file}, {"runs", runs}}.dump() << "\n";
  return 0;
}

}  // namespace llada2::cli
