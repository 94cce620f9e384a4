// The OpenAI-compatible server over real HTTP on loopback, with a tiny random chat model: response
// shapes, streaming (SSE), canvas events, stop strings, errors, auth, the queue and cancellation.
#include <gtest/gtest.h>

#include <httplib.h>
#include <filesystem>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "llada2/pipeline.h"
#include "llada2/runtime.h"
#include "llada2/server.h"
#include "llada2/test_model.h"
#include "llada2/version.h"
#include "server_test_util.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

using json = nlohmann::json;

// Concatenates the content deltas of choice `index`; checks the chunk shapes on the way.
struct Streamed {
  std::string text;
  std::string finish_reason;
  bool saw_role = false;
  bool done = false;
  json last;
};

Streamed collect(const std::vector<SseEvent>& events, bool chat, int64_t index = 0) {
  Streamed s;
  for (const auto& e : events) {
    if (!e.event.empty()) continue;
    EXPECT_FALSE(s.done) << "data after [DONE]";
    if (e.data == "[DONE]") {
      s.done = true;
      continue;
    }
    json j = json::parse(e.data);
    EXPECT_EQ(j["object"], chat ? "chat.completion.chunk" : "text_completion");
    EXPECT_EQ(j["model"], "tiny-chat");
    for (const auto& c : j["choices"]) {
      if (c["index"] != index) continue;
      if (chat) {
        if (c["delta"].contains("role")) s.saw_role = true;
        if (c["delta"].contains("content")) s.text += c["delta"]["content"].get<std::string>();
      } else {
        s.text += c["text"].get<std::string>();
      }
      if (!c["finish_reason"].is_null()) s.finish_reason = c["finish_reason"];
    }
    s.last = j;
  }
  return s;
}

TEST(Server, HealthAndModels) {
  auto s = start_server();
  auto c = client(*s);
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  json health = json::parse(h->body);
  EXPECT_EQ(health["status"], "ok");
  for (const char* k : {"requests", "rejected", "cancelled", "running", "queued", "batches", "batched"})
    EXPECT_TRUE(health[k].is_number_integer()) << k;
  EXPECT_EQ(health["version"], version());
  EXPECT_EQ(health["revision"], git_revision());
  EXPECT_EQ(health["kernels"], runtime::isa());
  EXPECT_FALSE(git_revision().empty());
  auto m = c.Get("/v1/models");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  json models = json::parse(m->body);
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 1u);
  EXPECT_EQ(models["data"][0]["id"], "tiny-chat");
  EXPECT_EQ(models["data"][0]["object"], "model");
  auto one = c.Get("/v1/models/tiny-chat");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->status, 200);
  auto other = c.Get("/v1/models/gpt-4");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
}

void expect_usage(const json& body) {
  const json& u = body["usage"];
  EXPECT_GT(u["prompt_tokens"].get<int64_t>(), 0);
  EXPECT_GE(u["completion_tokens"].get<int64_t>(), 0);
  EXPECT_EQ(u["total_tokens"].get<int64_t>(),
            u["prompt_tokens"].get<int64_t>() + u["completion_tokens"].get<int64_t>());
  EXPECT_GT(body["diffusion"]["forwards"].get<int64_t>(), 0);
  EXPECT_TRUE(body["diffusion"]["tokens_per_forward"].is_number());
  EXPECT_TRUE(body["diffusion"]["seconds"].is_number());
}

