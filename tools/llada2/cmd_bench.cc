// llada2 bench: end-to-end throughput of the pipeline on a checkpoint with random prompt ids.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "cli_util.h"
#include "commands.h"
#include "progress.h"
#include "core/thread_pool.h"
#include "llada2/error.h"
#include "llada2/model.h"
#include "llada2/pipeline.h"
#include "llada2/rng.h"

namespace llada2::cli {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = size_t(q * double(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

double peak_rss_mb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  CLI::App app{"Measure load time, prefill and generation speed on a checkpoint (random prompt ids, greedy).",
               "llada2 bench"};
  std::string model_dir, attention = "block_causal", editing = "none";
  int64_t prompt_length = 64, gen_length = 256, block_length = 32, steps = 32, batch = 1, seed = 1;
  double threshold = 0.95;
  int threads = 0;
  bool json_out = false, no_cache = false;
  app.add_option("-m,--model", model_dir, "checkpoint folder")->required();
  app.add_option("--prompt-length", prompt_length, "random prompt ids per row (default 64)");
  app.add_option("--gen-length", gen_length, "generated positions (default 256)");
  app.add_option("--block-length", block_length, "block size (default 32)");
  app.add_option("--steps", steps, "num_inference_steps (default 32)");
  app.add_option("--threshold", threshold, "commit threshold (default 0.95)");
  app.add_option("--editing-threshold", editing, "editing threshold, 'none' = off (default none)");
  app.add_option("--batch", batch, "rows generated together (default 1)");
  app.add_option("--attention", attention, "block_causal (default) or bidirectional");
  app.add_flag("--no-cache", no_cache, "block_causal without the prefix KV cache (recompute the window)");
  app.add_option("--seed", seed, "seed of the random prompt");
  app.add_option("-t,--threads", threads, "worker threads (default: all cores)");
  app.add_flag("--json", json_out, "print one JSON object");
  if (int rc = parse_args(app, argc, argv); rc >= 0) return rc;
  if (prompt_length < 1 || gen_length < 1 || block_length < 1 || steps < 1 || batch < 1)
    throw InputError("bench: lengths, steps and batch must be >= 1");
  if (threads > 0) set_num_threads(threads);

  double t0 = now_s();
  std::shared_ptr<const Model> model = Model::load(model_dir);
  const double load_s = now_s() - t0;
  load_weights(*model, model_dir);
  const ModelConfig& cfg = model->config();
  const int64_t V = cfg.vocab_size;
  const int64_t mask_id = cfg.mask_token_id.value_or(V > 156895 ? 156895 : V - 1);

  Rng rng{static_cast<uint64_t>(seed)};
  std::vector<std::vector<int64_t>> rows(static_cast<size_t>(batch));
  for (auto& r : rows)
    for (int64_t i = 0; i < prompt_length; ++i) {
      int64_t id = int64_t(rng.next() % uint64_t(V));
      r.push_back(id == mask_id ? (id + 1) % V : id);
    }
  const AttentionMode mode = parse_attention_mode(attention);

  // Prefill: the block-aligned part of the prompt through a fresh cache.
  double prefill_tps = 0;
  const int64_t aligned = (prompt_length / block_length) * block_length;
  if (aligned > 0 && mode == AttentionMode::BlockCausal) {
    KvCache cache = model->make_cache(batch, aligned);
    std::vector<int64_t> ids, km(size_t(batch * aligned), 1);
    for (const auto& r : rows) ids.insert(ids.end(), r.begin(), r.begin() + aligned);
    ForwardBatch fb;
    fb.batch = batch;
    fb.window = aligned;
    fb.input_ids = ids.data();
    fb.key_mask = km.data();
    fb.attention = mode;
    fb.block_length = block_length;
    fb.logits_from = aligned;
    fb.commit_to = aligned;
    double tp = now_s();
    model->forward(fb, nullptr, nullptr, &cache);
    prefill_tps = double(batch * aligned) / (now_s() - tp);
  }

  GenerateOptions o;
  o.input_ids = IdTensor::from_rows(rows);
  o.gen_length = gen_length;
  o.block_length = block_length;
  o.num_inference_steps = steps;
  o.threshold = threshold;
  o.editing_threshold = (editing == "none" || editing == "None") ? std::nullopt : std::optional<double>(std::stod(editing));
  o.mask_token_id = mask_id;
  o.eos_early_stop = false;
  o.output_type = "seq";
  o.attention = mode;
  o.use_kv_cache = !no_cache;
  o.callback_on_step_end_tensor_inputs = std::vector<std::string>{"active_block"};
  std::vector<double> stamps;
  o.callback_on_step_end = [&](int64_t, int64_t, const std::map<std::string, CallbackTensor>&) {
    stamps.push_back(now_s());
    return CallbackResult{};
  };
  const uint64_t bytes0 = model->weight_bytes_read();
  const double tg = now_s();
  PipelineOutput out = Pipeline(model)(o);
  const double gen_s = now_s() - tg;
  const uint64_t bytes = model->weight_bytes_read() - bytes0;
  std::vector<double> step_s;
  for (size_t i = 1; i < stamps.size(); ++i) step_s.push_back(stamps[i] - stamps[i - 1]);
  const double med = percentile(step_s, 0.5), p90 = percentile(step_s, 0.9);
  const double bytes_per_step = out.stats.forwards ? double(bytes) / double(out.stats.forwards) : 0;
  nlohmann::json j = {
      {"model", model_dir},
      {"threads", num_threads()},
      {"attention", attention},
      {"kv_cache", mode == AttentionMode::BlockCausal && !no_cache},
      {"prompt_length", prompt_length},
      {"gen_length", gen_length},
      {"block_length", block_length},
      {"steps", steps},
      {"threshold", threshold},
      {"editing_threshold", o.editing_threshold ? nlohmann::json(*o.editing_threshold) : nlohmann::json(nullptr)},
      {"batch", batch},
      {"load_seconds", load_s},
      {"prefill_tokens_per_second", prefill_tps},
      {"step_seconds_median", med},
      {"step_seconds_p90", p90},
      {"forwards", out.stats.forwards},
      {"tokens_per_forward", out.stats.tokens_per_forward()},
      {"generated_tokens", out.stats.generated_tokens},
      {"generation_seconds", gen_s},
      {"generated_tokens_per_second", double(out.stats.generated_tokens) / gen_s},
      {"weight_bytes_per_step", bytes_per_step},
      {"weight_gb_per_second", med > 0 ? bytes_per_step / med / 1e9 : 0.0},
      {"peak_rss_mb", peak_rss_mb()},
  };
  if (json_out) {
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::printf("model            %s (%lld layers, hidden %lld, %lld experts)\n", model_dir.c_str(),
              (long long)cfg.num_hidden_layers, (long long)cfg.hidden_size, (long long)cfg.num_experts);
  std::printf("threads          %d\n", num_threads());
  std::printf("load             %.3f s\n", load_s);
  std::printf("prefill          %.1f tokens/s\n", prefill_tps);
  std::printf("step latency     median %.2f ms, p90 %.2f ms\n", med * 1e3, p90 * 1e3);
  std::printf("forwards         %lld (%.2f tokens/forward)\n", (long long)out.stats.forwards, out.stats.tokens_per_forward());
  std::printf("generation       %lld tokens in %.2f s = %.2f tokens/s\n", (long long)out.stats.generated_tokens, gen_s,
              double(out.stats.generated_tokens) / gen_s);
  std::printf("weights / step   %.1f MB (%.1f GB/s at the median step)\n", bytes_per_step / 1e6,
              med > 0 ? bytes_per_step / med / 1e9 : 0.0);
  std::printf("peak RSS         %.1f MB\n", peak_rss_mb());
  return 0;
}

}  // namespace llada2::cli
