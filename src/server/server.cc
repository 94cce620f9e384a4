#include "llada2/server.h"

#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <thread>

#include "llada2/error.h"
#include "server/connection.h"
#include "server/request.h"
#include "server/text_stream.h"

namespace llada2 {

using json = nlohmann::ordered_json;
using server::ApiError;
using server::CompletionRequest;

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump(server::error_body(e)), "application/json");
}

// At most `parallel` generations run; up to `queue` more wait; the rest are turned away.
class Admission {
 public:
  enum class Result { Admitted, Full, Closed };
  Admission(int parallel, int queue) : parallel_(std::max(1, parallel)), queue_(std::max(0, queue)) {}

  Result enter() {
    std::unique_lock<std::mutex> lock(mu_);
    if (closed_) return Result::Closed;
    if (active_ < parallel_ && waiting_ == 0) {
      ++active_;
      return Result::Admitted;
    }
    if (waiting_ >= queue_) return Result::Full;
    ++waiting_;
    cv_.wait(lock, [&] { return closed_ || active_ < parallel_; });
    --waiting_;
    if (closed_) {
      cv_.notify_all();
      return Result::Closed;
    }
    ++active_;
    return Result::Admitted;
  }
  void leave() {
    std::lock_guard<std::mutex> lock(mu_);
    --active_;
    cv_.notify_all();
  }
  void close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int parallel_, queue_;
  int active_ = 0, waiting_ = 0;
  bool closed_ = false;
};

// Holds a generation slot for as long as the response that uses it lives.
struct Slot {
  explicit Slot(Admission& a) : admission(a) {}
  ~Slot() { admission.leave(); }
  Admission& admission;
};

struct Choice {
  std::string text;
  std::string finish_reason;
  int64_t completion_tokens = 0;
};

struct Generation {
  std::vector<Choice> choices;
  int64_t prompt_tokens = 0;
  GenerationStats stats;  // summed over the prompts
  bool cancelled = false;
};

// Where a streaming generation sends its pieces; every call returns false once the client is gone.
struct StreamHooks {
  std::function<bool(int64_t index, const std::string& delta)> delta;
  std::function<bool(int64_t index, int64_t block, const std::vector<int64_t>& tokens)> canvas;
  std::function<bool()> alive;
};

int64_t unix_time() { return int64_t(std::time(nullptr)); }

}  // namespace

struct Server::Impl {
  Impl(std::shared_ptr<const Pipeline> p, ServerOptions o)
      : pipe(std::move(p)), opt(std::move(o)), admission(opt.parallel, opt.queue) {}

  std::shared_ptr<const Pipeline> pipe;
  ServerOptions opt;
  httplib::Server http;
  Admission admission;
  std::atomic<bool> stopping{false}, in_listen{false};
  std::atomic<int64_t> requests{0}, rejected{0}, cancelled{0}, next_id{0};
  std::thread thread;
  int port = -1;
  bool routes_set = false;
  int64_t created = unix_time();

  std::string new_id(bool chat) {
    return (chat ? "chatcmpl-" : "cmpl-") + std::to_string(created) + "-" + std::to_string(next_id++);
  }

  void set_routes();
  void handle_completion(const httplib::Request& req, httplib::Response& res, bool chat);
  // `client_alive` (optional) is asked each step; false cancels the generation.
  Generation generate(const CompletionRequest& r, const StreamHooks* hooks, const std::function<bool()>& client_alive);
};