TEST(Server, ChatCompletion) {
  auto s = start_server();
  json body = chat_body();
  body["model"] = "tiny-chat";
  Reply r = post(*s, "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["object"], "chat.completion");
  EXPECT_EQ(r.body["model"], "tiny-chat");
  EXPECT_TRUE(r.body["id"].is_string());
  EXPECT_TRUE(r.body["created"].is_number_integer());
  ASSERT_EQ(r.body["choices"].size(), 1u);
  const json& c = r.body["choices"][0];
  EXPECT_EQ(c["index"], 0);
  EXPECT_EQ(c["message"]["role"], "assistant");
  EXPECT_TRUE(c["message"]["content"].is_string());
  EXPECT_TRUE(c["finish_reason"] == "stop" || c["finish_reason"] == "length") << c;
  expect_usage(r.body);
  EXPECT_LE(r.body["usage"]["completion_tokens"].get<int64_t>(), 16);
  // Same seed, same answer.
  Reply again = post(*s, "/v1/chat/completions", body);
  EXPECT_EQ(again.body["choices"][0]["message"]["content"], c["message"]["content"]);
}

TEST(Server, ChatWithTools) {
  auto s = start_server();
  json body = chat_body();
  body["tools"] = {
      {{"type", "function"},
       {"function", {{"name", "get_time"}, {"description", "Current time"}, {"parameters", json::object()}}}}};
  Reply with_tools = post(*s, "/v1/chat/completions", body);
  ASSERT_EQ(with_tools.status, 200) << with_tools.body;
  Reply without = post(*s, "/v1/chat/completions", chat_body());
  ASSERT_EQ(without.status, 200);
  // The tools reach the template: the prompt grows.
  EXPECT_GT(with_tools.body["usage"]["prompt_tokens"].get<int64_t>(),
            without.body["usage"]["prompt_tokens"].get<int64_t>());
  body["tools"] = "get_time";
  expect_error(post(*s, "/v1/chat/completions", body), 400, "", "tools");
}

// The streamed content of choice 0, concatenated, and the finish reason.
std::pair<std::string, std::string> streamed_content(const std::vector<SseEvent>& events) {
  std::string content, finish;
  for (const SseEvent& e : events) {
    if (e.data.empty() || e.data == "[DONE]" || !e.event.empty()) continue;
    json j = json::parse(e.data);
    if (!j.contains("choices") || j["choices"].empty()) continue;
    const json& c = j["choices"][0];
    if (c.contains("delta") && c["delta"].contains("content") && c["delta"]["content"].is_string())
      content += c["delta"]["content"].get<std::string>();
    if (c.contains("finish_reason") && c["finish_reason"].is_string()) finish = c["finish_reason"];
  }
  return {content, finish};
}

// Tool calling on the request side: roles, tool_calls and tool messages rendered through the chat
// template, tool_choice, and the errors. (The tiny random model never writes a valid call, so its
// replies stay content; parsing is tested in tool_calls_test.cc.)
TEST(Server, ToolCallingRequestsAndChoices) {
  auto s = start_server();
  const std::string chat = "/v1/chat/completions";
  const json tools = {
      {{"type", "function"},
       {"function", {{"name", "get_time"}, {"description", "Current time"}, {"parameters", json::object()}}}}};
  auto with = [](json body, const char* key, json value) {
    body[key] = std::move(value);
    return body;
  };
  expect_error(post(*s, chat, with(chat_body(), "messages", {{{"role", "wizard"}, {"content", "hi"}}})), 400, "",
               "messages");
  // developer is system
  const Reply dev =
      post(*s, chat,
           with(chat_body(), "messages",
                {{{"role", "developer"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "hi"}}}));
  const Reply sys = post(*s, chat,
                         with(chat_body(), "messages",
                              {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "hi"}}}));
  ASSERT_EQ(dev.status, 200) << dev.body;
  EXPECT_EQ(dev.body["usage"]["prompt_tokens"], sys.body["usage"]["prompt_tokens"]);
  EXPECT_EQ(dev.body["choices"][0]["message"]["content"], sys.body["choices"][0]["message"]["content"]);
  // A whole tool loop's history renders.
  const json loop = {
      {{"role", "user"}, {"content", "What time is it?"}},
      {{"role", "assistant"},
       {"content", nullptr},
       {"tool_calls",
        {{{"id", "call_1"}, {"type", "function"}, {"function", {{"name", "get_time"}, {"arguments", "{}"}}}}}}},
      {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "12:30"}}};
  const Reply after = post(*s, chat, with(with(chat_body(), "messages", loop), "tools", tools));
  ASSERT_EQ(after.status, 200) << after.body;
  expect_error(post(*s, chat,
                    with(chat_body(), "messages",
                         {{{"role", "user"}, {"content", "hi"}}, {{"role", "assistant"}, {"tool_calls", "x"}}})),
               400, "", "messages");
  // tool_choice none: the tools are not offered (the prompt is as without them).
  const Reply plain = post(*s, chat, chat_body());
  const Reply none = post(*s, chat, with(with(chat_body(), "tools", tools), "tool_choice", "none"));
  ASSERT_EQ(none.status, 200) << none.body;
  EXPECT_EQ(none.body["usage"]["prompt_tokens"], plain.body["usage"]["prompt_tokens"]);
  // A named function: the reply starts as that call.
  const json named = {{"type", "function"}, {"function", {{"name", "get_time"}}}};
  const Reply forced = post(*s, chat, with(with(chat_body(), "tools", tools), "tool_choice", named));
  ASSERT_EQ(forced.status, 200) << forced.body;
  const json& msg = forced.body["choices"][0]["message"];
  if (!msg.contains("tool_calls")) {
    EXPECT_EQ(msg["content"].get<std::string>().rfind("<tool_call>\n{\"name\": \"get_time\", \"arguments\": ", 0), 0u)
        << msg;
  }
  // Streaming gives the same text (what could start a call is held back, then released).
  for (const json& choice : {json("auto"), named}) {
    json body = with(with(chat_body(), "tools", tools), "tool_choice", choice);
    const Reply whole = post(*s, chat, body);
    const auto [content, finish] = streamed_content(stream(*s, chat, body));
    if (!whole.body["choices"][0]["message"].contains("tool_calls")) {
      EXPECT_EQ(content, whole.body["choices"][0]["message"]["content"]) << choice;
      EXPECT_EQ(finish, whole.body["choices"][0]["finish_reason"]) << choice;
    }
  }
  expect_error(post(*s, chat,
                    with(with(chat_body(), "tools", tools), "tool_choice",
                         json({{"type", "function"}, {"function", {{"name", "rm"}}}}))),
               400, "", "tool_choice");
  expect_error(post(*s, chat, with(chat_body(), "tool_choice", "required")), 400, "", "tool_choice");
  expect_error(post(*s, chat, with(with(chat_body(), "tools", tools), "tool_choice", "always")), 400, "",
               "tool_choice");
  expect_error(post(*s, chat, with(chat_body(), "tools", {{{"type", "function"}}})), 400, "", "tools");
  // Fields of the wrong type are 400s too (a lookup with a string default would throw on them).
  expect_error(post(*s, chat, with(chat_body(), "tools", {{{"type", 5}}})), 400, "", "tools");
  expect_error(post(*s, chat, with(with(chat_body(), "tools", tools), "tool_choice", json({{"type", 5}}))), 400, "",
               "tool_choice");
  expect_error(post(*s, chat, with(chat_body(), "response_format", json({{"type", 2}}))), 400, "", "response_format");
  expect_error(post(*s, chat, with(chat_body(), "messages", {{{"role", "user"}, {"content", {{{"type", 1}}}}}})), 400,
               "", "messages");
}

