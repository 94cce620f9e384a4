#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "cli_util.h"
#include "commands.h"
#include "llada2/error.h"
#include "llada2/test_model.h"
#include "progress.h"

namespace llada2::cli {

namespace {

// "4GB", "500MB", "64KiB", "1000": decimal (KB/MB/GB) or binary (KiB/MiB/GiB) units, as
// Hugging Face's max_shard_size.
uint64_t parse_size(const std::string& s) {
  size_t pos = 0;
  unsigned long long n = 0;
  try {
    n = std::stoull(s, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  std::string unit = s.substr(pos);
  for (char& ch : unit) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  static const struct {
    const char* name;
    uint64_t mult;
  } kUnits[] = {{"", 1},
                {"B", 1},
                {"KB", 1000},
                {"MB", 1000000},
                {"GB", 1000000000ull},
                {"KIB", 1ull << 10},
                {"MIB", 1ull << 20},
                {"GIB", 1ull << 30}};
  if (pos > 0 && s[0] != '-' && n > 0) {
    for (const auto& u : kUnits) {
      if (unit == u.name && n <= UINT64_MAX / u.mult) return n * u.mult;
    }
  }
  throw InputError("--max-shard-size: expected a positive size like 4GB, 500MB or 1000000, got '" + s + "'");
}

uint64_t parse_seed(const std::string& s) {
  bool digits = !s.empty() && s.size() <= 20 && s.find_first_not_of("0123456789") == std::string::npos;
  errno = 0;
  unsigned long long v = digits ? std::strtoull(s.c_str(), nullptr, 10) : 0;
  if (!digits || errno == ERANGE) throw InputError("--seed: expected an integer in [0, 2^64), got '" + s + "'");
  return v;
}

}  // namespace

int cmd_make_test_model(int argc, char** argv) {
  CLI::App app{
      "Write a random-weight llada2_moe checkpoint (config.json + safetensors, Hugging Face layout)\n"
      "for tests and benchmarks. Weights are deterministic for a seed: linear layers N(0, 1/in_features),\n"
      "embeddings N(0, 1), norms 1 + N(0, 0.02^2), expert_bias F32 N(0, 0.01^2).",
      "llada2 make-test-model"};
  std::string shape, dtype = "bf16", out, shard = "4GB", seed_text = "0", tokenizer;
  bool force = false, quiet = false, packed = false;
  app.add_option("--shape", shape,
                 "tiny-a | tiny-b (the golden tiny models' configs, with mask/eos ids) | mini-L<n> (real "
                 "LLaDA2-mini dimensions with n layers, layer 0 dense; mini-L20 is the full 16B model, ~32 GB "
                 "in bf16) | tiny-22 | mini22-L<n> (LLaDA2.2 shapes: block routing, delete/split ids, "
                 "generation_config.json with the stop ids)")
      ->required()
      ->type_name("NAME");
  app.add_option("--dtype", dtype, "weight dtype: f32 | bf16 | f16 (default bf16; expert_bias is always F32)")
      ->type_name("DTYPE");
  app.add_option("--seed", seed_text, "random seed (default 0); the same seed gives byte-identical files")
      ->type_name("N");
  app.add_option("--out", out, "output folder (created if needed)")->required()->type_name("DIR");
  app.add_flag("--force", force,
               "write into a non-empty folder, replacing config.json, generation_config.json and any "
               "model*.safetensors");
  app.add_flag("--packed-experts", packed,
               "store each layer's routed experts packed, one tensor per projection (mlp.experts.gate_proj.weight "
               "[experts, moe_intermediate, hidden], ...), as transformers 5 writes them");
  app.add_option("--max-shard-size", shard,
                 "split the weights into model-0000N-of-0000M.safetensors shards + index above this size "
                 "(default 4GB; units B, KB, MB, GB, KiB, MiB, GiB)")
      ->type_name("SIZE");
  app.add_option("--tokenizer", tokenizer,
                 "copy this folder's tokenizer.json (+ tokenizer_config.json, chat template) beside the weights; "
                 "the vocabulary grows to cover it and the mask/EOS ids come from the tokenizer")
      ->type_name("DIR");
  app.add_flag("--quiet", quiet, "no progress on stderr");
  if (int rc = parse_args(app, argc, argv); rc >= 0) return rc;

  TestModelOptions o;
  o.shape = shape;
  o.dtype = parse_test_model_dtype(dtype);
  o.seed = parse_seed(seed_text);
  o.max_shard_bytes = parse_size(shard);
  o.tokenizer_dir = tokenizer;
  o.packed_experts = packed;
  test_model_config_json(shape, o.dtype);  // rejects a bad shape before touching the folder

  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_directory(out, ec))
    throw InputError("--out " + out + " exists and is not a folder");
  if (fs::is_directory(out, ec) && !fs::is_empty(out, ec) && !force)
    throw InputError("--out " + out + " is not empty; pass --force to overwrite the checkpoint in it");

  ByteProgress progress("writing " + out, quiet);
  o.progress = [&](uint64_t done, uint64_t total) { progress(done, total); };
  write_test_model(out, o);
  if (progress.printed()) std::fprintf(stderr, "wrote %s in %.1f s\n", out.c_str(), progress.seconds());
  return 0;
}

}  // namespace llada2::cli
