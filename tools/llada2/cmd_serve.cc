// llada2 serve: the OpenAI-compatible HTTP server (src/server, docs/server.md).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli_util.h"
#include "commands.h"
#include "default_model.h"
#include "llada2/runtime.h"
#include "llada2/server.h"
#include "progress.h"

namespace llada2::cli {

int cmd_serve(int argc, char** argv) {
  CLI::App app{"Serve the model over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions).",
               "llada2 serve"};
  std::string model_dir;
  ServerOptions o;
  int threads = 0;
  app.add_option("-m,--model", model_dir,
                 "checkpoint folder (config.json + *.safetensors + tokenizer.json; default: the bundled demo model)");
  app.add_option("--host", o.host, "address to listen on (default 127.0.0.1)");
  app.add_option("--port", o.port, "TCP port (default 8080; 0 picks a free one)")->check(CLI::Range(0, 65535));
  app.add_option("--api-key", o.api_key, "require \"Authorization: Bearer KEY\" on /v1/*");
  app.add_option("--parallel", o.parallel, "generations running at once (default 1)")->check(CLI::Range(1, 256));
  app.add_option("--queue", o.queue, "requests waiting for a generation; more get 429 (default 16)")
      ->check(CLI::Range(0, 4096));
  app.add_option("--max-batch", o.max_batch_rows,
                 "rows of waiting requests with the same settings and prompt length generated together in one run "
                 "(default 8; 1 = no batching). Batched rows compute exactly what they would alone.")
      ->check(CLI::Range(int64_t(1), int64_t(256)));
  std::string decoding = "auto";
  app.add_option("--decoding", decoding,
                 "decoding rules of a request that names none (its `decoding` field): auto (default: llada2.2 for a "
                 "checkpoint whose config.json has the LLaDA2.2 fields, else llada2.1), llada2.1 or llada2.2");
  app.add_option("--max-body-bytes", o.max_body_bytes, "largest request body; larger get 413 (default 1 MiB)");
  app.add_option("--max-tokens-limit", o.max_tokens_limit, "largest max_tokens a request may ask for (default 4096)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  app.add_option("--default-max-tokens", o.default_max_tokens, "max_tokens when a request has none (default 256)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  app.add_option("-t,--threads", threads, "worker threads of the model (default: all cores)")
      ->check(CLI::Range(1, 4096));
  int64_t prefix_cache_mb = int64_t(o.prefix_cache_bytes >> 20);
  app.add_option("--prefix-cache-mb", prefix_cache_mb,
                 "memory for the keys and values of recent conversations (default 1024; 0 = off): a request whose "
                 "prompt starts with a cached conversation computes only what is new, with the same answer token "
                 "for token (block_causal attention). Least recently used conversations go first.")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 30));
  std::string log_format = "text";
  bool no_access_log = false;
  app.add_option("--log-format", log_format,
                 "access log on stderr, one line per request (method, path, status, tokens, seconds): text (default) "
                 "or json")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_flag("--log-prompts", o.log_prompts,
               "add each request's messages / prompt to its access log line (off: "
               "prompts are never logged)");
  app.add_flag("--no-access-log", no_access_log, "no access log");
  ActivationFlags activations;
  activations.add(app);
  if (int rc = parse_args(app, argc, argv); rc >= 0) return rc;
  model_dir = resolve_model_dir(model_dir, "serve");
  o.decoding = parse_decoding(decoding);
  o.log_json = log_format == "json";
  o.prefix_cache_bytes = size_t(prefix_cache_mb) << 20;
  if (!no_access_log) o.access_log = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  if (o.default_max_tokens > o.max_tokens_limit) o.default_max_tokens = o.max_tokens_limit;
  if (threads > 0) runtime::set_threads(threads);
  activations.apply(app);

  // SIGINT/SIGTERM go to one thread that stops the server; the others never see them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::filesystem::path dir(model_dir);
  o.model_id = (dir.has_filename() ? dir : dir.parent_path()).filename().string();
  auto pipe = std::make_shared<const Pipeline>(Pipeline::from_pretrained(model_dir));
  load_weights(pipe->model(), model_dir);
  if (!pipe->tokenizer()) throw InputError(model_dir + ": no tokenizer.json, so the server cannot take text");
  Server server(pipe, o);
  server.bind();
  std::fprintf(stderr, "llada2 serve: model '%s' on http://%s:%d/v1 (parallel %d, queue %d, batch %lld rows)\n",
               o.model_id.c_str(), o.host.c_str(), server.port(), o.parallel, o.queue, (long long)o.max_batch_rows);
  std::fprintf(stderr, "llada2 serve: chat page on http://%s:%d/ (open it in a browser)\n", o.host.c_str(),
               server.port());
  std::atomic<bool> signalled{false};
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (!signalled.exchange(true))
      std::fprintf(stderr, "llada2 serve: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server.stop();
  });
  server.listen();
  const bool clean = signalled.load();
  // The accept loop failed on its own: wake the stopper (the signal is blocked, so it stays pending for it).
  if (!clean) {
    signalled = true;
    kill(getpid(), SIGTERM);
  }
  stopper.join();
  std::fprintf(stderr, clean ? "llada2 serve: stopped\n" : "llada2 serve: the listening socket failed\n");
  return clean ? 0 : 1;
}

}  // namespace llada2::cli
