#include "llada2/server.h"

#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <thread>

#include "llada2/crash.h"
#include "llada2/error.h"
#include "llada2/runtime.h"
#include "llada2/version.h"
#include "server/batcher.h"
#include "server/connection.h"
#include "server/request.h"
#include "server/text_stream.h"
#include "server/tool_calls.h"
#include "server/web_page.h"

namespace llada2 {

using json = nlohmann::ordered_json;
using server::ApiError;
using server::Choice;
using server::CompletionRequest;
using server::Job;

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump(server::error_body(e)), "application/json");
}

int64_t unix_time() { return int64_t(std::time(nullptr)); }

// What the access log line of the request on this thread needs (httplib runs a request, its streamed
// body included, on one worker thread).
struct RequestLog {
  std::chrono::steady_clock::time_point start;
  int64_t tokens = -1;  // completion tokens, when the request generated
};
thread_local RequestLog t_request;

// The methods each route answers, for 405 replies.
const char* allowed_methods(const std::string& path) {
  if (path == "/health" || path == "/v1/models" || path.rfind("/v1/models/", 0) == 0) return "GET";
  if (path == "/" || path.rfind("/static/", 0) == 0) return "GET";
  if (path == "/v1/completions" || path == "/v1/chat/completions") return "POST";
  return nullptr;
}

}  // namespace

struct Server::Impl {
  Impl(std::shared_ptr<const Pipeline> p, ServerOptions o)
      : pipe(std::move(p)),
        opt(std::move(o)),
        prefix_cache(opt.prefix_cache_bytes > 0 ? std::make_shared<PrefixCache>(opt.prefix_cache_bytes) : nullptr),
        batcher(pipe, opt.parallel, opt.queue, opt.max_batch_rows, opt.step_hook, prefix_cache) {}

  std::shared_ptr<const Pipeline> pipe;
  ServerOptions opt;
  httplib::Server http;
  std::shared_ptr<PrefixCache> prefix_cache;
  server::Batcher batcher;
  std::atomic<bool> stopping{false}, in_listen{false};
  std::atomic<int64_t> requests{0}, rejected{0}, cancelled{0}, next_id{0};
  std::thread thread;
  int port = -1;
  bool routes_set = false;
  int64_t created = unix_time();

  std::string new_id(bool chat) {
    return (chat ? "chatcmpl-" : "cmpl-") + std::to_string(created) + "-" + std::to_string(next_id++);
  }

  ServerCounters counters() const {
    const server::BatcherCounters b = batcher.counters();
    ServerCounters c;
    c.requests = requests.load();
    c.rejected = rejected.load();
    c.cancelled = cancelled.load();
    c.running = b.running;
    c.queued = b.queued;
    c.batches = b.batches;
    c.batched = b.batched;
    if (prefix_cache) c.prefix_cache = prefix_cache->stats();
    return c;
  }
  std::unique_ptr<server::WebPage> web_page;  // made by set_routes

  void set_routes();
  nlohmann::ordered_json web_config() const;
  void handle_completion(const httplib::Request& req, httplib::Response& res, bool chat);
};

namespace {

json usage_json(const Job& g) {
  int64_t completion = 0;
  for (const auto& c : g.choices()) completion += c.completion_tokens;
  t_request.tokens = completion;  // for the access log
  return json{{"prompt_tokens", g.prompt_tokens()},
              {"completion_tokens", completion},
              {"total_tokens", g.prompt_tokens() + completion}};
}

json diffusion_json(const Job& g) {
  return json{{"forwards", g.stats().forwards},
              {"tokens_per_forward", g.stats().tokens_per_forward()},
              {"seconds", g.stats().seconds},
              {"batch_rows", g.batched_rows()},
              {"decoding", decoding_name(g.decoding())}};
}

ApiError shutting_down() { return ApiError(503, "The server is shutting down.", "server_error", "", "shutting_down"); }

// A job that ended with an error from the pipeline: the error the client gets.
ApiError job_error(std::exception_ptr ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const NumericError& e) {  // the model's fault, not the request's
    return ApiError(500, e.what(), "server_error");
  } catch (const InputError& e) {
    return server::invalid_request(e.what());
  } catch (const std::exception& e) {
    return ApiError(500, std::string("internal error: ") + e.what(), "server_error");
  } catch (...) {
    return ApiError(500, "internal error", "server_error");
  }
}

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

