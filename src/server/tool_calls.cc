#include "server/tool_calls.h"

#include <atomic>
#include <chrono>
#include <random>

#include "server/request.h"

namespace llada2::server {

namespace {

constexpr std::string_view kOpen = "<tool_call>", kClose = "</tool_call>";

bool blank(std::string_view s) { return s.find_first_not_of(" \t\r\n") == std::string_view::npos; }

std::string_view trim(std::string_view s) {
  const size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string_view::npos) return {};
  const size_t b = s.find_last_not_of(" \t\r\n");
  return s.substr(a, b - a + 1);
}

}  // namespace

std::optional<ParsedReply> parse_tool_calls(const std::string& text, const std::set<std::string>& offered,
                                            const std::function<std::string()>& new_id) {
  const std::string_view t(text);
  size_t at = t.find(kOpen);
  if (at == std::string_view::npos) return std::nullopt;
  ParsedReply r;
  if (std::string_view before = trim(t.substr(0, at)); !before.empty()) r.content = std::string(before);
  while (at != std::string_view::npos) {
    const size_t body = at + kOpen.size();
    const size_t close = t.find(kClose, body);
    const std::string_view json_text = t.substr(body, close == std::string_view::npos ? t.npos : close - body);
    const auto j = nlohmann::ordered_json::parse(json_text.begin(), json_text.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    auto name = j.find("name");
    if (name == j.end() || !name->is_string() || !offered.count(name->get<std::string>())) return std::nullopt;
    std::string arguments = "{}";
    if (auto a = j.find("arguments"); a != j.end()) {
      if (a->is_object())
        arguments = a->dump();
      else if (a->is_string())
        arguments = a->get<std::string>();
      else
        return std::nullopt;
    }
    r.calls.push_back({new_id(), name->get<std::string>(), std::move(arguments)});
    if (close == std::string_view::npos) break;  // an unclosed last block whose JSON is complete
    const size_t next = close + kClose.size();
    at = t.find(kOpen, next);
    if (!blank(t.substr(next, at == std::string_view::npos ? t.npos : at - next))) return std::nullopt;
  }
  return r;
}

size_t content_before_tool_call(const std::string& text) {
  const size_t at = text.find(kOpen);
  if (at != std::string::npos) return at;
  // A tail that is a proper prefix of "<tool_call>" may still become one.
  for (size_t k = std::min(text.size(), kOpen.size() - 1); k > 0; --k)
    if (text.compare(text.size() - k, k, kOpen.substr(0, k)) == 0) return text.size() - k;
  return text.size();
}

std::string new_tool_call_id() {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng(uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                                   (counter.fetch_add(1) * 0x9E3779B97F4A7C15ull));
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kChars[rng() % (sizeof kChars - 1)];
  return id;
}

std::set<std::string> tool_names(const nlohmann::ordered_json& tools) {
  if (!tools.is_array()) throw invalid_request("`tools` must be a list of {\"type\": \"function\", ...}", "tools");
  std::set<std::string> names;
  for (const auto& tool : tools) {
    if (!tool.is_object() || !has_string(tool, "type", "function") || !tool.contains("function") ||
        !tool["function"].is_object())
      throw invalid_request("each tool must be {\"type\": \"function\", \"function\": {\"name\": ...}}", "tools");
    const auto& f = tool["function"];
    if (!f.contains("name") || !f["name"].is_string() || f["name"].get<std::string>().empty())
      throw invalid_request("each tool's function needs a non-empty string `name`", "tools");
    if (!names.insert(f["name"].get<std::string>()).second)
      throw invalid_request("two tools are named `" + f["name"].get<std::string>() + "`", "tools");
  }
  return names;
}

}  // namespace llada2::server