Generation Server::Impl::generate(const CompletionRequest& r, const StreamHooks* hooks,
                                  const std::function<bool()>& client_alive) {
  const Tokenizer& tok = *pipe->tokenizer();
  const std::optional<int64_t> eos = tok.eos_token_id() ? tok.eos_token_id() : pipe->model().config().eos_token_id;
  const int64_t K = r.gen.block_length.value_or(pipe->scheduler_config().block_length);
  Generation g;
  for (size_t p = 0; p < r.prompts.size(); ++p) {
    const std::vector<int64_t>& prompt = r.prompts[p];
    const int64_t P = int64_t(prompt.size());
    const int64_t base = int64_t(p) * r.n;
    g.prompt_tokens += P;  // once per prompt, however many choices share it (as OpenAI counts)
    std::vector<server::TextStream> streams(size_t(r.n), server::TextStream(r.stop));
    bool gone = false;

    // Decodes a row's final tokens (cut after EOS) and sends what became safe to send.
    auto emit = [&](int64_t b, const int64_t* tokens, int64_t n, bool complete) -> std::string {
      std::vector<int64_t> row(tokens, tokens + n);
      if (eos) {
        auto it = std::find(row.begin(), row.end(), *eos);
        if (it != row.end()) {
          row.erase(it + 1, row.end());
          complete = true;
        }
      }
      const std::string text = tok.decode(row, true);
      const std::string delta = streams[size_t(b)].update(text, complete);
      if (hooks && !delta.empty() && !hooks->delta(base + b, delta)) gone = true;
      return text;
    };

    GenerateOptions o = r.gen;
    o.input_ids = IdTensor::from_rows(std::vector<std::vector<int64_t>>(size_t(r.n), prompt));
    o.callback_on_step_end_tensor_inputs = std::vector<std::string>{"block_x"};
    int64_t last_w = 0;
    o.callback_on_step_end = [&](int64_t, int64_t, const std::map<std::string, CallbackTensor>& tensors) {
      CallbackResult res;
      if (stopping) {
        g.cancelled = true;
        res.stop = true;
        return res;
      }
      if (client_alive && !client_alive()) {
        gone = true;
        g.cancelled = true;
        res.stop = true;
        return res;
      }
      // Stop strings are looked for in final blocks as they come, so generation can end early.
      if (!hooks && r.stop.empty()) return res;
      const CallbackTensor& bx = tensors.at("block_x");
      const int64_t B = bx.shape[0], W = bx.shape[1];
      if (W > last_w) {  // the window grew: every cell before the active block is final
        if (last_w > P)
          for (int64_t b = 0; b < B; ++b) emit(b, bx.ints.data() + b * W + P, last_w - P, false);
        last_w = W;
      }
      if (hooks && r.canvas && !gone) {
        const int64_t from = std::max(P, W - K);
        const int64_t block = W / K - 1 - P / K;
        for (int64_t b = 0; b < B && !gone; ++b) {
          std::vector<int64_t> cells(bx.ints.begin() + b * W + from, bx.ints.begin() + (b + 1) * W);
          if (!hooks->canvas(base + b, block, cells)) gone = true;
        }
      }
      if (gone || (hooks && !hooks->alive())) {
        gone = true;
        g.cancelled = true;
        res.stop = true;
      }
      if (std::all_of(streams.begin(), streams.end(), [](const server::TextStream& s) { return s.stopped(); }))
        res.stop = true;
      return res;
    };

    PipelineOutput out = (*pipe)(o);
    g.stats.forwards += out.stats.forwards;
    g.stats.generated_tokens += out.stats.generated_tokens;
    g.stats.seconds += out.stats.seconds;
    if (g.cancelled) return g;

    const int64_t G = out.sequences.cols;
    for (int64_t b = 0; b < r.n; ++b) {
      const int64_t* row = out.sequences.row(b);
      const int64_t* end = eos ? std::find(row, row + G, *eos) : row + G;
      const bool eos_ended = end != row + G;
      const std::string text = emit(b, row, G, true);
      Choice c;
      const bool stop_cut = streams[size_t(b)].stopped();
      c.text = hooks || stop_cut ? streams[size_t(b)].sent() : text;
      c.finish_reason = eos_ended || stop_cut ? "stop" : "length";
      c.completion_tokens = stop_cut ? int64_t(tok.encode(c.text, false).size()) : int64_t(end - row);
      g.choices.push_back(std::move(c));
    }
    if (gone) {
      g.cancelled = true;
      return g;
    }
  }
  return g;
}

namespace {

json usage_json(const Generation& g) {
  int64_t completion = 0;
  for (const auto& c : g.choices) completion += c.completion_tokens;
  return json{{"prompt_tokens", g.prompt_tokens},
              {"completion_tokens", completion},
              {"total_tokens", g.prompt_tokens + completion}};
}

json diffusion_json(const Generation& g) {
  return json{{"forwards", g.stats.forwards},
              {"tokens_per_forward", g.stats.tokens_per_forward()},
              {"seconds", g.stats.seconds}};
}

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

}  // namespace

