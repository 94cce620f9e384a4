#include "server_test_util.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace llada2::testing {

using json = nlohmann::json;

std::shared_ptr<const Pipeline> chat_pipeline() {
  static std::shared_ptr<const Pipeline> pipe =
      std::make_shared<const Pipeline>(Pipeline::from_pretrained(chat_model_dir()));
  return pipe;
}

std::unique_ptr<Server> start_server(ServerOptions o) {
  o.host = "127.0.0.1";
  o.port = 0;
  o.model_id = "tiny-chat";
  auto s = std::make_unique<Server>(chat_pipeline(), o);
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

}  // namespace llada2::testing
