// OpenAI-compatible HTTP server over one Pipeline: /health, /v1/models, /v1/completions and
// /v1/chat/completions (JSON or server-sent events). See docs/server.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "llada2/pipeline.h"
#include "llada2/prefix_cache.h"

namespace llada2 {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                   // 0: an ephemeral port (see Server::port())
  std::string model_id;              // the id of /v1/models; requests naming another model get 404
  std::string api_key;               // non-empty: /v1/* need "Authorization: Bearer <api_key>"
  int parallel = 1;                  // generations running at once
  int queue = 16;                    // requests waiting for a generation slot; more get 429
  size_t max_body_bytes = 1 << 20;   // larger request bodies get 413
  int64_t max_tokens_limit = 4096;   // largest max_tokens a request may ask for
  int64_t default_max_tokens = 256;  // max_tokens when the request has none
  int64_t max_n = 8;                 // largest `n` (rows per prompt)
  int64_t max_batch_rows = 8;        // rows of compatible requests generated together (1: no batching)
  // The cache of conversations' keys and values (exact prefix reuse, llada2/prefix_cache.h): at most
  // this many bytes, least recently used out first; 0 turns it off.
  size_t prefix_cache_bytes = size_t(1) << 30;
  Decoding decoding = Decoding::Auto;  // the decoding rules of a request that names none
  std::function<void()> step_hook;     // optional: called by a worker after each refinement step (tests, tracing)
  // Access log: one line per request (method, path, status, completion tokens, seconds) handed to
  // this function (no trailing newline), as text or as a JSON object; the prompt (the request's
  // `messages` or `prompt`) only with log_prompts. Unset: no log.
  std::function<void(const std::string&)> access_log;
  bool log_json = false;
  bool log_prompts = false;
};

struct ServerCounters {
  int64_t requests = 0;           // generation requests accepted
  int64_t rejected = 0;           // turned away because the queue was full
  int64_t cancelled = 0;          // generations stopped early because the client went away or the server stopped
  int64_t running = 0;            // prompts being generated now
  int64_t queued = 0;             // requests waiting for a worker
  int64_t batches = 0;            // pipeline runs made
  int64_t batched = 0;            // prompts that shared their pipeline run with another one
  PrefixCacheStats prefix_cache;  // all zero when the cache is off
};

class Server {
 public:
  Server(std::shared_ptr<const Pipeline> pipeline, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket; throws InputError when the address cannot be bound.
  void bind();
  // Serves until stop(); binds first when bind() was not called.
  void listen();
  // bind() + listen() on a background thread; returns once the socket accepts connections.
  void start();
  // Stops accepting, cancels running generations, releases queued requests (503) and waits for
  // the handlers to finish. Safe to call from any thread, more than once.
  void stop();

  int port() const;  // the bound port (after bind)
  ServerCounters counters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace llada2
