#include "server/web_page.h"

#include <cstdint>
#include <cstdio>

#include "server/request.h"
#include "server/web_assets.h"

namespace llada2::server {

namespace {

// Where index.html takes the server's configuration.
constexpr std::string_view kConfigMarker = "<!--server-config-->";

std::string etag_of(std::string_view body) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : body) h = (h ^ c) * 1099511628211ull;
  char buf[24];
  std::snprintf(buf, sizeof buf, "\"%016llx\"", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

WebPage::WebPage(const nlohmann::ordered_json& config) {
  for (const WebAsset& a : web_assets()) {
    File f{std::string(a.content_type), std::string(a.body), ""};
    const bool index = a.name == "index.html";
    std::string path(index ? "/" : "/static/");
    if (!index) path.append(a.name);
    if (index) {
      // A JSON data block, with "<" escaped so no string in it can end the element.
      std::string json = config.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
      std::string escaped;
      for (char c : json) {
        if (c == '<')
          escaped.append("\\u003c");
        else
          escaped.push_back(c);
      }
      if (size_t at = f.body.find(kConfigMarker); at != std::string::npos)
        f.body.replace(at, kConfigMarker.size(),
                       "<script id=\"server-config\" type=\"application/json\">" + escaped + "</script>");
    }
    f.etag = etag_of(f.body);
    files_.emplace(std::move(path), std::move(f));
  }
}

void WebPage::serve(const httplib::Request& req, httplib::Response& res) const {
  auto it = files_.find(req.path);
  if (it == files_.end()) {
    // A body of its own: the server's error handler would call a GET route's 404 a 405.
    res.status = 404;
    res.set_content(nlohmann::ordered_json(error_body(ApiError(404, "No file " + req.path + " in the chat page.",
                                                               "invalid_request_error", "", "not_found")))
                        .dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace),
                    "application/json");
    return;
  }
  const File& f = it->second;
  // Revalidated on every load (cheap: 304), so a new binary's page is never hidden by a cache.
  res.set_header("Cache-Control", "no-cache");
  res.set_header("ETag", f.etag);
  res.set_header("X-Content-Type-Options", "nosniff");
  if (req.path == "/") {
    // The page shows model output: nothing but its own files may run or load, whatever a bug let through.
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                   "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
    res.set_header("Referrer-Policy", "no-referrer");
  }
  const std::string inm = req.get_header_value("If-None-Match");
  if (!inm.empty() && (inm == "*" || inm.find(f.etag) != std::string::npos)) {
    res.status = 304;
    return;
  }
  res.set_content(f.body, f.content_type.c_str());
}

}  // namespace llada2::server
