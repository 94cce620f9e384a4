// llada2 bench: end-to-end throughput of the pipeline on a checkpoint with random prompt ids.
#include <sys/resource.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "llada2/bench.h"
#include "llada2/error.h"
#include "llada2/model.h"
#include "llada2/pipeline.h"
#include "llada2/rng.h"
#include "llada2/runtime.h"
#include "progress.h"

namespace llada2::cli {

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = size_t(q * double(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// The cache of measured machine limits: $XDG_CACHE_HOME/llada2/machine.json (or ~/.cache/...), one
// entry per CPU model, kernel tier and thread count.
std::string machine_cache_path() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  if (xdg && *xdg) return std::string(xdg) + "/llada2/machine.json";
  if (home && *home) return std::string(home) + "/.cache/llada2/machine.json";
  return "";
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) return line.substr(line.find(':') + 2);
  return "unknown cpu";
}

struct Limits {
  MachineLimits m;
  std::string source;  // "measured now", "measured <date>, cached in PATH"
};

Limits machine_limits(bool remeasure) {
  const std::string path = machine_cache_path();
  const std::string key =
      cpu_model() + " | " + runtime::isa() + " | " + std::to_string(runtime::threads()) + " threads";
  nlohmann::json cache = nlohmann::json::object();
  if (!path.empty()) {
    std::ifstream in(path);
    if (in) cache = nlohmann::json::parse(in, nullptr, false);
    if (!cache.is_object()) cache = nlohmann::json::object();
  }
  if (!remeasure && cache.contains(key) && cache[key].is_object()) {
    const auto& e = cache[key];
    if (e.value("read_gbs", 0.0) > 0 && e.value("fma_gflops", 0.0) > 0) {
      Limits l;
      l.m.read_gbs = e["read_gbs"];
      l.m.fma_gflops = e["fma_gflops"];
      l.source = "measured " + e.value("date", std::string("earlier")) + ", cached in " + path;
      return l;
    }
  }
  std::fprintf(stderr, "measuring this machine's read bandwidth and FMA peak (once; cached)...\n");
  Limits l;
  l.m = measure_machine(1.0);
  char date[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&t));
  l.source = "measured now";
  if (!path.empty()) {
    cache[key] = {{"read_gbs", l.m.read_gbs}, {"fma_gflops", l.m.fma_gflops}, {"date", date}};
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    const std::string tmp = path + ".tmp" + std::to_string(::getpid());
    if (std::ofstream(tmp) << cache.dump(2) << "\n") std::filesystem::rename(tmp, path, ec);
    if (!ec) l.source += ", cached in " + path;
  }
  return l;
}

double peak_rss_mb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}

// One line of the step breakdown: per-step averages and where they sit against the roofline.
struct PhaseRow {
  std::string name;
  double seconds = 0;    // per step
  double bytes = 0;      // weight bytes per step
  double flops = 0;      // per step
  double f32_equiv = 0;  // flops at the float32 rate: bf16-activation products count 1/2, int8 ones 1/4
};

PhaseRow phase_row(std::string name, double seconds, const ModelProfile::Counters& c, double n_steps) {
  const double f = double(c.flops), b = double(c.flops_bf16), q = double(c.flops_int8);
  return {std::move(name), seconds, double(c.weight_bytes) / n_steps, f / n_steps,
          (f - b - q + b / 2 + q / 4) / n_steps};
}

// Roofline time of a row: the longer of streaming its weights at `bw_gbs` and of its FLOPs at
// `peak_gflops` (the float32 rate; products over bf16 / int8 activations at 2x / 4x it); 0 when it
// has neither (no roofline to compare against).
double roofline_seconds(const PhaseRow& r, double bw_gbs, double peak_gflops) {
  return std::max(r.bytes / (bw_gbs * 1e9), r.f32_equiv / (peak_gflops * 1e9));
}

const char* bound_of(const PhaseRow& r, double bw_gbs, double peak_gflops) {
  if (r.bytes == 0 && r.flops == 0) return nullptr;
  return r.bytes / (bw_gbs * 1e9) >= r.f32_equiv / (peak_gflops * 1e9) ? "memory" : "compute";
}

