// The files of the chat page (web/), compiled into the server by cmake/embed.cmake.
#pragma once

#include <span>
#include <string_view>

namespace llada2::server {

struct WebAsset {
  std::string_view name;  // the file's name in web/, e.g. "app.js"
  std::string_view content_type;
  std::string_view body;
};

// Every file of web/, in the order CMake lists them (cmake/sources.cmake).
std::span<const WebAsset> web_assets();

}  // namespace llada2::server
