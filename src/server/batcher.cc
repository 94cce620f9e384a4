#include "server/batcher.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>

#include "llada2/crash.h"
#include "llada2/error.h"
#include "llada2/rng.h"
#include "server/text_stream.h"

namespace llada2::server {

namespace {

std::string num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}
template <class T>
std::string opt(const std::optional<T>& v) {
  if (!v) return "-";
  if constexpr (std::is_floating_point_v<T>)
    return num(*v);
  else
    return std::to_string(*v);
}

// Units with equal keys compute the same as alone when batched: same prompt length (so the same
// canvas, block alignment and positions), same gen_length (same canvas tail), same settings. Seeded
// sampling under the LLaDA2.1 rules gets a key of its own (their rows share one generator); the
// LLaDA2.2 rules give every row a generator of its own (Job::row_seeds), so seeds never part them.
std::string compatibility_key(const CompletionRequest& r, size_t prompt, const void* job, bool llada22_config) {
  const GenerateOptions& g = r.gen;
  const bool llada22 = g.decoding == Decoding::Llada22 || (g.decoding == Decoding::Auto && llada22_config);
  std::string k = std::to_string(r.prompts[prompt].size()) + "|" + std::to_string(g.gen_length) + "|" +
                  opt(g.block_length) + "|" + opt(g.num_inference_steps) + "|" + num(g.temperature) + "|" +
                  opt(g.top_p) + "|" + opt(g.top_k) + "|" + g.sampling_method + "|" + opt(g.threshold) + "|" +
                  opt(g.editing_threshold) + "|" + std::to_string(g.max_post_steps) + "|" + opt(g.minimal_topk) + "|" +
                  (g.eos_early_stop ? "1" : "0") + "|" + opt(g.eos_token_id) + "|" + opt(g.mask_token_id) + "|" +
                  std::to_string(int(g.attention)) + "|" + (g.use_kv_cache ? "1" : "0");
  if (llada22) {
    const LevenshteinOptions& lv = g.levenshtein;
    k += "|llada2.2|" + num(lv.threshold) + "|" + opt(lv.editing_threshold) + "|" + std::to_string(lv.max_iterations) +
         "|" + (lv.mask_in_argmax ? "1" : "0");
  } else if (g.temperature > 0 && g.seed) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "|seeded:%p:%zu", job, prompt);
    k += buf;
  }
  return k;
}

}  // namespace

// ---------------------------------------------------------------------------------------------- Job

Job::Job(CompletionRequest request)
    : request_(std::move(request)),
      units_left_(request_.prompts.size()),
      seed_(request_.gen.seed ? *request_.gen.seed : random_seed()) {
  choices_.resize(request_.prompts.size() * size_t(request_.n));
  for (const auto& p : request_.prompts) prompt_tokens_ += int64_t(p.size());  // once per prompt, as OpenAI counts
}

std::vector<uint64_t> Job::row_seeds(size_t prompt) const {
  std::vector<uint64_t> seeds;
  for (int64_t i = 0; i < request_.n; ++i) seeds.push_back(row_seed(seed_, int64_t(prompt) * request_.n + i));
  return seeds;
}

bool Job::take_events(std::vector<std::string>* out, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return done_ || !events_.empty(); });
  while (!events_.empty()) {
    out->push_back(std::move(events_.front()));
    events_.pop_front();
  }
  return done_;
}

bool Job::wait(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return done_; });
}

void Job::push_event(std::string e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

void Job::unit_finished(size_t prompt, std::vector<Choice> choices, const GenerationStats& stats, int64_t rows,
                        Decoding decoding) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return;  // failed or withdrawn meanwhile: nobody reads the results
    for (size_t i = 0; i < choices.size(); ++i) choices_[prompt * size_t(request_.n) + i] = std::move(choices[i]);
    stats_.forwards += stats.forwards;
    stats_.generated_tokens += stats.generated_tokens;
    stats_.seconds += stats.seconds;
    batched_rows_ = std::max(batched_rows_, rows);
    decoding_ = decoding;
    if (units_left_ > 0 && --units_left_ == 0) done_ = true;
  }
  cv_.notify_all();
}