TEST(Server, CompletionsWithPromptListAndN) {
  auto s = start_server();
  json body = small({{"prompt", {"Once upon a time", "The answer is"}}, {"n", 2}, {"temperature", 0.8}});
  Reply r = post(*s, "/v1/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["object"], "text_completion");
  ASSERT_EQ(r.body["choices"].size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const json& c = r.body["choices"][i];
    EXPECT_EQ(c["index"], i);
    EXPECT_TRUE(c["text"].is_string());
    EXPECT_TRUE(c["finish_reason"] == "stop" || c["finish_reason"] == "length") << c;
  }
  expect_usage(r.body);
  // A single prompt string works too; prompt tokens count once per prompt, not per choice.
  Reply one = post(*s, "/v1/completions", small({{"prompt", "Once upon a time"}}));
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(one.body["choices"].size(), 1u);
  Reply one_n2 = post(*s, "/v1/completions", small({{"prompt", "Once upon a time"}, {"n", 2}}));
  ASSERT_EQ(one_n2.status, 200) << one_n2.body;
  EXPECT_EQ(one_n2.body["usage"]["prompt_tokens"], one.body["usage"]["prompt_tokens"]);
}

TEST(Server, StreamingChatEqualsNonStreaming) {
  auto s = start_server();
  json body = chat_body();
  body["max_tokens"] = 32;
  Reply whole = post(*s, "/v1/chat/completions", body);
  ASSERT_EQ(whole.status, 200) << whole.body;
  int status = 0;
  auto events = stream(*s, "/v1/chat/completions", body, &status);
  EXPECT_EQ(status, 200);
  Streamed st = collect(events, true);
  EXPECT_TRUE(st.saw_role);
  EXPECT_TRUE(st.done);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().data, "[DONE]");
  EXPECT_EQ(st.text, whole.body["choices"][0]["message"]["content"].get<std::string>());
  EXPECT_EQ(st.finish_reason, whole.body["choices"][0]["finish_reason"]);
  EXPECT_EQ(st.last["usage"], whole.body["usage"]);

  // stream_options.include_usage: as OpenAI, usage comes in a last chunk without choices.
  body["stream_options"] = {{"include_usage", true}};
  events = stream(*s, "/v1/chat/completions", body, &status);
  EXPECT_EQ(status, 200);
  Streamed with_usage = collect(events, true);
  EXPECT_EQ(with_usage.text, st.text);
  EXPECT_TRUE(with_usage.last["choices"].empty()) << with_usage.last;
  EXPECT_EQ(with_usage.last["usage"], whole.body["usage"]);
  size_t usage_chunks = 0;
  for (const auto& e : events)
    if (e.event.empty() && e.data != "[DONE]" && json::parse(e.data).contains("usage")) ++usage_chunks;
  EXPECT_EQ(usage_chunks, 1u);
  body["stream_options"] = "yes";
  expect_error(post(*s, "/v1/chat/completions", body), 400, "", "stream_options");
}

