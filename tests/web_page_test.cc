// The chat page of `llada2 serve` (web/, compiled in): its routes over real HTTP, the canvas cells it
// draws from, and the page itself in a real browser — headless Chromium driven by puppeteer-core runs
// tests/js/web_page.test.mjs against servers on the tiny chat model (random weights: the text is noise,
// which is enough to compare the page with the API). The browser test is skipped when chromium is not
// installed (scripts/install-deps.sh installs it); it needs node and tests/js/node_modules
// (scripts/fetch-test-data.sh). Screenshots go to $LLADA2_SCREENSHOT_DIR, else <build>/web_screenshots.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "node_util.h"
#include "server/web_assets.h"
#include "server_test_util.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

httplib::Result get(const Server& s, const std::string& path, const httplib::Headers& headers = {}) {
  auto c = client(s);
  return c.Get(path.c_str(), headers);
}

// The JSON of the page's <script id="server-config"> element.
json page_config(const std::string& html) {
  const std::string open = "<script id=\"server-config\" type=\"application/json\">";
  const size_t at = html.find(open);
  if (at == std::string::npos) return nullptr;
  const size_t end = html.find("</script>", at);
  return json::parse(html.substr(at + open.size(), end - at - open.size()));
}

TEST(WebPage, ServesThePageAndItsFiles) {
  ServerOptions o;
  o.default_max_tokens = 77;
  auto s = start_server(o);
  auto r = get(*s, "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(r->get_header_value("Cache-Control"), "no-cache");
  EXPECT_NE(r->get_header_value("Content-Security-Policy").find("script-src 'self'"), std::string::npos);
  EXPECT_EQ(r->body.rfind("<!doctype html>", 0), 0u);
  // The server's defaults are in the page.
  const json config = page_config(r->body);
  ASSERT_TRUE(config.is_object()) << r->body.substr(0, 800);
  EXPECT_EQ(config["defaults"]["max_tokens"], 77);
  EXPECT_EQ(config["defaults"]["block_length"], 32);
  EXPECT_EQ(config["defaults"]["steps"], 32);
  EXPECT_DOUBLE_EQ(config["defaults"]["threshold"].get<double>(), 0.7);
  EXPECT_DOUBLE_EQ(config["defaults"]["editing_threshold"].get<double>(), 0.5);
  EXPECT_EQ(config["defaults"]["temperature"], 0.0);
  EXPECT_EQ(config["defaults"]["attention"], "block_causal");
  EXPECT_EQ(config["limits"]["max_tokens"], 4096);
  EXPECT_EQ(config["api_key"], false);

  // A cached copy is revalidated with its ETag.
  const std::string etag = r->get_header_value("ETag");
  ASSERT_FALSE(etag.empty());
  auto again = get(*s, "/", {{"If-None-Match", etag}});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 304);
  EXPECT_TRUE(again->body.empty());

  // Every other file of web/ under /static/, byte for byte, with its content type.
  size_t files = 0;
  for (const server::WebAsset& a : server::web_assets()) {
    if (a.name == "index.html") continue;
    ++files;
    auto f = get(*s, "/static/" + std::string(a.name));
    ASSERT_TRUE(f) << a.name;
    EXPECT_EQ(f->status, 200) << a.name;
    EXPECT_EQ(f->get_header_value("Content-Type"), a.content_type) << a.name;
    EXPECT_EQ(f->body, a.body) << a.name;
    EXPECT_FALSE(f->get_header_value("ETag").empty()) << a.name;
  }
  EXPECT_GE(files, 4u);
  auto js = get(*s, "/static/app.js");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(get(*s, "/static/style.css")->get_header_value("Content-Type"), "text/css; charset=utf-8");
}

TEST(WebPage, UnknownAndHostilePathsAre404) {
  auto s = start_server();
  for (const std::string& path : std::vector<std::string>{
           "/static/nonexistent", "/static/", "/static/index.html.bak", "/../../etc/passwd", "/static/../../etc/passwd",
           "/static/..%2f..%2fetc%2fpasswd", "/%2e%2e/%2e%2e/etc/passwd", "/static//etc/passwd", "/static/%00",
           "/index.html", "/static/" + std::string(4000, 'a')}) {
    auto r = get(*s, path);
    ASSERT_TRUE(r) << path;
    EXPECT_TRUE(r->status >= 400 && r->status < 500) << path << ": " << r->status;
    EXPECT_EQ(r->body.find("root:"), std::string::npos) << path;
  }
  auto r = get(*s, "/static/nonexistent");
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "not_found");
  // POST to the page: 405 naming GET; the API routes are as before.
  Reply p = post(*s, "/", json::object());
  expect_error(p, 405, "method_not_allowed");
  EXPECT_EQ(get(*s, "/health")->status, 200);
  EXPECT_EQ(get(*s, "/v1/models")->status, 200);
}

