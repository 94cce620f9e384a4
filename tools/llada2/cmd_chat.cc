// llada2 chat: a multi-turn conversation in the terminal through the checkpoint's chat template.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <string>

#include "cli_util.h"
#include "commands.h"
#include "default_model.h"
#include "gen_flags.h"
#include "live_view.h"
#include "llada2/call_json.h"
#include "llada2/error.h"
#include "llada2/pipeline.h"
#include "progress.h"

namespace llada2::cli {

namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_interrupt(int) { g_interrupted.store(true); }

// A line is a command when it starts with '/' and a word of letters ("/reset"); "/etc/hosts?" is a message.
bool is_command(const std::string& line) {
  if (line.size() < 2 || line[0] != '/') return false;
  size_t end = line.find(' ');
  for (size_t i = 1; i < std::min(end, line.size()); ++i)
    if (!std::isalpha(static_cast<unsigned char>(line[i]))) return false;
  return true;
}

}  // namespace

int cmd_chat(int argc, char** argv) {
  CLI::App app{
      "Chat with a LLaDA2 checkpoint in the terminal. Each turn is generated from the whole conversation,\n"
      "rendered with the checkpoint's chat template. Commands: /reset (forget the conversation), /quit, /help.\n"
      "Ctrl-C stops the answer being generated; Ctrl-C at the prompt (or Ctrl-D) leaves.\n"
      "On a terminal the diffusion is shown live (masked cells as ░ filling in, edits in place).",
      "llada2 chat"};
  std::string model_dir, system;
  bool no_visual = false;
  int frame_ms = 60;
  GenerationFlags flags;
  app.add_option("-m,--model", model_dir,
                 "checkpoint folder with tokenizer.json and a chat template (default: the bundled demo model)");
  app.add_option("--system", system, "a system message placed before the conversation");
  app.add_flag("--no-visual", no_visual, "print each answer when it is done instead of the live view");
  bool no_reuse = false;
  app.add_flag("--no-prefix-reuse", no_reuse,
               "compute every turn's whole prompt; by default a turn starts from the conversation's cached "
               "keys and values (block_causal attention; the answers are the same, token for token)");
  app.add_option("--frame-ms", frame_ms,
                 "live view: show each refinement step at least this long (default 60; 0: full speed)")
      ->check(CLI::Range(0, 10000));
  flags.add(app, "512");
  if (int rc = parse_args(app, argc, argv); rc >= 0) return rc;
  model_dir = resolve_model_dir(model_dir, "chat");

  if (app.count("--output-type"))
    throw InputError("--output-type is not a chat option: chat prints text (generate --output-type seq prints ids)");
  nlohmann::ordered_json call = {{"gen_length", 512}};
  flags.apply(app, call);
  const bool tty_out = ::isatty(1), tty_in = ::isatty(0);
  Pipeline pipe = Pipeline::from_pretrained(model_dir);
  if (!pipe.tokenizer() || !pipe.chat_template())
    throw InputError(
        model_dir +
        ": chat needs tokenizer.json and a chat template (tokenizer_config.json chat_template or chat_template.jinja)");
  load_weights(pipe.model(), model_dir);
  if (tty_out) std::fprintf(stderr, "ready: type a message, /reset to start over, /quit to leave\n");
  // Ctrl-C: stops an answer within one refinement step; at the prompt it ends the chat. Not restarted,
  // so that a read waiting at the prompt returns.
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);

  nlohmann::ordered_json history = nlohmann::ordered_json::array();
  std::shared_ptr<const CachedPrefix> prefix;  // the keys and values of the conversation so far
  auto reset = [&] {
    prefix.reset();
    history = nlohmann::ordered_json::array();
    if (!system.empty()) history.push_back({{"role", "system"}, {"content", system}});
  };
  reset();
  std::string line;
  for (;;) {
    if (tty_in) std::fputs("> ", stdout), std::fflush(stdout);
    // Wait for a line or for Ctrl-C. Polling (not a bare blocking read) also catches a Ctrl-C that lands
    // just before the read would start, which the read itself would never see.
    bool interrupted = false;
    while (tty_in && !(interrupted = g_interrupted.load())) {
      struct pollfd p {
        0, POLLIN, 0
      };
      if (::poll(&p, 1, 100) > 0) break;
    }
    if (interrupted || !std::getline(std::cin, line)) {
      if (tty_in) std::fputs("\n", stdout);
      break;
    }
    if (line.empty()) continue;
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      reset();
      std::puts("(conversation cleared)");
      continue;
    }
    if (line == "/help") {
      std::puts(
          "/reset  forget the conversation\n/quit   leave (also Ctrl-D, or Ctrl-C at the prompt)\n"
          "Ctrl-C while an answer is generated stops it.");
      continue;
    }
    if (is_command(line)) {
      std::printf("unknown command %s; /help lists the commands\n", line.substr(0, line.find(' ')).c_str());
      continue;
    }
    history.push_back({{"role", "user"}, {"content", line}});
    CallSpec spec = parse_call_json(call);
    spec.options.messages = history;
    if (!no_reuse) {
      spec.options.keep_prefixes = true;
      if (prefix) spec.options.reuse_prefixes = {prefix};
    }
    std::unique_ptr<LiveView> view;
    const bool status = !(tty_out && !no_visual) && ::isatty(2);
    PipelineOutput out;
    try {
      ResolvedCall run = pipe.resolve(spec.options);
      if (tty_out && !no_visual) {
        view = std::make_unique<LiveView>(*pipe.tokenizer(), run, stdout, frame_ms);
        view->attach(run.options);
      } else if (status) {
        attach_status_line(run);
      }
      auto inner = run.options.callback_on_step_end;
      run.options.callback_on_step_end = [inner](int64_t step, int64_t t,
                                                 const std::map<std::string, CallbackTensor>& tensors) {
        CallbackResult r = inner ? inner(step, t, tensors) : CallbackResult{};
        if (g_interrupted.load()) r.stop = true;
        return r;
      };
      out = pipe(run);
    } catch (const InputError& e) {
      if (status) clear_status_line();
      history.erase(history.end() - 1);
      std::fprintf(stderr, "error: %s\n", e.what());
      continue;
    }
    if (status) clear_status_line();
    const std::string answer = out.texts && !out.texts->empty() ? (*out.texts)[0] : std::string();
    if (view)
      view->finish(out);
    else
      std::printf("%s\n", answer.c_str());
    std::fflush(stdout);
    if (g_interrupted.exchange(false)) std::fprintf(stderr, "(stopped)\n");
    history.push_back({{"role", "assistant"}, {"content", answer}});
    if (!out.prefixes.empty() && out.prefixes[0]) prefix = out.prefixes[0];
    if (tty_out) {
      std::fprintf(stderr, "[%lld forwards, %.2f s, %.2f tokens/s", (long long)out.stats.forwards, out.stats.seconds,
                   out.stats.tokens_per_second());
      if (out.stats.reused_positions > 0)
        std::fprintf(stderr, ", %lld prompt tokens reused", (long long)out.stats.reused_positions);
      std::fputs("]\n", stderr);
    }
  }
  return 0;
}

}  // namespace llada2::cli