nlohmann::json phase_json(const PhaseRow& r, double step_s, double bw_gbs, double peak_gflops) {
  const double roof = roofline_seconds(r, bw_gbs, peak_gflops);
  const char* bound = bound_of(r, bw_gbs, peak_gflops);
  return {
      {"ms_per_step", r.seconds * 1e3},
      {"step_fraction", step_s > 0 ? r.seconds / step_s : 0.0},
      {"weight_mb_per_step", r.bytes / 1e6},
      {"gflop_per_step", r.flops / 1e9},
      {"gb_per_second", r.seconds > 0 ? r.bytes / r.seconds / 1e9 : 0.0},
      {"gflop_per_second", r.seconds > 0 ? r.flops / r.seconds / 1e9 : 0.0},
      {"roofline_ms", roof * 1e3},
      {"roofline_percent", bound && r.seconds > 0 ? nlohmann::json(100.0 * roof / r.seconds) : nlohmann::json(nullptr)},
      {"bound", bound ? nlohmann::json(bound) : nlohmann::json(nullptr)},
  };
}

void print_phase(const PhaseRow& r, double step_s, double bw_gbs, double peak_gflops) {
  const double roof = roofline_seconds(r, bw_gbs, peak_gflops);
  const char* bound = bound_of(r, bw_gbs, peak_gflops);
  std::printf("  %-22s %9.2f %6.1f%% %9.1f %8.2f", r.name.c_str(), r.seconds * 1e3,
              step_s > 0 ? 100.0 * r.seconds / step_s : 0.0, r.bytes / 1e6, r.flops / 1e9);
  if (bound && r.seconds > 0) {
    std::printf(" %7.1f %8.1f %8.2f %6.1f%% %s\n", r.bytes / r.seconds / 1e9, r.flops / r.seconds / 1e9, roof * 1e3,
                100.0 * roof / r.seconds, bound);
  } else {
    std::printf(" %7s %8s %8s %7s\n", "-", "-", "-", "-");
  }
}

// One simulated conversation for --turns: each turn's prompt is the previous turn's prompt and
// generated cells plus `turn_tokens` new random ids. Returns, per turn, {prompt length, positions
// reused, seconds to the first final block, seconds of the whole call}.
struct TurnTiming {
  int64_t prompt = 0, reused = 0;
  double first_block_s = 0, call_s = 0;
};