void Server::Impl::handle_completion(const httplib::Request& req, httplib::Response& res, bool chat) {
  json body;
  try {
    body = json::parse(req.body);
  } catch (const json::parse_error& e) {
    throw server::invalid_request(std::string("the request body is not valid JSON: ") + e.what());
  }
  auto r = std::make_shared<CompletionRequest>(server::parse_completion_request(body, chat, *pipe, opt));

  switch (admission.enter()) {
    case Admission::Result::Full:
      ++rejected;
      throw ApiError(429, "The server is busy: too many requests are waiting. Retry later.", "rate_limit_error", "",
                     "queue_full");
    case Admission::Result::Closed:
      throw ApiError(503, "The server is shutting down.", "server_error", "", "shutting_down");
    case Admission::Result::Admitted:
      break;
  }
  auto slot = std::make_shared<Slot>(admission);
  ++requests;
  const std::string id = new_id(chat);
  const int64_t created_at = unix_time();

  if (!r->stream) {
    Generation g;
    try {
      // httplib keeps this connection's socket open while the handler runs.
      const int fd = server::find_connection_socket(req.remote_addr, req.remote_port, port);
      std::function<bool()> client_alive;
      if (fd >= 0) client_alive = [fd] { return !server::peer_closed(fd); };
      g = generate(*r, nullptr, client_alive);
    } catch (const InputError& e) {
      throw server::invalid_request(e.what());
    }
    if (g.cancelled) {
      ++cancelled;
      throw ApiError(503, "The server is shutting down.", "server_error", "", "shutting_down");
    }
    json choices = json::array();
    for (size_t i = 0; i < g.choices.size(); ++i) {
      const Choice& c = g.choices[i];
      json choice = {{"index", i}};
      if (chat)
        choice["message"] = json{{"role", "assistant"}, {"content", c.text}};
      else
        choice["text"] = c.text, choice["logprobs"] = nullptr;
      choice["finish_reason"] = c.finish_reason;
      choices.push_back(std::move(choice));
    }
    json out = {{"id", id},
                {"object", chat ? "chat.completion" : "text_completion"},
                {"created", created_at},
                {"model", opt.model_id},
                {"choices", std::move(choices)},
                {"usage", usage_json(g)},
                {"diffusion", diffusion_json(g)}};
    res.set_content(dump(out), "application/json");
    return;
  }

  // Streaming: the generation runs in the content provider, on this connection's thread.
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [this, r, slot, id, created_at, chat](size_t,
                                                                                               httplib::DataSink& sink) {
    bool gone = false;
    auto write = [&](const std::string& s) {
      if (!gone && !sink.write(s.data(), s.size())) gone = true;
      return !gone;
    };
    auto chunk = [&](json choices) {
      return json{{"id", id},
                  {"object", chat ? "chat.completion.chunk" : "text_completion"},
                  {"created", created_at},
                  {"model", opt.model_id},
                  {"choices", std::move(choices)}};
    };
    auto choice_delta = [&](int64_t index, const std::string& text) {
      json c = {{"index", index}};
      if (chat)
        c["delta"] = json{{"content", text}};
      else
        c["text"] = text, c["logprobs"] = nullptr;
      c["finish_reason"] = nullptr;
      return c;
    };
    const int64_t rows = int64_t(r->prompts.size()) * r->n;
    if (chat)
      for (int64_t i = 0; i < rows; ++i)
        write(sse(chunk(json::array({json{{"index", i},
                                          {"delta", json{{"role", "assistant"}, {"content", ""}}},
                                          {"finish_reason", nullptr}}}))));
    StreamHooks hooks;
    hooks.delta = [&](int64_t index, const std::string& text) {
      return write(sse(chunk(json::array({choice_delta(index, text)}))));
    };
    const Tokenizer& tok = *pipe->tokenizer();
    hooks.canvas = [&](int64_t index, int64_t block, const std::vector<int64_t>& tokens) {
      json ev = {{"index", index}, {"block", block}, {"tokens", tokens}, {"text", tok.decode(tokens, false)}};
      return write("event: canvas\ndata: " + dump(ev) + "\n\n");
    };
    hooks.alive = [&] { return !gone && sink.is_writable(); };
    try {
      Generation g = generate(*r, &hooks, nullptr);
      if (g.cancelled) {
        ++cancelled;
        if (!gone)
          write(sse(server::error_body(ApiError(503, "The server is shutting down.", "server_error", "", "shutting_down"))));
      } else {
        for (size_t i = 0; i < g.choices.size(); ++i) {
          json c = {{"index", i}};
          if (chat)
            c["delta"] = json::object();
          else
            c["text"] = "", c["logprobs"] = nullptr;
          c["finish_reason"] = g.choices[i].finish_reason;
          json ch = chunk(json::array({c}));
          if (i + 1 == g.choices.size()) {
            ch["usage"] = usage_json(g);
            ch["diffusion"] = diffusion_json(g);
          }
          write(sse(ch));
        }
      }
    } catch (const InputError& e) {
      write(sse(server::error_body(server::invalid_request(e.what()))));
    } catch (const std::exception& e) {
      write(sse(server::error_body(ApiError(500, std::string("internal error: ") + e.what(), "server_error"))));
    }
    write("data: [DONE]\n\n");
    if (!gone) sink.done();
    return !gone;
  });
}