// message.tool_calls, or (streaming) the delta.tool_calls entries with their index.
json tool_calls_json(const std::vector<server::ToolCall>& calls, bool with_index) {
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    json c;
    if (with_index) c["index"] = i;
    c["id"] = calls[i].id;
    c["type"] = "function";
    c["function"] = json{{"name", calls[i].name}, {"arguments", calls[i].arguments}};
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace

void Server::Impl::handle_completion(const httplib::Request& req, httplib::Response& res, bool chat) {
  const std::string id = new_id(chat);
  const CrashContext crash_context(id);
  auto job =
      std::make_shared<Job>(server::parse_completion_request(server::parse_request_body(req.body), chat, *pipe, opt));
  job->id = id;
  const bool stream = job->request().stream;
  const int64_t created_at = unix_time();
  auto chunk = [this, id, created_at, chat](json choices) {
    return json{{"id", id},
                {"object", chat ? "chat.completion.chunk" : "text_completion"},
                {"created", created_at},
                {"model", opt.model_id},
                {"choices", std::move(choices)}};
  };
  // Streamed replies that may hold tool calls: per choice, the reply so far (a forced call's opening
  // first) and how much of it went out as content; text from a "<tool_call>" on waits for the end.
  struct ToolStream {
    std::vector<std::string> reply;
    std::vector<size_t> sent;
  };
  auto tool_stream = std::make_shared<ToolStream>();
  const bool hold_calls = stream && chat && job->request().parse_tool_calls;
  if (hold_calls) {
    const size_t rows = job->request().prompts.size() * size_t(job->request().n);
    tool_stream->reply.assign(rows, job->request().forced_prefix);
    tool_stream->sent.assign(rows, 0);
  }
  if (stream) {
    job->format_delta = [chunk, chat, hold_calls, tool_stream](int64_t index, const std::string& delta) {
      std::string text = delta;
      if (hold_calls) {
        std::string& reply = tool_stream->reply[size_t(index)];
        size_t& sent = tool_stream->sent[size_t(index)];
        reply += delta;
        const size_t ready = server::content_before_tool_call(reply);
        text = ready > sent ? reply.substr(sent, ready - sent) : std::string();
        sent = std::max(sent, ready);
        if (text.empty()) return std::string();
      }
      json c = {{"index", index}};
      if (chat)
        c["delta"] = json{{"content", text}};
      else
        c["text"] = text, c["logprobs"] = nullptr;
      c["finish_reason"] = nullptr;
      return sse(chunk(json::array({std::move(c)})));
    };
    const Tokenizer* tok = pipe->tokenizer();
    job->format_canvas = [tok](int64_t index, int64_t block, const std::vector<int64_t>& tokens, int64_t mask_id,
                               const BlockEdits* edits) {
      // Each cell decoded alone (null: still masked), so a client can draw the cells one by one.
      json cells = json::array();
      for (int64_t t : tokens) cells.push_back(t == mask_id ? json(nullptr) : json(tok->decode({t}, false)));
      json ev = {{"index", index},
                 {"block", block},
                 {"tokens", tokens},
                 {"text", tok->decode(tokens, false)},
                 {"cells", std::move(cells)}};
      if (edits) {
        ev["deleted"] = edits->deleted;
        ev["inserted"] = edits->inserted;
      }
      return "event: canvas\ndata: " + dump(ev) + "\n\n";
    };
  }

  switch (batcher.submit(job)) {
    case server::Batcher::Submit::Full:
      ++rejected;
      throw ApiError(429, "The server is busy: too many requests are waiting. Retry later.", "rate_limit_error", "",
                     "queue_full");
    case server::Batcher::Submit::Closed: throw shutting_down();
    case server::Batcher::Submit::Accepted: break;
  }
  ++requests;

  if (!stream) {
    // httplib keeps this connection's socket open while the handler runs; a client that hangs up
    // (while queued or while its generation runs) withdraws the job.
    const int fd = server::find_connection_socket(req.remote_addr, req.remote_port, port);
    while (!job->wait(50)) {
      if (fd >= 0 && server::peer_closed(fd)) {
        batcher.withdraw(job);
        ++cancelled;
        throw shutting_down();  // nobody reads it
      }
    }
    if (job->error() || job->cancelled()) batcher.withdraw(job);  // a multi-prompt job's other units
    if (job->error()) throw job_error(job->error());
    if (job->cancelled()) {
      ++cancelled;
      throw shutting_down();
    }
    json choices = json::array();
    for (size_t i = 0; i < job->choices().size(); ++i) {
      const Choice& c = job->choices()[i];
      json choice = {{"index", i}};
      choice["finish_reason"] = c.finish_reason;
      if (chat) {
        choice["message"] = json{{"role", "assistant"}, {"content", c.text}};
        if (job->request().parse_tool_calls) {
          const std::string reply = job->request().forced_prefix + c.text;
          if (auto parsed = server::parse_tool_calls(reply, job->request().tools, server::new_tool_call_id)) {
            choice["message"]["content"] = parsed->content ? json(*parsed->content) : json(nullptr);
            choice["message"]["tool_calls"] = tool_calls_json(parsed->calls, false);
            choice["finish_reason"] = "tool_calls";
          } else {
            choice["message"]["content"] = reply;
          }
        }
      } else {
        choice["text"] = c.text, choice["logprobs"] = nullptr;
      }
      choices.push_back(std::move(choice));
    }
    json out = {{"id", id},
                {"object", chat ? "chat.completion" : "text_completion"},
                {"created", created_at},
                {"model", opt.model_id},
                {"choices", std::move(choices)},
                {"usage", usage_json(*job)},
                {"diffusion", diffusion_json(*job)}};
    res.set_content(dump(out), "application/json");
    return;
  }

  // Streaming: the workers queue the events; this connection's thread writes them.
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, job, chunk, chat, hold_calls, tool_stream](size_t, httplib::DataSink& sink) {
        bool gone = false;
        auto write = [&](const std::string& s) {
          if (!gone && !sink.write(s.data(), s.size())) gone = true;
          return !gone;
        };
        const CompletionRequest& r = job->request();
        const int64_t rows = int64_t(r.prompts.size()) * r.n;
        if (chat)
          for (int64_t i = 0; i < rows; ++i)
            write(sse(chunk(json::array({json{
                {"index", i}, {"delta", json{{"role", "assistant"}, {"content", ""}}}, {"finish_reason", nullptr}}}))));
        std::vector<std::string> events;
        for (bool done = false; !done && !gone;) {
          done = job->take_events(&events, 50);
          for (const std::string& e : events) write(e);
          events.clear();
          if (!gone && !sink.is_writable()) gone = true;
        }
        if (gone) {
          batcher.withdraw(job);
          ++cancelled;
          return false;
        }
        if (job->error() || job->cancelled()) batcher.withdraw(job);  // a multi-prompt job's other units
        if (job->error()) {
          write(sse(server::error_body(job_error(job->error()))));
        } else if (job->cancelled()) {
          ++cancelled;
          write(sse(server::error_body(shutting_down())));
        } else {
          for (size_t i = 0; i < job->choices().size(); ++i) {
            json c = {{"index", i}};
            if (chat)
              c["delta"] = json::object();
            else
              c["text"] = "", c["logprobs"] = nullptr;
            c["finish_reason"] = job->choices()[i].finish_reason;
            if (hold_calls) {
              // What was held back: the calls, or (when they do not parse) the rest of the text.
              const std::string& reply = tool_stream->reply[i];
              auto parsed = server::parse_tool_calls(reply, job->request().tools, server::new_tool_call_id);
              json held = {{"index", i}, {"finish_reason", nullptr}};
              if (parsed) {
                held["delta"] = json{{"tool_calls", tool_calls_json(parsed->calls, true)}};
                c["finish_reason"] = "tool_calls";
              } else {
                held["delta"] = json{{"content", reply.substr(tool_stream->sent[i])}};
              }
              if (parsed || tool_stream->sent[i] < reply.size()) write(sse(chunk(json::array({held}))));
            }
            json ch = chunk(json::array({c}));
            if (i + 1 == job->choices().size() && !r.usage_chunk) {
              ch["usage"] = usage_json(*job);
              ch["diffusion"] = diffusion_json(*job);
            }
            write(sse(ch));
          }
          if (r.usage_chunk) {  // as OpenAI: a last chunk with no choices carries the usage
            json ch = chunk(json::array());
            ch["usage"] = usage_json(*job);
            ch["diffusion"] = diffusion_json(*job);
            write(sse(ch));
          }
        }
        write("data: [DONE]\n\n");
        if (!gone) sink.done();
        return !gone;
      },
      // Runs when the response ends, also when the provider never ran (the client left before the
      // headers went out): a job nobody will read stops.
      [this, job](bool) { batcher.withdraw(job); });
}