TEST(Server, StreamingCompletionsEqualNonStreaming) {
  auto s = start_server();
  json body = small({{"prompt", "The weather today"}, {"n", 2}, {"temperature", 0.7}});
  body["max_tokens"] = 40;
  Reply whole = post(*s, "/v1/completions", body);
  ASSERT_EQ(whole.status, 200) << whole.body;
  auto events = stream(*s, "/v1/completions", body);
  for (int i = 0; i < 2; ++i) {
    Streamed st = collect(events, false, i);
    EXPECT_TRUE(st.done);
    EXPECT_EQ(st.text, whole.body["choices"][i]["text"].get<std::string>()) << i;
    EXPECT_EQ(st.finish_reason, whole.body["choices"][i]["finish_reason"]) << i;
  }
}

TEST(Server, CanvasEvents) {
  auto s = start_server();
  json body = chat_body();
  body["llada2_canvas"] = true;
  auto events = stream(*s, "/v1/chat/completions", body);
  int canvases = 0;
  for (const auto& e : events) {
    if (e.event != "canvas") continue;
    ++canvases;
    json c = json::parse(e.data);
    EXPECT_EQ(c["index"], 0);
    EXPECT_GE(c["block"].get<int64_t>(), 0);
    EXPECT_TRUE(c["tokens"].is_array());
    EXPECT_LE(c["tokens"].size(), 8u);
    EXPECT_TRUE(c["text"].is_string());
  }
  EXPECT_GT(canvases, 0);
  EXPECT_TRUE(collect(events, true).done);
  // Without the opt-in there are none.
  for (const auto& e : stream(*s, "/v1/chat/completions", chat_body())) EXPECT_NE(e.event, "canvas");
}

TEST(Server, StopStrings) {
  auto s = start_server();
  json body = small({{"prompt", "Count with me:"}});
  body["max_tokens"] = 32;
  Reply whole = post(*s, "/v1/completions", body);
  ASSERT_EQ(whole.status, 200);
  const std::string text = whole.body["choices"][0]["text"];
  // Two whole characters from the middle of the text.
  std::vector<std::string> chars;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) chars.emplace_back();
    if (!chars.empty()) chars.back() += text[i];
  }
  ASSERT_GE(chars.size(), 5u) << "the test model's text is too short to cut: " << text;
  const std::string stop = chars[2] + chars[3];
  const std::string expected = text.substr(0, text.find(stop));
  body["stop"] = {"\x01never", stop};
  Reply cut = post(*s, "/v1/completions", body);
  ASSERT_EQ(cut.status, 200) << cut.body;
  EXPECT_EQ(cut.body["choices"][0]["text"], expected);
  EXPECT_EQ(cut.body["choices"][0]["finish_reason"], "stop");
  // The generation ended once the stop string was in a final block.
  EXPECT_LT(cut.body["diffusion"]["forwards"].get<int64_t>(), whole.body["diffusion"]["forwards"].get<int64_t>());
  Streamed st = collect(stream(*s, "/v1/completions", body), false);
  EXPECT_EQ(st.text, expected);
  EXPECT_EQ(st.finish_reason, "stop");
  body["stop"] = stop;  // a single string
  EXPECT_EQ(post(*s, "/v1/completions", body).body["choices"][0]["text"], expected);
}