std::vector<TurnTiming> conversation(const std::shared_ptr<const Model>& model, const GenerateOptions& base,
                                     int64_t turns, int64_t turn_tokens, bool reuse, uint64_t seed) {
  const int64_t V = model->config().vocab_size, mask = *base.mask_token_id;
  Rng rng{seed};
  std::vector<int64_t> history;
  std::shared_ptr<const CachedPrefix> prefix;
  std::vector<TurnTiming> out;
  const Pipeline pipe(model);
  for (int64_t t = 0; t < turns; ++t) {
    for (int64_t i = 0; i < turn_tokens; ++i) {
      int64_t id = int64_t(rng.next() % uint64_t(V));
      history.push_back(id == mask ? (id + 1) % V : id);
    }
    GenerateOptions o = base;
    o.input_ids = IdTensor::from_rows({history});
    o.keep_prefixes = reuse;
    if (reuse && prefix) o.reuse_prefixes = {prefix};
    double first_block = 0;
    int64_t first_w = 0;
    const double t0 = now_s();
    o.callback_on_step_end_tensor_inputs = std::vector<std::string>{"block_x"};
    o.callback_on_step_end = [&](int64_t, int64_t, const std::map<std::string, CallbackTensor>& x) {
      const int64_t w = x.at("block_x").shape[1];
      if (first_w == 0) first_w = w;
      if (w == first_w) first_block = now_s() - t0;  // the first block's steps (its last one ends it)
      return CallbackResult{};
    };
    PipelineOutput r = pipe(o);
    const double call_s = now_s() - t0;
    out.push_back({int64_t(history.size()), r.stats.reused_positions, first_block, call_s});
    if (reuse && !r.prefixes.empty() && r.prefixes[0]) prefix = r.prefixes[0];
    history.insert(history.end(), r.sequences.row(0), r.sequences.row(0) + r.sequences.cols);
  }
  return out;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  CLI::App app{"Measure load time, prefill and generation speed on a checkpoint (random prompt ids, greedy).",
               "llada2 bench"};
  std::string model_dir, attention = "block_causal", editing = "none", decoding = "auto";
  int64_t prompt_length = 64, gen_length = 256, block_length = 32, steps = 32, batch = 1, seed = 1;
  double threshold = 0.95, bandwidth_gbs = 0, peak_gflops = 0;
  int threads = 0;
  bool json_out = false, no_cache = false, uniform_routing = false;
  app.add_option("-m,--model", model_dir, "checkpoint folder")->required();
  app.add_option("--prompt-length", prompt_length, "random prompt ids per row (default 64)");
  app.add_option("--gen-length", gen_length, "generated positions (default 256)");
  app.add_option("--block-length", block_length, "block size (default 32)");
  app.add_option("--steps", steps, "num_inference_steps (default 32)");
  app.add_option("--threshold", threshold, "commit threshold (default 0.95; LLaDA2.2 rules: 0.5)");
  app.add_option("--editing-threshold", editing,
                 "editing threshold, 'none' = off (default none; LLaDA2.2 rules: 0, every changed argmax)");
  app.add_option("--decoding", decoding,
                 "auto (default: llada2.2 for a checkpoint whose config.json has the LLaDA2.2 fields, else llada2.1), "
                 "llada2.1 or llada2.2");
  app.add_option("--batch", batch, "rows generated together (default 1)");
  app.add_option("--attention", attention, "block_causal (default) or bidirectional");
  app.add_flag("--no-cache", no_cache, "block_causal without the prefix KV cache (recompute the window)");
  app.add_flag("--uniform-routing", uniform_routing,
               "send each token to num_experts_per_tok distinct experts drawn uniformly (weights 1/k, no group "
               "limit, no scaling) instead of the router's choice, as a load-balanced trained model spreads a "
               "block (random test checkpoints route most tokens to a few experts); the tokens are then not the "
               "model's");
  app.add_option("--seed", seed, "seed of the random prompt");
  int64_t turns = 0, turn_tokens = 160;
  app.add_option("--turns", turns,
                 "instead: a simulated conversation of this many turns, each adding --turn-tokens random ids and "
                 "its --gen-length generated cells to the prompt; prints the time to the first final block of "
                 "every turn with the conversation's cached keys and values reused and without")
      ->check(CLI::Range(int64_t(1), int64_t(1000)));
  app.add_option("--turn-tokens", turn_tokens, "new prompt ids per turn for --turns (default 160)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  app.add_option("-t,--threads", threads, "worker threads (default: all cores)")->check(CLI::Range(1, 4096));
  ActivationFlags activations;
  activations.add(app);
  bool remeasure = false;
  app.add_option("--bandwidth-gbs", bandwidth_gbs,
                 "memory read bandwidth for the step breakdown's roofline, GB/s (default: measured on this machine "
                 "with the threads in use, once, and cached)");
  app.add_option("--peak-gflops", peak_gflops,
                 "float32 FMA peak for the step breakdown's roofline, GFLOP/s (default: measured with the kernel tier "
                 "and threads in use, once, and cached)");
  app.add_flag("--remeasure", remeasure,
               "measure the bandwidth and FMA peak again instead of using the cached figures");
  app.add_flag("--json", json_out, "print one JSON object (the step breakdown under \"phases\")");
  if (int rc = parse_args(app, argc, argv); rc >= 0) return rc;
  if (prompt_length < 1 || gen_length < 1 || block_length < 1 || steps < 1 || batch < 1)
    throw InputError("bench: lengths, steps and batch must be >= 1");
  if ((app.count("--bandwidth-gbs") && !(bandwidth_gbs > 0)) || (app.count("--peak-gflops") && !(peak_gflops > 0)))
    throw InputError("bench: --bandwidth-gbs and --peak-gflops must be > 0");
  if (threads > 0) runtime::set_threads(threads);
  activations.apply(app);
  std::string limits_source = "given";
  if (!(bandwidth_gbs > 0) || !(peak_gflops > 0)) {
    const Limits l = machine_limits(remeasure);
    if (!(bandwidth_gbs > 0)) bandwidth_gbs = l.m.read_gbs;
    if (!(peak_gflops > 0)) peak_gflops = l.m.fma_gflops;
    limits_source = l.source;
  }

  double t0 = now_s();
  std::shared_ptr<const Model> model = Model::load(model_dir);
  model->prepare(repack_progress(model_dir));                                             // counted in the load time
  if (uniform_routing) set_uniform_routing(*model, (uint64_t(seed) * 2654435761u) | 1u);  // never 0 (= off)
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
  Decoding rules = parse_decoding(decoding);
  if (rules == Decoding::Auto) rules = cfg.llada22 ? Decoding::Llada22 : Decoding::Llada21;
  const bool llada22 = rules == Decoding::Llada22;
  // The thresholds in effect: the flags', else the defaults of the rules.
  if (llada22 && !app.count("--threshold")) threshold = LevenshteinOptions{}.threshold;
  std::optional<double> editing_threshold =
      (editing == "none" || editing == "None") ? std::nullopt : std::optional<double>(std::stod(editing));
  if (llada22 && !app.count("--editing-threshold")) editing_threshold = LevenshteinOptions{}.editing_threshold;
  // The generation settings of both modes (greedy, no EOS stop: every block is generated).
  GenerateOptions o;
  o.gen_length = gen_length;
  o.block_length = block_length;
  o.num_inference_steps = steps;
  o.decoding = rules;
  o.threshold = threshold;
  o.editing_threshold = editing_threshold;
  o.levenshtein.threshold = threshold;
  o.levenshtein.editing_threshold = editing_threshold;
  o.mask_token_id = mask_id;
  o.eos_early_stop = false;
  o.output_type = "seq";
  if (turns > 0) {
    if (mode != AttentionMode::BlockCausal || no_cache || batch != 1)
      throw InputError("bench --turns: needs block_causal attention with the cache and --batch 1");
    conversation(model, o, 1, turn_tokens, false, uint64_t(seed) + 1);  // warm-up: first-call costs are not a turn's
    const auto with = conversation(model, o, turns, turn_tokens, true, uint64_t(seed));
    const auto without = conversation(model, o, turns, turn_tokens, false, uint64_t(seed));
    nlohmann::json jt = nlohmann::json::array();
    for (size_t t = 0; t < with.size(); ++t)
      jt.push_back({{"turn", t + 1},
                    {"prompt_tokens", with[t].prompt},
                    {"reused_tokens", with[t].reused},
                    {"first_block_seconds_reuse", with[t].first_block_s},
                    {"first_block_seconds_no_reuse", without[t].first_block_s},
                    {"call_seconds_reuse", with[t].call_s},
                    {"call_seconds_no_reuse", without[t].call_s}});
    const double last_over_first = with.back().first_block_s / with.front().first_block_s;
    if (json_out) {
      std::cout << nlohmann::json{{"model", model_dir},
                                  {"threads", runtime::threads()},
                                  {"turn_tokens", turn_tokens},
                                  {"gen_length", gen_length},
                                  {"block_length", block_length},
                                  {"turns", jt},
                                  {"last_turn_over_first_reuse", last_over_first},
                                  {"last_turn_over_first_no_reuse",
                                   without.back().first_block_s / without.front().first_block_s}}
                       .dump()
                << "\n";
      return 0;
    }
    std::printf("conversation     %lld turns of %lld new ids + %lld generated, block %lld (%s)\n", (long long)turns,
                (long long)turn_tokens, (long long)gen_length, (long long)block_length,
                runtime::exact() ? "exact" : "fast");
    std::printf("  %4s %8s %8s %16s %16s %9s\n", "turn", "prompt", "reused", "1st block reuse", "1st block none",
                "speedup");
    for (size_t t = 0; t < with.size(); ++t)
      std::printf("  %4zu %8lld %8lld %14.1f ms %14.1f ms %8.2fx\n", t + 1, (long long)with[t].prompt,
                  (long long)with[t].reused, with[t].first_block_s * 1e3, without[t].first_block_s * 1e3,
                  without[t].first_block_s / with[t].first_block_s);
    std::printf("turn %lld / turn 1, time to the first final block: %.2fx with reuse, %.2fx without\n",
                (long long)turns, last_over_first, without.back().first_block_s / without.front().first_block_s);
    return 0;
  }

  o.input_ids = IdTensor::from_rows(rows);
  o.attention = mode;
  o.use_kv_cache = !no_cache;
  Pipeline(model).resolve(
      o);  // a call the pipeline refuses (more positions than the model has) fails before any forward

  // Prefill: the block-aligned part of the prompt through a fresh cache.
  double prefill_tps = 0;  // 0: not measured
  const int64_t aligned = (prompt_length / block_length) * block_length;
  const char* no_prefill = mode != AttentionMode::BlockCausal
                               ? "not measured (bidirectional attention has no prefix cache)"
                           : aligned == 0 ? "not measured (the prompt is shorter than a block)"
                                          : nullptr;
  double prefill_s = 0;
  if (aligned > 0 && mode == AttentionMode::BlockCausal) {
    // In forwards of up to 512 positions, as the pipeline computes a prompt.
    KvCache cache = model->make_cache(batch, aligned);
    std::vector<int64_t> km(size_t(batch * aligned), 1);
    const int64_t chunk = block_length * std::max<int64_t>(1, 512 / block_length);
    const double tp = now_s();
    while (cache.length < aligned) {
      const int64_t end = std::min(aligned, cache.length + chunk);
      std::vector<int64_t> ids;
      for (const auto& r : rows) ids.insert(ids.end(), r.begin(), r.begin() + end);
      ForwardBatch fb;
      fb.batch = batch;
      fb.window = end;
      fb.input_ids = ids.data();
      fb.key_mask = km.data();
      fb.attention = mode;
      fb.block_length = block_length;
      fb.logits_from = end;
      fb.commit_to = end;
      model->forward(fb, nullptr, nullptr, &cache);
    }
    prefill_s = now_s() - tp;
    prefill_tps = double(batch * aligned) / prefill_s;
  }

  o.callback_on_step_end_tensor_inputs = std::vector<std::string>{"active_block"};
  std::vector<double> stamps;
  // The first step also computes the prompt's keys and values: the step figures (latency, the
  // breakdown) start after it.
  o.callback_on_step_end = [&](int64_t, int64_t, const std::map<std::string, CallbackTensor>&) {
    if (stamps.empty()) model->reset_profile();
    stamps.push_back(now_s());
    return CallbackResult{};
  };
  model->reset_profile();
  model->set_profiling(true);
  const double tg = now_s();
  PipelineOutput out = Pipeline(model)(o);
  const double gen_s = now_s() - tg;
  model->set_profiling(false);
  const ModelProfile prof = model->profile();
  const uint64_t bytes = prof.total().weight_bytes;
  std::vector<double> step_s;
  for (size_t i = 1; i < stamps.size(); ++i) step_s.push_back(stamps[i] - stamps[i - 1]);
  const double med = percentile(step_s, 0.5), p90 = percentile(step_s, 0.9);
  // Per step after the first (the profile restarts there); a run of one step: that step.
  const bool after_first = stamps.size() >= 2;
  const double n_steps = after_first ? double(stamps.size() - 1) : 1.0;
  const double steps_s = after_first ? stamps.back() - stamps.front() : gen_s;
  const double bytes_per_step = double(bytes) / n_steps;
  // Routed experts: the bytes of the experts each MoE layer ran, summed over the layers, per forward.
  const double expert_bytes_per_step = double(prof.expert_bytes) / n_steps;
  // The cache of the whole window (prompt and generated blocks) the pipeline keeps.
  const int64_t window = (prompt_length + gen_length + block_length - 1) / block_length * block_length;
  const DType kv_dtype = model->kv_dtype();
  const double kv_bytes = mode == AttentionMode::BlockCausal && !no_cache
                              ? double(batch) * double(window) * double(cfg.num_hidden_layers) * 2.0 *
                                    double(cfg.num_key_value_heads * cfg.head_dim) * double(dtype_size(kv_dtype))
                              : 0.0;
  const double experts_per_layer = prof.moe_passes ? double(prof.experts_run) / double(prof.moe_passes) : 0;
  nlohmann::json j = {
      {"model", model_dir},
      {"threads", runtime::threads()},
      {"attention", attention},
      {"kv_cache", mode == AttentionMode::BlockCausal && !no_cache},
      {"uniform_routing", uniform_routing},
      {"prompt_length", prompt_length},
      {"gen_length", gen_length},
      {"block_length", block_length},
      {"steps", steps},
      {"decoding", decoding_name(rules)},
      {"threshold", threshold},
      {"editing_threshold", editing_threshold ? nlohmann::json(*editing_threshold) : nlohmann::json(nullptr)},
      {"batch", batch},
      {"load_seconds", load_s},
      {"prefill_tokens_per_second", no_prefill ? nlohmann::json(nullptr) : nlohmann::json(prefill_tps)},
      {"step_seconds_median", med},
      {"step_seconds_p90", p90},
      {"forwards", out.stats.forwards},
      {"tokens_per_forward", out.stats.tokens_per_forward()},
      {"generated_tokens", out.stats.generated_tokens},
      {"generation_seconds", gen_s},
      {"generated_tokens_per_second", double(out.stats.generated_tokens) / gen_s},
      {"weight_bytes_per_step", bytes_per_step},
      {"weight_gb_per_second", med > 0 ? bytes_per_step / med / 1e9 : 0.0},
      {"expert_bytes_per_step", expert_bytes_per_step},
      {"experts_per_moe_layer", experts_per_layer},
      {"expert_capacity", cfg.block_routing() ? nlohmann::json(cfg.expert_capacity) : nlohmann::json(nullptr)},
      {"peak_rss_mb", peak_rss_mb()},
      {"kv_cache_dtype", kv_bytes > 0 ? nlohmann::json(dtype_name(kv_dtype)) : nlohmann::json(nullptr)},
      {"kv_cache_bytes", kv_bytes},
  };

  // Step breakdown: the model's phases per step (averaged over the steps), the pipeline's own work
  // (scheduler, sampling, bookkeeping) as step time minus forward time, and the whole step.
  const double mean_step_s = steps_s / n_steps;
  std::vector<PhaseRow> phases;
  for (int p = 0; p < ModelProfile::kCount; ++p)
    phases.push_back(
        phase_row(ModelProfile::name(p), double(prof.phase[p].ns) * 1e-9 / n_steps, prof.phase[p], n_steps));
  phases.push_back({"sampling", std::max(0.0, steps_s - double(prof.forward_ns) * 1e-9) / n_steps, 0, 0});
  const ModelProfile::Counters tot = prof.total();
  const PhaseRow step = phase_row("step", mean_step_s, tot, n_steps);
  nlohmann::json jp = nlohmann::json::object();
  for (const PhaseRow& r : phases) jp[r.name] = phase_json(r, mean_step_s, bandwidth_gbs, peak_gflops);
  jp["step"] = phase_json(step, mean_step_s, bandwidth_gbs, peak_gflops);
  j["phases"] = jp;
  j["roofline"] = {{"bandwidth_gbs", bandwidth_gbs},
                   {"peak_gflops", peak_gflops},
                   {"limits", limits_source},
                   {"steps", int64_t(n_steps)},
                   {"bf16_flop_fraction", double(tot.flops_bf16) / double(std::max<uint64_t>(tot.flops, 1))},
                   {"int8_flop_fraction", double(tot.flops_int8) / double(std::max<uint64_t>(tot.flops, 1))}};
  if (json_out) {
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::printf("model            %s (%lld layers, hidden %lld, %lld experts)\n", model_dir.c_str(),
              (long long)cfg.num_hidden_layers, (long long)cfg.hidden_size, (long long)cfg.num_experts);
  std::printf("threads          %d\n", runtime::threads());
  std::printf("arithmetic       %s\n", runtime::exact()
                                           ? "exact (float32 compute; --exact)"
                                           : "fast (bf16 / int8 activations where the weights and CPU have them; "
                                             "--exact for float32)");
  char editing_text[32] = "none";
  if (editing_threshold) std::snprintf(editing_text, sizeof editing_text, "%g", *editing_threshold);
  std::printf("decoding         %s (threshold %g, editing threshold %s)\n", decoding_name(rules), threshold,
              editing_text);
  if (cfg.block_routing())
    std::printf("routing          block routing: a pool of %lld of %lld experts per chunk of %lld positions\n",
                (long long)cfg.expert_capacity, (long long)cfg.num_experts, (long long)cfg.block_size);
  if (uniform_routing) std::printf("routing          uniform (--uniform-routing: not the router's choice)\n");
  std::printf("load             %.3f s\n", load_s);
  if (no_prefill)
    std::printf("prefill          %s\n", no_prefill);
  else
    std::printf("prefill          %.1f tokens/s (%lld positions in %.2f s)\n", prefill_tps,
                (long long)(batch * aligned), prefill_s);
  std::printf("step latency     median %.2f ms, p90 %.2f ms\n", med * 1e3, p90 * 1e3);
  std::printf("forwards         %lld (%.2f tokens/forward)\n", (long long)out.stats.forwards,
              out.stats.tokens_per_forward());
  std::printf("generation       %lld tokens in %.2f s = %.2f tokens/s\n", (long long)out.stats.generated_tokens, gen_s,
              double(out.stats.generated_tokens) / gen_s);
  std::printf("weights / step   %.1f MB (%.1f GB/s at the median step)\n", bytes_per_step / 1e6,
              med > 0 ? bytes_per_step / med / 1e9 : 0.0);
  std::printf("experts / step   %.1f MB (%.1f of %lld routed experts per MoE layer)\n", expert_bytes_per_step / 1e6,
              experts_per_layer, (long long)cfg.num_experts);
  if (kv_bytes > 0)
    std::printf(
        "kv cache         %.1f MB in %s (%lld positions x %lld layers x keys and values of %lld heads x %lld)\n",
        kv_bytes / 1e6, dtype_name(kv_dtype), (long long)(batch * window), (long long)cfg.num_hidden_layers,
        (long long)cfg.num_key_value_heads, (long long)cfg.head_dim);
  std::printf("peak RSS         %.1f MB\n", peak_rss_mb());
  std::printf(
      "\nstep breakdown   mean of %lld steps after the first; roofline = max(weight bytes / %.1f GB/s, FLOPs / %.0f "
      "GFLOP/s)\n",
      (long long)n_steps, bandwidth_gbs, peak_gflops);
  std::printf("                 (limits %s)\n", limits_source.c_str());
  if (tot.flops_bf16 + tot.flops_int8 > 0)
    std::printf(
        "                 (products over bf16 / int8 activations at 2x / 4x that rate: %.0f%% / %.0f%% of FLOPs)\n",
        100.0 * double(tot.flops_bf16) / double(std::max<uint64_t>(tot.flops, 1)),
        100.0 * double(tot.flops_int8) / double(std::max<uint64_t>(tot.flops, 1)));
  std::printf("  %-22s %9s %7s %9s %8s %7s %8s %8s %7s %s\n", "phase", "ms/step", "step", "weight MB", "GFLOP", "GB/s",
              "GFLOP/s", "roof ms", "roof", "bound");
  static const char* const labels[] = {"attention", "dense mlp + shared", "moe (routed experts)",
                                       "lm head",   "other (forward)",    "sampling (pipeline)"};
  for (size_t i = 0; i < phases.size(); ++i) {
    PhaseRow r = phases[i];
    r.name = labels[i];
    print_phase(r, mean_step_s, bandwidth_gbs, peak_gflops);
  }
  print_phase(step, mean_step_s, bandwidth_gbs, peak_gflops);
  return 0;
}

}  // namespace llada2::cli
