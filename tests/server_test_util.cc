#include "server_test_util.h"

#include <gtest/gtest.h>

#include <chrono>

#include "test_util.h"

namespace llada2::testing {

using json = nlohmann::json;

std::shared_ptr<const Pipeline> chat_pipeline() {
  static std::shared_ptr<const Pipeline> pipe =
      std::make_shared<const Pipeline>(Pipeline::from_pretrained(chat_model_dir()));
  return pipe;
}

std::unique_ptr<Server> start_server(ServerOptions o, std::shared_ptr<const Pipeline> pipeline) {
  o.host = "127.0.0.1";
  o.port = 0;
  o.model_id = "tiny-chat";
  auto s = std::make_unique<Server>(pipeline ? std::move(pipeline) : chat_pipeline(), o);
  s->start();
  return s;
}

httplib::Client client(const Server& s) {
  httplib::Client c("127.0.0.1", s.port());
  c.set_read_timeout(120, 0);
  return c;
}

json small(json body) {
  body["max_tokens"] = 16;
  body["block_length"] = 8;
  body["steps"] = 8;
  body["seed"] = 3;
  return body;
}

json chat_body() { return small({{"messages", {{{"role", "user"}, {"content", "Say something."}}}}}); }

Reply post(const Server& s, const std::string& path, const std::string& body, const httplib::Headers& headers) {
  auto c = client(s);
  auto r = c.Post(path.c_str(), headers, body, "application/json");
  if (!r) return {-1, nullptr};
  Reply out{r->status, nullptr};
  if (!r->body.empty()) out.body = json::parse(r->body);
  return out;
}

Reply post(const Server& s, const std::string& path, const json& body, const httplib::Headers& headers) {
  return post(s, path, body.dump(), headers);
}

void expect_error(const Reply& r, int status, const std::string& code, const std::string& param) {
  EXPECT_EQ(r.status, status);
  ASSERT_TRUE(r.body.is_object()) << r.body;
  ASSERT_TRUE(r.body.contains("error")) << r.body;
  const json& e = r.body["error"];
  EXPECT_TRUE(e["message"].is_string()) << e;
  EXPECT_TRUE(e["type"].is_string()) << e;
  EXPECT_TRUE(e.contains("param") && e.contains("code")) << e;
  if (!code.empty()) {
    EXPECT_EQ(e["code"], code) << e;
  }
  if (!param.empty()) {
    EXPECT_EQ(e["param"], param) << e;
  }
}

std::vector<SseEvent> parse_sse(const std::string& text) {
  std::vector<SseEvent> events;
  size_t start = 0;
  for (size_t end; (end = text.find("\n\n", start)) != std::string::npos; start = end + 2) {
    SseEvent e;
    const std::string block = text.substr(start, end - start);
    size_t ls = 0;
    while (ls <= block.size()) {
      size_t le = block.find('\n', ls);
      if (le == std::string::npos) le = block.size();
      const std::string line = block.substr(ls, le - ls);
      if (line.rfind("event: ", 0) == 0) e.event = line.substr(7);
      if (line.rfind("data: ", 0) == 0) e.data = line.substr(6);
      ls = le + 1;
    }
    events.push_back(e);
  }
  EXPECT_EQ(start, text.size()) << "unterminated event";
  return events;
}

std::vector<SseEvent> stream(const Server& s, const std::string& path, json body, int* status) {
  body["stream"] = true;
  auto c = client(s);
  std::string text;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    text.append(data, n);
    return true;
  };
  auto r = c.send(req);
  EXPECT_TRUE(r);
  if (status) *status = r ? r->status : -1;
  if (r) {
    EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  }
  return parse_sse(text);
}

bool wait_for(const std::function<bool()>& cond, double seconds) {
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

ServerOptions held(Hold& hold, int parallel, int queue, int64_t max_batch_rows) {
  ServerOptions o;
  o.parallel = parallel;
  o.queue = queue;
  o.max_batch_rows = max_batch_rows;
  o.step_hook = hold.hook();
  return o;
}

std::thread occupy_worker(const Server& s) {
  // A run counts as running until just after its client got the answer: wait for a new run.
  const int64_t batches = s.counters().batches;
  std::thread t([&s] { post(s, "/v1/chat/completions", chat_body()); });
  EXPECT_TRUE(wait_for([&] {
    const ServerCounters c = s.counters();
    return c.batches == batches + 1 && c.running == 1 && c.queued == 0;
  }));
  return t;
}

}  // namespace llada2::testing