TEST(Server, BadRequests) {
  ServerOptions o;
  o.max_body_bytes = 4096;
  o.max_tokens_limit = 64;
  auto s = start_server(o);
  const std::string chat = "/v1/chat/completions";
  expect_error(post(*s, chat, std::string("{\"messages\": [")), 400);
  expect_error(post(*s, chat, std::string("[1, 2]")), 400);
  expect_error(post(*s, chat, json{{"max_tokens", 8}}), 400, "", "messages");
  expect_error(post(*s, chat, json{{"messages", "hi"}}), 400, "", "messages");
  expect_error(post(*s, chat, json{{"messages", {{{"content", "no role"}}}}}), 400, "", "messages");
  auto with = [](const char* key, json v) {
    json b = chat_body();
    b[key] = v;
    return b;
  };
  expect_error(post(*s, chat, with("max_tokens", "ten")), 400, "", "max_tokens");
  expect_error(post(*s, chat, with("max_tokens", 0)), 400, "", "max_tokens");
  expect_error(post(*s, chat, with("max_tokens", 65)), 400, "", "max_tokens");
  expect_error(post(*s, chat, with("max_completion_tokens", -1)), 400, "", "max_completion_tokens");
  expect_error(post(*s, chat, with("temperature", -0.5)), 400, "", "temperature");
  expect_error(post(*s, chat, with("temperature", "hot")), 400, "", "temperature");
  expect_error(post(*s, chat, with("top_p", 0)), 400, "", "top_p");
  expect_error(post(*s, chat, with("top_k", -2)), 400, "", "top_k");
  expect_error(post(*s, chat, with("n", 0)), 400, "", "n");
  expect_error(post(*s, chat, with("n", 100)), 400, "", "n");
  expect_error(post(*s, chat, with("stream", "yes")), 400, "", "stream");
  expect_error(post(*s, chat, with("stop", 5)), 400, "", "stop");
  expect_error(post(*s, chat, with("stop", {""})), 400, "", "stop");
  expect_error(post(*s, chat, with("block_length", 0)), 400, "", "block_length");
  expect_error(post(*s, chat, with("steps", 1.5)), 400, "", "steps");
  expect_error(post(*s, chat, with("attention", "sideways")), 400, "", "attention");
  expect_error(post(*s, chat, with("seed", -1)), 400, "", "seed");
  expect_error(post(*s, "/v1/completions", json{{"prompt", 42}}), 400, "", "prompt");
  expect_error(post(*s, "/v1/completions", json{{"prompt", json::array()}}), 400, "", "prompt");
  expect_error(post(*s, "/v1/completions", std::string("{\"prompt\": \"bad \xC3 utf8\"}")), 400);
  expect_error(post(*s, chat, with("model", "gpt-4o")), 404, "model_not_found", "model");
  expect_error(post(*s, chat, with("messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}}}}}})), 400, "",
               "messages");
  expect_error(post(*s, "/v1/nothing", chat_body()), 404, "unknown_route");
  auto c = client(*s);
  auto g = c.Get("/nowhere");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->status, 404);
  EXPECT_TRUE(json::parse(g->body).contains("error"));
  json big = chat_body();
  big["messages"][0]["content"] = std::string(8000, 'x');
  expect_error(post(*s, chat, big), 413, "request_too_large");
  // The server is still fine.
  EXPECT_EQ(post(*s, chat, chat_body()).status, 200);
}

// A known route asked with another method: 405 with the methods it takes.
TEST(Server, WrongMethodGets405WithAllow) {
  auto s = start_server();
  auto c = client(*s);
  auto g = c.Get("/v1/chat/completions");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->status, 405);
  EXPECT_EQ(g->get_header_value("Allow"), "POST");
  EXPECT_EQ(json::parse(g->body)["error"]["code"], "method_not_allowed");
  expect_error(post(*s, "/health", chat_body()), 405, "method_not_allowed");
  expect_error(post(*s, "/v1/models/tiny-chat", chat_body()), 405, "method_not_allowed");
  auto d = c.Delete("/v1/completions");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, 405);
}

// One access-log line per request: method, path, status, tokens, seconds; the prompt only when asked.
TEST(Server, AccessLogLinesWithoutPromptsUnlessAsked) {
  for (bool as_json : {false, true}) {
    for (bool prompts : {false, true}) {
      auto lines = std::make_shared<std::vector<std::string>>();
      auto mu = std::make_shared<std::mutex>();
      ServerOptions o;
      o.access_log = [lines, mu](const std::string& l) {
        std::lock_guard<std::mutex> lock(*mu);
        lines->push_back(l);
      };
      o.log_json = as_json;
      o.log_prompts = prompts;
      auto s = start_server(o);
      json body = chat_body();
      body["messages"][0]["content"] = "secret-prompt-text";
      const Reply r = post(*s, "/v1/chat/completions", body);
      ASSERT_EQ(r.status, 200);
      const int64_t tokens = r.body["usage"]["completion_tokens"].get<int64_t>();
      ASSERT_TRUE(client(*s).Get("/health"));
      s->stop();
      std::lock_guard<std::mutex> lock(*mu);
      ASSERT_EQ(lines->size(), 2u);
      // A line is written once its response went out, so the two may come in either order.
      if ((*lines)[0].find("/health") != std::string::npos) std::swap((*lines)[0], (*lines)[1]);
      const std::string& gen = (*lines)[0];
      EXPECT_EQ(gen.find("secret-prompt-text") != std::string::npos, prompts) << gen;
      if (as_json) {
        json j = json::parse(gen);
        EXPECT_EQ(j["method"], "POST");
        EXPECT_EQ(j["path"], "/v1/chat/completions");
        EXPECT_EQ(j["status"], 200);
        EXPECT_EQ(j["tokens"], tokens);
        EXPECT_GT(j["seconds"].get<double>(), 0.0);
        EXPECT_TRUE(json::parse((*lines)[1])["tokens"].is_null());
      } else {
        EXPECT_EQ(gen.rfind("POST /v1/chat/completions 200 " + std::to_string(tokens) + " tokens ", 0), 0u) << gen;
        EXPECT_EQ((*lines)[1].rfind("GET /health 200 ", 0), 0u) << (*lines)[1];
      }
    }
  }
}