TEST(WebPage, NeedsNoApiKeyButTheApiDoes) {
  ServerOptions o;
  o.api_key = "page-key";
  auto s = start_server(o);
  auto page = get(*s, "/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page_config(page->body)["api_key"], true);
  EXPECT_EQ(get(*s, "/static/app.js")->status, 200);
  EXPECT_EQ(get(*s, "/v1/models")->status, 401);
  EXPECT_EQ(get(*s, "/v1/models", {{"Authorization", "Bearer page-key"}})->status, 200);
  expect_error(post(*s, "/v1/chat/completions", chat_body()), 401, "invalid_api_key");
}

// The canvas events carry each cell decoded alone, null where it is still masked.
TEST(WebPage, CanvasEventsCarryCells) {
  auto s = start_server();
  json body = chat_body();
  body["stream"] = true;
  body["llada2_canvas"] = true;
  auto c = client(*s);
  auto r = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  const Tokenizer& tok = *chat_pipeline()->tokenizer();
  const int64_t mask = *tok.mask_token_id();
  int frames = 0, masked = 0, written = 0;
  std::istringstream in(r->body);
  for (std::string line; std::getline(in, line);) {
    if (line != "event: canvas") continue;
    std::getline(in, line);
    ASSERT_EQ(line.rfind("data: ", 0), 0u);
    const json f = json::parse(line.substr(6));
    ++frames;
    ASSERT_TRUE(f["cells"].is_array()) << f;
    ASSERT_EQ(f["cells"].size(), f["tokens"].size());
    for (size_t i = 0; i < f["tokens"].size(); ++i) {
      const int64_t t = f["tokens"][i];
      if (t == mask) {
        EXPECT_TRUE(f["cells"][i].is_null());
        ++masked;
      } else {
        EXPECT_EQ(f["cells"][i], tok.decode({t}, false));
        ++written;
      }
    }
  }
  EXPECT_GT(frames, 0);
  EXPECT_GT(masked, 0);
  EXPECT_GT(written, 0);
}

// ---- the page in a real browser ---------------------------------------------------------------

TEST(WebPage, InChromium) {
  const auto chromium = find_on_path("chromium");
  if (!chromium)
    GTEST_SKIP() << "chromium is not installed, so the chat page was not tested in a browser: "
                    "apt-get install chromium (scripts/install-deps.sh installs it)";
  const auto node = find_on_path("node");
  ASSERT_TRUE(node) << "node is not on PATH: install Node.js 20+ (scripts/install-deps.sh)";
  ASSERT_TRUE(fs::exists(js_dir() / "node_modules" / "puppeteer-core" / "package.json"))
      << (js_dir() / "node_modules" / "puppeteer-core").string()
      << " is missing: run `npm ci` in tests/js (scripts/fetch-test-data.sh does on a fresh checkout)";

  // Each refinement step takes at least 20 ms, so the tiny model's diffusion can be watched (and
  // photographed) and a long answer is still running when the test stops it.
  ServerOptions open;
  open.parallel = 2;
  open.step_hook = [] { std::this_thread::sleep_for(std::chrono::milliseconds(20)); };
  auto server = start_server(open);
  ServerOptions locked;
  locked.api_key = "browser-key";
  auto key_server = start_server(locked);

  const char* shots_env = std::getenv("LLADA2_SCREENSHOT_DIR");
  const fs::path shots =
      shots_env && *shots_env ? fs::path(shots_env) : fs::path(LLADA2_CLI_PATH).parent_path() / "web_screenshots";
  fs::create_directories(shots);
  const auto started = Clock::now();
  const NodeRun run = run_node_test(
      *node, js_dir() / "web_page.test.mjs",
      {"LLADA2_PAGE_URL=http://127.0.0.1:" + std::to_string(server->port()) + "/",
       "LLADA2_KEY_PAGE_URL=http://127.0.0.1:" + std::to_string(key_server->port()) + "/", "LLADA2_KEY=browser-key",
       "LLADA2_CHROMIUM=" + chromium->string(), "LLADA2_SCREENSHOT_DIR=" + shots.string(), "NO_COLOR=1"},
      300);
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  EXPECT_EQ(run.exit_code, 0) << "node --test tests/js/web_page.test.mjs failed; its output:\n" << run.output;
  std::printf("[ chromium ] chat page tests: %.1f s, screenshots in %s\n", seconds, shots.c_str());
}

}  // namespace
}  // namespace llada2::testing
