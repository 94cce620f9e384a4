// Helpers of the server tests: a server on loopback over the tiny chat model, small requests, and
// checks of OpenAI-shaped errors.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "llada2/pipeline.h"
#include "llada2/server.h"

namespace llada2::testing {

// The tiny chat model of chat_model_dir(), loaded once per process.
std::shared_ptr<const Pipeline> chat_pipeline();

// A started server on 127.0.0.1, an ephemeral port, model id "tiny-chat", over `pipeline` (default:
// chat_pipeline()).
std::unique_ptr<Server> start_server(ServerOptions o = {}, std::shared_ptr<const Pipeline> pipeline = nullptr);

httplib::Client client(const Server& s);

// A small generation: 16 tokens in blocks of 8, seeded.
nlohmann::json small(nlohmann::json body);
nlohmann::json chat_body();

struct Reply {
  int status = 0;  // -1: no response (the connection failed)
  nlohmann::json body;
};

Reply post(const Server& s, const std::string& path, const std::string& body, const httplib::Headers& headers = {});
Reply post(const Server& s, const std::string& path, const nlohmann::json& body, const httplib::Headers& headers = {});

// An OpenAI error object with this status (and code and param, where given).
void expect_error(const Reply& r, int status, const std::string& code = "", const std::string& param = "");

struct SseEvent {
  std::string event;  // "" for plain data events
  std::string data;
};
std::vector<SseEvent> parse_sse(const std::string& text);

// Sends a streaming request and returns its events.
std::vector<SseEvent> stream(const Server& s, const std::string& path, nlohmann::json body, int* status = nullptr);

// Polls `cond` until it holds or `seconds` pass; returns its last value.
bool wait_for(const std::function<bool()>& cond, double seconds = 30);

// Keeps the server's workers inside their current refinement step until released.
struct Hold {
  std::atomic<bool> on{true};
  std::function<void()> hook() {
    return [this] {
      while (on) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    };
  }
};

// Options of a server whose workers `hold` keeps in their current step.
ServerOptions held(Hold& hold, int parallel, int queue, int64_t max_batch_rows = 8);

// Sends a request that takes the (held) worker and returns once it runs; join the thread after
// releasing the hold.
std::thread occupy_worker(const Server& s);

}  // namespace llada2::testing