void Job::fail(std::exception_ptr e, bool cancelled) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return;
    if (cancelled)
      cancelled_ = true;
    else if (!error_)
      error_ = e;
    done_ = true;
  }
  cv_.notify_all();
}

// ------------------------------------------------------------------------------------------ Batcher

Batcher::Batcher(std::shared_ptr<const Pipeline> pipeline, int parallel, int queue, int64_t max_batch_rows,
                 std::function<void()> step_hook, std::shared_ptr<PrefixCache> prefix_cache)
    : pipe_(std::move(pipeline)),
      parallel_(std::max(1, parallel)),
      queue_(std::max(0, queue)),
      max_rows_(std::max<int64_t>(1, max_batch_rows)),
      step_hook_(std::move(step_hook)),
      prefix_cache_(std::move(prefix_cache)) {
  for (int i = 0; i < parallel_; ++i) workers_.emplace_back([this] { work(); });
}

Batcher::~Batcher() { close(); }

Batcher::Submit Batcher::submit(const std::shared_ptr<Job>& job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return Submit::Closed;
  if (queued_jobs() >= int64_t(queue_) + (parallel_ - busy_)) return Submit::Full;
  const CompletionRequest& r = job->request();
  for (size_t p = 0; p < r.prompts.size(); ++p)
    waiting_.push_back(Unit{job, p, compatibility_key(r, p, job.get(), pipe_->model().config().llada22)});
  cv_.notify_all();
  return Submit::Accepted;
}

void Batcher::withdraw(const std::shared_ptr<Job>& job) {
  job->abandon();
  bool removed = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = waiting_.begin(); it != waiting_.end();)
      if (it->job == job) {
        it = waiting_.erase(it);
        removed = true;
      } else {
        ++it;
      }
  }
  if (removed) job->fail(nullptr, true);
}

void Batcher::close() {
  std::deque<Unit> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    stopping_ = true;
    dropped.swap(waiting_);
  }
  cv_.notify_all();
  for (Unit& u : dropped) u.job->fail(nullptr, true);
  for (auto& w : workers_)
    if (w.joinable()) w.join();
}

BatcherCounters Batcher::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return BatcherCounters{running_units_, queued_jobs(), batches_, batched_};
}

int64_t Batcher::queued_jobs() const {
  std::set<const Job*> queued;
  for (const Unit& u : waiting_) queued.insert(u.job.get());
  return int64_t(queued.size());
}

void Batcher::work() {
  for (;;) {
    std::vector<Unit> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return closed_ || !waiting_.empty(); });
      if (closed_) return;
      // Units of clients that left while waiting are dropped here.
      for (auto it = waiting_.begin(); it != waiting_.end();)
        if (it->job->gone()) {
          it->job->fail(nullptr, true);
          it = waiting_.erase(it);
        } else {
          ++it;
        }
      if (waiting_.empty()) continue;
      batch.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
      int64_t rows = batch[0].rows();
      for (auto it = waiting_.begin(); it != waiting_.end() && rows < max_rows_;) {
        if (it->key == batch[0].key && rows + it->rows() <= max_rows_) {
          rows += it->rows();
          batch.push_back(std::move(*it));
          it = waiting_.erase(it);
        } else {
          ++it;
        }
      }
      ++busy_;
      ++batches_;
      running_units_ += int64_t(batch.size());
      if (batch.size() > 1) batched_ += int64_t(batch.size());
    }
    std::string ids;
    for (const Unit& u : batch) ids += (ids.empty() ? "" : ",") + u.job->id;
    const CrashContext crash_context(ids);
    try {
      run(batch);
    } catch (...) {  // anything outside the pipeline call (decoding, allocation): fail what is left
      for (const Unit& u : batch) u.job->fail(std::current_exception(), false);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      --busy_;
      running_units_ -= int64_t(batch.size());
    }
    cv_.notify_all();
  }
}

