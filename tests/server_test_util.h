// Helpers of the server tests: a server on loopback over the tiny chat model, small requests, and
// checks of OpenAI-shaped errors.
#pragma once

#include <httplib.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "llada2/pipeline.h"
#include "llada2/server.h"

namespace llada2::testing {

// The tiny chat model of chat_model_dir(), loaded once per process.
std::shared_ptr<const Pipeline> chat_pipeline();

// A started server on 127.0.0.1, an ephemeral port, model id "tiny-chat".
std::unique_ptr<Server> start_server(ServerOptions o = {});

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

}  // namespace llada2::testing