TEST(Server, ContextLimitAndContentParts) {
  auto s = start_server();  // the test model's context is 512 tokens
  json body = chat_body();
  body["max_tokens"] = 512;
  expect_error(post(*s, "/v1/chat/completions", body), 400, "context_length_exceeded", "messages");
  expect_error(post(*s, "/v1/completions", json{{"prompt", "hi"}, {"max_tokens", 512}}), 400, "context_length_exceeded",
               "prompt");
  // Text parts are joined: the same prompt as the plain string.
  json parts = chat_body();
  parts["messages"][0]["content"] = {{{"type", "text"}, {"text", "Say "}}, {{"type", "text"}, {"text", "something."}}};
  Reply a = post(*s, "/v1/chat/completions", parts);
  Reply b = post(*s, "/v1/chat/completions", chat_body());
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(a.body["choices"], b.body["choices"]);
  EXPECT_EQ(a.body["usage"], b.body["usage"]);
}

TEST(Server, ApiKey) {
  ServerOptions o;
  o.api_key = "sekret";
  auto s = start_server(o);
  expect_error(post(*s, "/v1/chat/completions", chat_body()), 401, "invalid_api_key");
  expect_error(post(*s, "/v1/chat/completions", chat_body(), {{"Authorization", "Bearer wrong"}}), 401);
  EXPECT_EQ(post(*s, "/v1/chat/completions", chat_body(), {{"Authorization", "Bearer sekret"}}).status, 200);
  auto c = client(*s);
  auto models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 401);
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
}

// A streaming request that blocks in its receiver after the first event, holding its slot.
json long_body() {
  json b = chat_body();
  b["max_tokens"] = 448;  // the test model's context is 512
  b["steps"] = 4;
  b["block_length"] = 4;
  b["llada2_canvas"] = true;
  b["stream"] = true;
  return b;
}

// Sends long_body() (streaming) on a thread; `receiver` gets each piece of the answer and may hang
// up by returning false.
std::thread send_long_stream(const Server& s, std::function<bool(const char*, size_t)> receiver) {
  return std::thread([&s, receiver = std::move(receiver)] {
    auto c = client(s);
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.body = long_body().dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) { return receiver(d, n); };
    c.send(req);
  });
}

