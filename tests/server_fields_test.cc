// What the server does with every request field it is sent: deep JSON bodies get 400 on every
// endpoint and the server keeps serving; OpenAI fields that are not implemented get 400 unless they
// ask for the default; the ones accepted without effect are accepted.
#include <gtest/gtest.h>

#include <string>

#include "llada2/json.h"
#include "server_test_util.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

using json = nlohmann::json;

const std::string kChat = "/v1/chat/completions", kCompletions = "/v1/completions";

void expect_served(const Server& s) {
  auto h = client(s).Get("/health");
  ASSERT_TRUE(h) << "the server stopped answering";
  EXPECT_EQ(h->status, 200);
}

TEST(ServerFields, IssueReproGets400AndServerKeepsServing) {
  auto s = start_server();  // default settings
  const std::string body = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\",\"x\":" + std::string(20000, '[') +
                           std::string(20000, ']') + "}],\"max_tokens\":4}";
  const Reply r = post(*s, kChat, body);
  expect_error(r, 400);
  EXPECT_NE(r.body["error"]["message"].get<std::string>().find("deeper than 128 levels"), std::string::npos) << r.body;
  EXPECT_EQ(post(*s, kChat, chat_body()).status, 200);
}

TEST(ServerFields, DeepBodiesOnEveryEndpoint) {
  ServerOptions o;
  o.max_body_bytes = 8 << 20;  // room for a million levels of objects: the depth check answers, not the size limit
  auto s = start_server(o);
  const std::string tiny = R"("max_tokens": 4, "block_length": 4, "steps": 4)";
  const std::string msgs = R"("messages": [{"role": "user", "content": "hi"}])";
  struct Place {
    const std::string* path;
    size_t prefix;  // levels above the deep value
    std::string head, tail;
  };
  const Place places[] = {
      {&kChat, 1, "{" + tiny + ", " + msgs + ", \"x_unused\": ", "}"},
      {&kChat, 3, "{" + tiny + R"(, "messages": [{"role": "user", "content": "hi", "x": )", "}]}"},
      {&kChat, 4,
       "{" + tiny + ", " + msgs + R"(, "tools": [{"type": "function", "function": {"name": "f", "parameters": )",
       "}}]}"},
      {&kCompletions, 1, "{" + tiny + R"(, "prompt": "hi", "x_unused": )", "}"},
      {&kCompletions, 2, "{" + tiny + R"(, "prompt": [)", "]}"},
  };
  for (size_t depth : {100, 1000, 10000, 100000, 1000000})
    for (bool objects : {false, true})
      for (const Place& p : places) {
        const Reply r = post(*s, *p.path, p.head + nested_json(depth, objects) + p.tail);
        const bool deep = depth + p.prefix > size_t(kMaxJsonDepth);
        SCOPED_TRACE(*p.path + " depth " + std::to_string(depth) + " prefix " + std::to_string(p.prefix));
        ASSERT_NE(r.status, -1) << "connection failed";
        if (deep) {
          expect_error(r, 400);
          EXPECT_NE(r.body.dump().find("deeper than 128 levels"), std::string::npos) << r.body;
        } else if (p.prefix == 2) {  // a prompt list of arrays: a type error, not a depth error
          expect_error(r, 400, "", "prompt");
        } else if (p.prefix == 4) {  // the schema reaches the template: the tiny model's context may be too short
          EXPECT_TRUE(r.status == 200 || r.body["error"]["code"] == "context_length_exceeded") << r.body;
        } else {  // unused fields: accepted
          EXPECT_EQ(r.status, 200) << r.body;
        }
        expect_served(*s);
      }
  EXPECT_EQ(post(*s, kChat, chat_body()).status, 200);
}