void Batcher::run(std::vector<Unit> units) {
  const Pipeline& pipe = *pipe_;
  const Tokenizer& tok = *pipe.tokenizer();
  const CompletionRequest& first = units[0].job->request();

  // Rows of the batch: unit u owns rows [row0[u], row0[u] + n).
  std::vector<std::vector<int64_t>> rows;
  std::vector<size_t> unit_of;
  std::vector<int64_t> row0;
  std::vector<TextStream> streams;
  std::vector<uint64_t> seeds;
  for (size_t u = 0; u < units.size(); ++u) {
    const CompletionRequest& r = units[u].job->request();
    row0.push_back(int64_t(rows.size()));
    for (uint64_t seed : units[u].job->row_seeds(units[u].prompt)) seeds.push_back(seed);
    for (int64_t i = 0; i < r.n; ++i) {
      rows.push_back(r.prompts[units[u].prompt]);
      unit_of.push_back(u);
      streams.emplace_back(r.stop);
    }
  }
  const int64_t B = int64_t(rows.size());
  auto streaming = [&](size_t u) { return units[u].job->request().stream; };
  auto index_of = [&](int64_t b) {  // the choice index of row b within its request
    const size_t u = unit_of[size_t(b)];
    return int64_t(units[u].prompt) * units[u].job->request().n + (b - row0[u]);
  };

  // A row's end: its first stop id (the EOS id; with the LLaDA2.2 rules also generation_config.json's).
  std::vector<int64_t> stops;  // resolved with the call below
  auto first_stop = [&](const int64_t* tokens, int64_t n) {
    return std::find_first_of(tokens, tokens + n, stops.begin(), stops.end());
  };
  // Decodes a row's final tokens (cut after its first stop id) and queues what became safe to send.
  auto emit = [&](int64_t b, const int64_t* tokens, int64_t n, bool complete) -> std::string {
    const int64_t* stop = first_stop(tokens, n);
    if (stop != tokens + n) complete = true;
    const std::string text = decode_generated(tok, tokens, stop != tokens + n ? stop - tokens + 1 : n,
                                              stop != tokens + n ? std::optional<int64_t>(*stop) : std::nullopt);
    const std::string delta = streams[size_t(b)].update(text, complete);
    const size_t u = unit_of[size_t(b)];
    Job& job = *units[u].job;
    if (streaming(u) && !delta.empty() && !job.gone())
      if (std::string event = job.format_delta(index_of(b), delta); !event.empty()) job.push_event(std::move(event));
    return text;
  };

  bool cancelled = false;
  GenerateOptions o = first.gen;
  o.input_ids = IdTensor::from_rows(rows);
  o.independent_rows = true;  // each row ends its blocks as it would alone
  o.row_seeds = seeds;        // and, with the LLaDA2.2 rules, draws as it would alone
  o.callback_on_step_end_tensor_inputs = std::vector<std::string>{"block_x"};
  ResolvedCall call;
  int64_t P = 0, K = 0;
  int64_t last_w = 0;
  bool want_final = false;  // someone needs final blocks as they come (streaming or stop strings)
  bool want_canvas = false;
  for (const Unit& u : units) {
    want_final |= u.job->request().stream || !u.job->request().stop.empty();
    want_canvas |= u.job->request().stream && u.job->request().canvas;
  }
  bool show_edits = false;  // canvas events carry the LLaDA2.2 rules' deletions and insertions
  auto on_step = [&](int64_t, int64_t, const std::map<std::string, CallbackTensor>& tensors) {
    CallbackResult res;
    if (step_hook_) step_hook_();
    if (stopping_) {
      cancelled = true;
      res.stop = true;
      return res;
    }
    if (std::all_of(units.begin(), units.end(), [](const Unit& u) { return u.job->gone(); })) {
      res.stop = true;
      return res;
    }
    if (!want_final) return res;
    const CallbackTensor& bx = tensors.at("block_x");
    const int64_t W = bx.shape[1];
    if (W > last_w) {  // the window grew: every cell before the active block is final
      if (last_w > P)
        for (int64_t b = 0; b < B; ++b)
          if (!units[unit_of[size_t(b)]].job->gone()) emit(b, bx.ints.data() + b * W + P, last_w - P, false);
      last_w = W;
    }
    const int64_t from = std::max(P, W - K);
    const int64_t block = W / K - 1 - P / K;
    for (int64_t b = 0; b < B; ++b) {
      Job& job = *units[unit_of[size_t(b)]].job;
      if (!job.request().canvas || !job.request().stream || job.gone()) continue;
      std::vector<int64_t> cells(bx.ints.begin() + b * W + from, bx.ints.begin() + (b + 1) * W);
      std::optional<BlockEdits> edits;
      if (show_edits) {  // positions in the block, then in `cells` (which start at `from`)
        auto row = [&](const char* name) { return tensors.at(name).ints.data() + b * K; };
        edits = block_edits(row("sampled_tokens"), row("transfer_index"), row("editing_transfer_index"), K,
                            call.delete_token_id, call.split_token_id);
        for (auto* v : {&edits->deleted, &edits->inserted})
          for (int64_t& at : *v) at -= from - (W - K);
      }
      job.push_event(job.format_canvas(index_of(b), block, cells, call.mask_token_id, edits ? &*edits : nullptr));
    }
    bool all_stopped = true;
    for (int64_t b = 0; b < B && all_stopped; ++b)
      all_stopped = streams[size_t(b)].stopped() || units[unit_of[size_t(b)]].job->gone();
    if (all_stopped) res.stop = true;
    return res;
  };

  PipelineOutput out;
  try {
    call = pipe.resolve(o);
    if (call.decoding == Decoding::Llada22)
      stops = call.stop_token_ids;
    else if (call.eos_token_id)
      stops = {*call.eos_token_id};
    P = call.prompt_length();
    K = call.block_length;
    show_edits = want_canvas && call.decoding == Decoding::Llada22 && (call.delete_token_id || call.split_token_id);
    if (show_edits)
      call.options.callback_on_step_end_tensor_inputs =
          std::vector<std::string>{"block_x", "sampled_tokens", "transfer_index", "editing_transfer_index"};
    call.options.callback_on_step_end = on_step;
    if (prefix_cache_ && o.attention == AttentionMode::BlockCausal && o.use_kv_cache) {
      call.options.keep_prefixes = true;
      for (int64_t b = 0; b < B; ++b)
        call.options.reuse_prefixes.push_back(prefix_cache_->lookup(pipe.model(), K, call.prompt_ids.row(b), P));
    }
    out = pipe(call);
  } catch (...) {
    if (units.size() > 1 && !cancelled) {
      // One request's input (or the batch's size) may be the cause: each unit alone gets its own
      // answer or its own error.
      for (const Unit& u : units) run({u});
      return;
    }
    for (const Unit& u : units) u.job->fail(std::current_exception(), false);
    return;
  }
  if (prefix_cache_ && call.options.keep_prefixes) {
    const int64_t hits = out.stats.reused_positions > 0 ? B : 0;
    prefix_cache_->count(B, hits, hits * out.stats.reused_positions);
    if (!cancelled)
      for (const auto& p : out.prefixes) prefix_cache_->insert(p);
  }
  if (cancelled) {
    for (const Unit& u : units) u.job->fail(nullptr, true);
    return;
  }

  const int64_t G = out.sequences.cols;
  const int64_t mask = call.mask_token_id;
  std::set<const Job*> credited;  // a job's prompts may share this run: its forwards count once
  for (size_t u = 0; u < units.size(); ++u) {
    Job& job = *units[u].job;
    if (job.gone()) {
      job.fail(nullptr, true);
      continue;
    }
    std::vector<Choice> choices;
    GenerationStats stats = out.stats;
    if (!credited.insert(&job).second) stats.forwards = 0, stats.seconds = 0;
    stats.generated_tokens = 0;
    for (int64_t b = row0[u]; b < row0[u] + job.request().n; ++b) {
      const int64_t* row = out.sequences.row(b);
      stats.generated_tokens += std::count_if(row, row + G, [&](int64_t t) { return t != mask; });
      const int64_t* end = first_stop(row, G);
      const bool eos_ended = end != row + G;
      const std::string text = emit(b, row, G, true);
      Choice c;
      const bool stop_cut = streams[size_t(b)].stopped();
      c.text = streaming(u) || stop_cut ? streams[size_t(b)].sent() : text;
      c.finish_reason = eos_ended || stop_cut ? "stop" : "length";
      c.completion_tokens = stop_cut ? int64_t(tok.encode(c.text, false).size()) : int64_t(end - row);
      choices.push_back(std::move(c));
    }
    job.unit_finished(units[u].prompt, std::move(choices), stats, B, call.decoding);
  }
}

}  // namespace llada2::server
