// Fuzzes the server's request validation: the input is an HTTP request body for
// /v1/chat/completions (first byte odd) or /v1/completions, parsed as the server does and turned into a
// generation request against a tiny model that carries the synthetic Ling-style tokenizer and
// chat template (so messages are rendered and prompts tokenized; nothing is generated). Every
// rejection must be an ApiError; crashes, hangs and other exceptions are bugs.
// Run from the repository root (scripts/fuzz.sh): the tokenizer comes from tests/data/tok/ling-synth.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "llada2/pipeline.h"
#include "llada2/test_model.h"
#include "server/request.h"

namespace {

const llada2::Pipeline& pipeline() {
  static std::unique_ptr<llada2::Pipeline> pipe = [] {
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("llada2_fuzz_server_" + std::to_string(::getpid()));
    llada2::TestModelOptions o;
    o.shape = "tiny-a";
    o.dtype = llada2::DType::F32;
    o.tokenizer_dir = "tests/data/tok/ling-synth";
    llada2::write_test_model(dir.string(), o);
    auto p = std::make_unique<llada2::Pipeline>(llada2::Pipeline::from_pretrained(dir.string()));
    std::filesystem::remove_all(dir);  // the weights stay mapped
    return p;
  }();
  return *pipe;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool chat = data[0] & 1;
  llada2::ServerOptions opt;
  opt.model_id = "tiny";
  try {
    const auto body =
        llada2::server::parse_request_body(std::string(reinterpret_cast<const char*>(data + 1), size - 1));
    llada2::server::CompletionRequest r = llada2::server::parse_completion_request(body, chat, pipeline(), opt);
    if (r.prompts.empty() || r.n < 1) std::abort();
  } catch (const llada2::server::ApiError&) {}
  return 0;
}