TEST(ServerFields, LogprobsAreRejected) {
  auto s = start_server();
  for (const std::string& path : {kChat, kCompletions}) {
    json body = path == kChat ? chat_body() : small({{"prompt", "hi"}});
    body["logprobs"] = true;
    Reply r = post(*s, path, body);
    expect_error(r, 400, "", "logprobs");
    EXPECT_NE(r.body["error"]["message"].get<std::string>().find("log-probabilities are not available"),
              std::string::npos);
    body["logprobs"] = 5;  // /v1/completions' form
    expect_error(post(*s, path, body), 400, "", "logprobs");
    body.erase("logprobs");
    body["top_logprobs"] = 0;
    expect_error(post(*s, path, body), 400, "", "top_logprobs");
  }
}

TEST(ServerFields, UnsupportedValuesAreRejected) {
  auto s = start_server();
  const std::pair<const char*, json> rejected[] = {
      {"frequency_penalty", 0.5},
      {"presence_penalty", -1},
      {"logit_bias", {{"42", 100}}},
      {"response_format", {{"type", "json_object"}}},
      {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", json::object()}}}}},
      {"tool_choice", "required"},
      {"tool_choice", {{"type", "function"}, {"function", {{"name", "f"}}}}},
      {"function_call", {{"name", "f"}}},
      {"functions", {{{"name", "f"}, {"parameters", json::object()}}}},
      {"modalities", {"text", "audio"}},
      {"audio", {{"voice", "alloy"}, {"format", "wav"}}},
      {"prediction", {{"type", "content"}, {"content", "x"}}},
      {"reasoning_effort", "low"},
      {"verbosity", "low"},
      {"web_search_options", json::object()},
      {"service_tier", "flex"},
      {"store", true},
      {"echo", true},
      {"suffix", "the end"},
      {"best_of", 3},
  };
  for (const std::string& path : {kChat, kCompletions})
    for (const auto& [key, value] : rejected) {
      json body = path == kChat ? chat_body() : small({{"prompt", "hi"}});
      body[key] = value;
      expect_error(post(*s, path, body), 400, "", key);
    }
  json body = chat_body();
  body["stream_options"] = {{"include_usage", true}};  // without "stream": true, as OpenAI
  expect_error(post(*s, kChat, body), 400, "", "stream_options");
}

TEST(ServerFields, DefaultsAndNoEffectFieldsAreAccepted) {
  auto s = start_server();
  const json accepted = {
      {"logprobs", false},
      {"top_logprobs", nullptr},
      {"frequency_penalty", 0},
      {"presence_penalty", 0.0},
      {"logit_bias", json::object()},
      {"response_format", {{"type", "text"}}},
      {"tool_choice", "auto"},
      {"function_call", "none"},
      {"functions", json::array()},
      {"modalities", {"text"}},
      {"service_tier", "auto"},
      {"store", false},
      {"echo", false},
      {"best_of", 1},
      {"user", "user-1234"},
      {"metadata", {{"k", "v"}}},
      {"parallel_tool_calls", true},
      {"safety_identifier", "abc"},
      {"prompt_cache_key", "abc"},
      {"some_other_servers_extra", {1, 2, 3}},
  };
  json chat = chat_body(), plain = chat_body();
  chat.update(accepted);
  const Reply r = post(*s, kChat, chat);
  ASSERT_EQ(r.status, 200) << r.body;
  // No effect indeed: the same text as without them.
  EXPECT_EQ(r.body["choices"], post(*s, kChat, plain).body["choices"]);
  json completion = small({{"prompt", "hi"}});
  completion.update(accepted);
  EXPECT_EQ(post(*s, kCompletions, completion).status, 200);
}

TEST(ServerFields, SeedWithNIsReproducible) {
  auto s = start_server();
  json body = small({{"prompt", "Once upon a time"}, {"n", 2}, {"temperature", 1.0}, {"seed", 11}});
  const Reply a = post(*s, kCompletions, body), b = post(*s, kCompletions, body);
  ASSERT_EQ(a.status, 200) << a.body;
  ASSERT_EQ(a.body["choices"].size(), 2u);
  EXPECT_EQ(a.body["choices"], b.body["choices"]);
}

}  // namespace
}  // namespace llada2::testing