// Stops the server while its worker is held, then lets the worker reach the end of its step,
// where it sees the stop.
void stop_while_held(Server& s, Hold& hold) {
  std::thread stopper([&] { s.stop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  hold.on = false;
  stopper.join();
}

TEST(Server, QueueFullGets429AndDisconnectCancels) {
  Hold hold;
  auto s = start_server(held(hold, 1, 0));
  std::atomic<bool> got_first{false}, release{false};
  std::thread first = send_long_stream(*s, [&](const char*, size_t) {
    got_first = true;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return false;  // hang up: the server must stop generating
  });
  ASSERT_TRUE(wait_for([&] { return got_first.load(); }));
  expect_error(post(*s, "/v1/chat/completions", chat_body()), 429, "queue_full");
  EXPECT_EQ(s->counters().rejected, 1);
  release = true;
  first.join();
  hold.on = false;
  EXPECT_TRUE(wait_for([&] { return s->counters().cancelled == 1; })) << s->counters().cancelled;
  // The slot is free again.
  EXPECT_TRUE(wait_for([&] { return post(*s, "/v1/chat/completions", chat_body()).status == 200; }));
}

TEST(Server, NonStreamingDisconnectCancels) {
  auto s = start_server();
  json body = long_body();
  body.erase("stream");
  body.erase("llada2_canvas");
  {
    httplib::Client c("127.0.0.1", s->port());
    c.set_read_timeout(0, 100000);  // give up (and hang up) long before the 448 tokens are done
    auto r = c.Post("/v1/chat/completions", body.dump(), "application/json");
    EXPECT_FALSE(r);
  }
  EXPECT_TRUE(wait_for([&] { return s->counters().cancelled == 1; }))
      << "requests " << s->counters().requests << ", cancelled " << s->counters().cancelled;
}

TEST(Server, ConcurrentRequestsAllAnswer) {
  ServerOptions o;
  o.parallel = 2;
  o.queue = 8;
  auto s = start_server(o);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 6; ++i)
    threads.emplace_back([&, i] {
      json b = chat_body();
      b["seed"] = i;
      if (post(*s, "/v1/chat/completions", b).status == 200) ++ok;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 6);
  EXPECT_EQ(s->counters().requests, 6);
}

TEST(Server, StopCancelsRunningStreams) {
  Hold hold;
  auto s = start_server(held(hold, 1, 16));
  std::atomic<bool> got_first{false};
  std::string text;
  std::thread first = send_long_stream(*s, [&](const char* d, size_t n) {
    text.append(d, n);
    got_first = true;
    return true;
  });
  ASSERT_TRUE(wait_for([&] { return got_first.load(); }));
  stop_while_held(*s, hold);
  first.join();
  EXPECT_EQ(s->counters().cancelled, 1);
  EXPECT_NE(text.find("shutting_down"), std::string::npos);
  EXPECT_EQ(text.substr(text.size() - 14), "data: [DONE]\n\n");
}

TEST(Server, StopReleasesQueuedRequests) {
  Hold hold;
  auto s = start_server(held(hold, 1, 4));
  std::atomic<bool> got_first{false};
  std::thread first = send_long_stream(*s, [&](const char*, size_t) {
    got_first = true;
    return true;
  });
  ASSERT_TRUE(wait_for([&] { return got_first.load() && s->counters().running == 1; }));
  Reply queued;
  std::thread second([&] { queued = post(*s, "/v1/chat/completions", chat_body()); });
  ASSERT_TRUE(wait_for([&] { return s->counters().queued == 1; }));
  stop_while_held(*s, hold);
  first.join();
  second.join();
  expect_error(queued, 503, "shutting_down");
}

// A queued request whose client hangs up leaves the queue at once, without waiting for a worker.
TEST(Server, QueuedRequestWithdrawnWhenClientLeaves) {
  Hold hold;
  auto s = start_server(held(hold, 1, 1));
  std::thread first = occupy_worker(*s);
  {
    httplib::Client c("127.0.0.1", s->port());
    c.set_read_timeout(0, 200000);  // gives up while queued
    json b = chat_body();
    b["seed"] = 4;
    EXPECT_FALSE(c.Post("/v1/chat/completions", b.dump(), "application/json"));
  }
  EXPECT_TRUE(wait_for([&] { return s->counters().cancelled == 1 && s->counters().queued == 0; }))
      << s->counters().cancelled << " " << s->counters().queued;
  // The queue place is free again while the worker is still busy: one more may wait.
  std::thread third([&] { EXPECT_EQ(post(*s, "/v1/chat/completions", chat_body()).status, 200); });
  ASSERT_TRUE(wait_for([&] { return s->counters().queued == 1; }));
  hold.on = false;
  first.join();
  third.join();
  EXPECT_EQ(s->counters().batches, 2);  // the withdrawn request never ran
}

// Requests waiting together with the same settings and prompt length run as one batch and get
// exactly what they get alone; others run separately.
TEST(Server, BatchesCompatibleRequestsExactly) {
  Hold hold;
  auto s = start_server(held(hold, 1, 16));
  const Tokenizer& tok = *chat_pipeline()->tokenizer();
  // Three different prompts of one token length.
  std::map<size_t, std::vector<std::string>> by_length;
  for (const char* a : {"one", "two", "red", "blue", "cat", "dog", "sun", "tree"})
    for (const char* b : {"apple", "house", "river", "stone", "light"}) {
      const std::string p = std::string(a) + " " + b;
      by_length[tok.encode(p, true).size()].push_back(p);
    }
  std::vector<std::string> prompts;
  for (const auto& [len, list] : by_length)
    if (list.size() >= 3 && prompts.empty()) prompts.assign(list.begin(), list.begin() + 3);
  ASSERT_EQ(prompts.size(), 3u);
  auto body = [](const std::string& prompt, bool stream) {
    json b = small({{"prompt", prompt}, {"temperature", 0}});
    b.erase("seed");
    if (stream) b["stream"] = true;
    return b;
  };
  // Alone, one at a time.
  std::vector<std::string> alone;
  hold.on = false;
  for (const auto& p : prompts) {
    Reply r = post(*s, "/v1/completions", body(p, false));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body["diffusion"]["batch_rows"], 1);
    alone.push_back(r.body["choices"][0]["text"]);
  }
  const int64_t batches_before = s->counters().batches;
  // Hold the worker with a request of other settings, queue the three (one of them streaming) and a
  // fourth with other settings, then let go.
  hold.on = true;
  std::thread blocker = occupy_worker(*s);
  std::vector<Reply> replies(prompts.size());
  std::string streamed;
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i)
    threads.emplace_back([&, i] {
      if (i == 1) {
        for (const auto& e : stream(*s, "/v1/completions", body(prompts[i], true))) {
          if (e.data.empty() || e.data == "[DONE]") continue;
          json j = json::parse(e.data);
          if (j.contains("choices") && !j["choices"].empty()) streamed += j["choices"][0].value("text", "");
        }
      } else {
        replies[i] = post(*s, "/v1/completions", body(prompts[i], false));
      }
    });
  Reply other;
  threads.emplace_back([&] {
    json b = body(prompts[0], false);
    b["max_tokens"] = 24;  // another canvas: not compatible
    other = post(*s, "/v1/completions", b);
  });
  ASSERT_TRUE(wait_for([&] { return s->counters().queued == 4; }));
  hold.on = false;
  for (auto& t : threads) t.join();
  blocker.join();
  for (size_t i : {size_t(0), size_t(2)}) {
    ASSERT_EQ(replies[i].status, 200) << replies[i].body;
    EXPECT_EQ(replies[i].body["choices"][0]["text"], alone[i]) << i;
    EXPECT_EQ(replies[i].body["diffusion"]["batch_rows"], 3) << i;
  }
  EXPECT_EQ(streamed, alone[1]);
  ASSERT_EQ(other.status, 200);
  EXPECT_EQ(other.body["diffusion"]["batch_rows"], 1);
  EXPECT_EQ(s->counters().batches - batches_before, 3);  // the blocker, the batch of three, the other
  EXPECT_EQ(s->counters().batched, 3);
}