void Server::Impl::set_routes() {
  if (routes_set) return;
  routes_set = true;
  const size_t threads = size_t(std::clamp(opt.parallel + opt.queue + 4, 4, 512));
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(opt.max_body_bytes);
  http.set_keep_alive_timeout(2);

  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (opt.api_key.empty() || req.path.rfind("/v1/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + opt.api_key)
      return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, ApiError(401, "Invalid or missing API key: send \"Authorization: Bearer <key>\".",
                             "invalid_request_error", "", "invalid_api_key"));
    return httplib::Server::HandlerResponse::Handled;
  });
  // Fills the body of errors httplib makes itself (no route, body too large, ...).
  http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                     httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    const int status = res.status;
    if (status == 404)
      send_error(res, ApiError(404, "Unknown route " + req.method + " " + req.path, "invalid_request_error", "",
                               "unknown_route"));
    else if (status == 413)
      send_error(res, ApiError(413, "The request body is larger than " + std::to_string(opt.max_body_bytes) +
                                        " bytes.", "invalid_request_error", "", "request_too_large"));
    else
      send_error(res, ApiError(status, "HTTP error " + std::to_string(status), status >= 500 ? "server_error"
                                                                                             : "invalid_request_error"));
    res.status = status;
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const InputError& e) {
      send_error(res, server::invalid_request(e.what()));
    } catch (const std::bad_alloc&) {
      send_error(res, ApiError(500, "out of memory", "server_error"));
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, std::string("internal error: ") + e.what(), "server_error"));
    } catch (...) {
      send_error(res, ApiError(500, "internal error", "server_error"));
    }
  });

  http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  auto model_json = [this] {
    return json{{"id", opt.model_id}, {"object", "model"}, {"created", created}, {"owned_by", "llada2"}};
  };
  http.Get("/v1/models", [model_json](const httplib::Request&, httplib::Response& res) {
    res.set_content(dump(json{{"object", "list"}, {"data", json::array({model_json()})}}), "application/json");
  });
  http.Get("/v1/models/(.+)", [this, model_json](const httplib::Request& req, httplib::Response& res) {
    if (req.matches[1] != opt.model_id)
      throw ApiError(404, "The model `" + std::string(req.matches[1]) + "` does not exist.", "invalid_request_error",
                     "model", "model_not_found");
    res.set_content(dump(model_json()), "application/json");
  });
  http.Post("/v1/completions",
            [this](const httplib::Request& req, httplib::Response& res) { handle_completion(req, res, false); });
  http.Post("/v1/chat/completions",
            [this](const httplib::Request& req, httplib::Response& res) { handle_completion(req, res, true); });
}

Server::Server(std::shared_ptr<const Pipeline> pipeline, ServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(pipeline), std::move(options))) {
  if (impl_->opt.model_id.empty()) impl_->opt.model_id = "llada2";
}

Server::~Server() { stop(); }

void Server::bind() {
  if (impl_->port >= 0) return;
  // A client that goes away mid-stream must fail the write, not kill the process.
  ::signal(SIGPIPE, SIG_IGN);
  impl_->set_routes();
  const int port = impl_->opt.port == 0 ? impl_->http.bind_to_any_port(impl_->opt.host)
                                        : (impl_->http.bind_to_port(impl_->opt.host, impl_->opt.port)
                                               ? impl_->opt.port
                                               : -1);
  if (port < 0)
    throw InputError("cannot listen on " + impl_->opt.host + ":" + std::to_string(impl_->opt.port) +
                     " (address in use or not available)");
  impl_->port = port;
}

void Server::listen() {
  bind();
  if (impl_->stopping) return;
  impl_->in_listen = true;
  impl_->http.listen_after_bind();
  impl_->in_listen = false;
}

void Server::start() {
  bind();
  if (impl_->stopping) return;
  impl_->in_listen = true;
  impl_->thread = std::thread([this] {
    impl_->http.listen_after_bind();
    impl_->in_listen = false;
  });
  while (impl_->in_listen && !impl_->http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void Server::stop() {
  impl_->stopping = true;
  impl_->admission.close();
  // httplib's stop() does nothing before its accept loop runs.
  while (impl_->in_listen && !impl_->http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  impl_->http.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int Server::port() const { return impl_->port; }

ServerCounters Server::counters() const {
  return ServerCounters{impl_->requests.load(), impl_->rejected.load(), impl_->cancelled.load()};
}

}  // namespace llada2
