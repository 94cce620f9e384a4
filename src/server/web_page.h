// The chat page: GET / answers web/index.html, GET /static/NAME the other files of web/. They are
// compiled into the binary (web_assets.h), so the page needs nothing from the network, and they never
// need the API key (the page asks for it and sends it to /v1/* itself).
#pragma once

#include <httplib.h>

#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace llada2::server {

class WebPage {
 public:
  // `config` (the server's generation defaults and limits) goes into the page, so its settings panel
  // shows what a request without those fields gets.
  explicit WebPage(const nlohmann::ordered_json& config);

  // Answers GET `req.path` ("/" or "/static/NAME"): the file with its content type and an ETag (304 when
  // If-None-Match has it), or 404 for a name that is not there. Never reads the file system.
  void serve(const httplib::Request& req, httplib::Response& res) const;

 private:
  struct File {
    std::string content_type, body, etag;
  };
  std::map<std::string, File, std::less<>> files_;  // by path: "/", "/static/app.js", ...
};

}  // namespace llada2::server