// max_batch_rows 1 turns batching off.
TEST(Server, BatchingCanBeTurnedOff) {
  Hold hold;
  auto s = start_server(held(hold, 1, 16, 1));
  std::thread blocker = occupy_worker(*s);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&] { EXPECT_EQ(post(*s, "/v1/chat/completions", chat_body()).status, 200); });
  ASSERT_TRUE(wait_for([&] { return s->counters().queued == 2; }));
  hold.on = false;
  for (auto& t : threads) t.join();
  blocker.join();
  EXPECT_EQ(s->counters().batches, 3);
  EXPECT_EQ(s->counters().batched, 0);
}

// `llada2 serve` as a process: answers on the port it prints, exits 0 on SIGTERM.
// `llada2 serve` on the chat model in a child process with its stderr in `log`; sets *port once it listens.
pid_t start_cli_serve(const std::string& log, int* port) {
  chat_pipeline();  // writes the model folder
  const std::string dir = chat_model_dir();
  std::remove(log.c_str());
  pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "w", stderr);
    (void)f;
    const rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    execl(LLADA2_CLI_PATH, LLADA2_CLI_PATH, "serve", "--model", dir.c_str(), "--port", "0", "--threads", "1",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  const bool up = pid > 0 && wait_for([&] {
                    const std::string text = read_file(log);
                    const size_t at = text.find("http://127.0.0.1:");
                    if (at == std::string::npos || text.find("/v1", at) == std::string::npos) return false;
                    *port = std::atoi(text.c_str() + at + 17);
                    return true;
                  });
  EXPECT_TRUE(up) << read_file(log);
  return pid;
}

TEST(Server, CliServeAnswersAndStopsOnSigterm) {
  const std::string log = chat_model_dir() + "/serve_log.txt";
  int port = 0;
  const pid_t pid = start_cli_serve(log, &port);
  ASSERT_GT(port, 0);
  httplib::Client c("127.0.0.1", port);
  auto m = c.Get("/v1/models");
  ASSERT_TRUE(m);
  EXPECT_EQ(json::parse(m->body)["data"][0]["id"], std::filesystem::path(chat_model_dir()).filename().string());
  // A 40 KB body of 20,000 nested arrays: 400, and the process serves on.
  auto deep = c.Post("/v1/chat/completions",
                     "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\",\"x\":" + std::string(20000, '[') +
                         std::string(20000, ']') + "}],\"max_tokens\":4}",
                     "application/json");
  ASSERT_TRUE(deep);
  EXPECT_EQ(deep->status, 400);
  auto r = c.Post("/v1/chat/completions", chat_body().dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Server, CliServeReportsAFatalSignal) {
  const std::string log = chat_model_dir() + "/serve_crash_log.txt";
  int port = 0;
  const pid_t pid = start_cli_serve(log, &port);
  ASSERT_GT(port, 0);
  kill(pid, SIGSEGV);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGSEGV);
  const std::string text = read_file(log);
  EXPECT_NE(text.find("llada2: fatal signal SIGSEGV"), std::string::npos) << text;
  EXPECT_NE(text.find("backtrace:"), std::string::npos) << text;
}

TEST(Server, CliServeHelp) {
  std::string out;
  EXPECT_EQ(run_cli("serve --help", &out), 0);
  EXPECT_NE(out.find("--parallel"), std::string::npos);
  EXPECT_EQ(run_cli("serve --port 70000", &out), 2);
  EXPECT_EQ(run_cli("serve --model /nonexistent/checkpoint", &out), 2);
}

}  // namespace
}  // namespace llada2::testing
