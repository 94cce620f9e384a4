// Single-threaded encode throughput of llada2::Tokenizer on the golden corpora (the texts of
// tests/data/tok/golden/<name>.public.jsonl.gz, encoded one line at a time). Run from the repository
// root, or set LLADA2_TOK_DATA to the tests/data/tok folder. Compare with bench/tokenizer_npm.js.
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "llada2/json.h"
#include "llada2/tokenizer.h"

namespace {

std::string data_dir() {
  const char* d = std::getenv("LLADA2_TOK_DATA");
  return d ? d : "tests/data/tok";
}

std::vector<std::string> corpus(const std::string& name) {
  std::string cmd = "gzip -dc '" + data_dir() + "/golden/" + name + ".public.jsonl.gz'";
  FILE* p = popen(cmd.c_str(), "r");
  std::string all;
  if (p) {
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) all.append(buf, n);
    pclose(p);
  }
  std::vector<std::string> texts;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t e = all.find('\n', pos);
    if (e == std::string::npos) e = all.size();
    if (e > pos)
      texts.push_back(
          llada2::parse_json(std::string_view(all).substr(pos, e - pos), cmd).at("text").get<std::string>());
    pos = e + 1;
  }
  return texts;
}

std::string tokenizer_path(const std::string& name) {
  if (name == "ling-synth") return data_dir() + "/ling-synth/tokenizer.json";
  return data_dir() + "/third_party/" + name + "/tokenizer.json";
}

void BM_Encode(benchmark::State& state, const std::string& name) {
  std::vector<std::string> texts = corpus(name);
  if (texts.empty()) {
    state.SkipWithError("no corpus (run from the repository root or set LLADA2_TOK_DATA)");
    return;
  }
  llada2::Tokenizer tok = [&] {
    try {
      return llada2::Tokenizer::from_file(tokenizer_path(name));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s (third-party files: scripts/fetch-test-data.sh)\n", e.what());
      std::exit(1);
    }
  }();
  size_t bytes = 0, tokens = 0;
  for (const auto& t : texts) bytes += t.size();
  for (auto _ : state) {
    tokens = 0;
    for (const auto& t : texts) {
      auto ids = tok.encode(t, true);
      tokens += ids.size();
      benchmark::DoNotOptimize(ids.data());
    }
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(bytes));
  state.counters["tokens"] = double(tokens);
  state.counters["corpus_MB"] = double(bytes) / 1e6;
}

// Like BM_Encode but with a freshly loaded tokenizer each iteration, so its word cache starts empty.
void BM_EncodeCold(benchmark::State& state, const std::string& name) {
  std::vector<std::string> texts = corpus(name);
  size_t bytes = 0;
  for (const auto& t : texts) bytes += t.size();
  for (auto _ : state) {
    state.PauseTiming();
    llada2::Tokenizer tok = llada2::Tokenizer::from_file(tokenizer_path(name));
    state.ResumeTiming();
    for (const auto& t : texts) benchmark::DoNotOptimize(tok.encode(t, true).data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(bytes));
}

void BM_Load(benchmark::State& state, const std::string& name) {
  for (auto _ : state) benchmark::DoNotOptimize(llada2::Tokenizer::from_file(tokenizer_path(name)));
}

const int kRegistered = [] {
  for (const char* n : {"ling-synth", "qwen3", "llama3", "deepseek_v3", "gemma3"})
    benchmark::RegisterBenchmark(("encode/" + std::string(n)).c_str(), BM_Encode, std::string(n))
        ->Unit(benchmark::kMillisecond);
  for (const char* n : {"ling-synth", "qwen3"})
    benchmark::RegisterBenchmark(("encode_cold_cache/" + std::string(n)).c_str(), BM_EncodeCold, std::string(n))
        ->Unit(benchmark::kMillisecond);
  for (const char* n : {"qwen3", "gemma3"})
    benchmark::RegisterBenchmark(("load/" + std::string(n)).c_str(), BM_Load, std::string(n))
        ->Unit(benchmark::kMillisecond);
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