// What the chat page shows as the settings a request without them gets.
json Server::Impl::web_config() const {
  const GenerateOptions g;
  return json{{"defaults",
               {{"max_tokens", opt.default_max_tokens},
                {"block_length", g.block_length.value_or(pipe->scheduler_config().block_length)},
                {"steps", g.num_inference_steps.value_or(pipe->scheduler_config().num_inference_steps)},
                {"threshold", g.threshold.value_or(pipe->scheduler_config().threshold)},
                {"editing_threshold", g.editing_threshold ? json(*g.editing_threshold) : json(nullptr)},
                {"temperature", g.temperature},
                {"attention", attention_mode_name(g.attention)}}},
              {"limits", {{"max_tokens", opt.max_tokens_limit}}},
              {"api_key", !opt.api_key.empty()}};
}

void Server::Impl::set_routes() {
  if (routes_set) return;
  routes_set = true;
  const size_t threads = size_t(std::clamp(opt.parallel + opt.queue + 4, 4, 512));
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(opt.max_body_bytes);
  http.set_keep_alive_timeout(2);

  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    t_request = RequestLog{std::chrono::steady_clock::now(), -1};
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
    int status = res.status;
    const char* allow = status == 404 ? allowed_methods(req.path) : nullptr;
    if (allow) {
      status = 405;
      res.set_header("Allow", allow);
      send_error(res, ApiError(405, "Method " + req.method + " is not allowed on " + req.path + "; use " + allow + ".",
                               "invalid_request_error", "", "method_not_allowed"));
    } else if (status == 404)
      send_error(res, ApiError(404, "Unknown route " + req.method + " " + req.path, "invalid_request_error", "",
                               "unknown_route"));
    else if (status == 413)
      send_error(res, ApiError(413, "The request body is larger than " + std::to_string(opt.max_body_bytes) + " bytes.",
                               "invalid_request_error", "", "request_too_large"));
    else
      send_error(res, ApiError(status, "HTTP error " + std::to_string(status),
                               status >= 500 ? "server_error" : "invalid_request_error"));
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

  if (opt.access_log) {
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_request.start).count();
      json prompt;
      if (opt.log_prompts) {
        json body = json::parse(req.body, nullptr, false);
        if (body.is_object() && body.contains("messages"))
          prompt = body["messages"];
        else if (body.is_object() && body.contains("prompt"))
          prompt = body["prompt"];
      }
      std::string line;
      if (opt.log_json) {
        json j = {{"time", unix_time()}, {"method", req.method}, {"path", req.path}, {"status", res.status}};
        j["tokens"] = t_request.tokens >= 0 ? json(t_request.tokens) : json(nullptr);
        j["seconds"] = std::round(secs * 1000.0) / 1000.0;
        if (opt.log_prompts) j["prompt"] = prompt;
        line = dump(j);
      } else {
        char buf[64];
        std::snprintf(buf, sizeof buf, " %.3f s", secs);
        line = req.method + " " + req.path + " " + std::to_string(res.status) +
               (t_request.tokens >= 0 ? " " + std::to_string(t_request.tokens) + " tokens" : std::string()) + buf;
        if (opt.log_prompts && !prompt.is_null()) line += " prompt=" + dump(prompt);
      }
      opt.access_log(line);
    });
  }
  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const ServerCounters c = counters();
    res.set_content(dump(json{{"status", "ok"},
                              {"version", version()},
                              {"revision", git_revision()},
                              {"kernels", runtime::isa()},
                              {"requests", c.requests},
                              {"rejected", c.rejected},
                              {"cancelled", c.cancelled},
                              {"running", c.running},
                              {"queued", c.queued},
                              {"batches", c.batches},
                              {"batched", c.batched},
                              {"prefix_cache",
                               {{"enabled", prefix_cache != nullptr},
                                {"entries", c.prefix_cache.entries},
                                {"bytes", c.prefix_cache.bytes},
                                {"max_bytes", c.prefix_cache.max_bytes},
                                {"lookups", c.prefix_cache.lookups},
                                {"hits", c.prefix_cache.hits},
                                {"reused_tokens", c.prefix_cache.reused_tokens},
                                {"evictions", c.prefix_cache.evictions}}}}),
                    "application/json");
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
  // The chat page (web/): outside /v1/, so it never needs the API key.
  web_page = std::make_unique<server::WebPage>(web_config());
  auto page = [this](const httplib::Request& req, httplib::Response& res) { web_page->serve(req, res); };
  http.Get("/", page);
  http.Get("/static/.*", page);
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
  const int port = impl_->opt.port == 0
                       ? impl_->http.bind_to_any_port(impl_->opt.host)
                       : (impl_->http.bind_to_port(impl_->opt.host, impl_->opt.port) ? impl_->opt.port : -1);
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
  impl_->batcher.close();
  // httplib's stop() does nothing before its accept loop runs.
  while (impl_->in_listen && !impl_->http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  impl_->http.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int Server::port() const { return impl_->port; }

ServerCounters Server::counters() const { return impl_->counters(); }

}  // namespace llada2
