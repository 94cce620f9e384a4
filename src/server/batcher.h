// The server's generation queue: requests wait here, `parallel` workers take them, and requests whose
// settings allow it run together as one batched pipeline call.
//
// A request is split into units, one per prompt (each with `n` rows). A worker takes the oldest
// waiting unit and adds the waiting units that are *compatible* with it: the same prompt length, the
// same max_tokens and the same generation settings, and not seeded sampling (a seed asks for a
// reproducible run, which batching with strangers would break, unless the LLaDA2.2 rules give each row
// a generator of its own). Batched rows then compute exactly
// what they would alone (rows never see each other; blocks align the same way), so batching changes
// throughput only, never a response.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "llada2/pipeline.h"
#include "server/request.h"

namespace llada2::server {

struct Choice {
  std::string text;
  std::string finish_reason;
  int64_t completion_tokens = 0;
};

// One request's generation: filled by the workers, read by the connection's thread.
class Job {
 public:
  explicit Job(CompletionRequest request);

  const CompletionRequest& request() const { return request_; }

  // Streaming only: the connection's thread takes what the workers produced (deltas and canvas
  // events as server-sent-event text). Waits up to `timeout_ms`; returns true once the job is done
  // and every event has been taken.
  bool take_events(std::vector<std::string>* out, int timeout_ms);
  // Non-streaming: waits up to `timeout_ms` for the job to finish; true when done.
  bool wait(int timeout_ms);

  // The client went away: queued units are dropped, running batches stop once no row of theirs
  // belongs to a client that is still there.
  void abandon() { gone_ = true; }
  bool gone() const { return gone_; }

  // Valid once done.
  bool cancelled() const { return cancelled_; }  // the server stopped (or the client left) first
  std::exception_ptr error() const { return error_; }
  const std::vector<Choice>& choices() const { return choices_; }
  int64_t prompt_tokens() const { return prompt_tokens_; }
  const GenerationStats& stats() const { return stats_; }
  int64_t batched_rows() const { return batched_rows_; }  // largest batch a unit of this job ran in
  Decoding decoding() const { return decoding_; }         // the rules its units ran under
  // The generator seeds of prompt `prompt`'s rows (the LLaDA2.2 rules draw per row): from the
  // request's seed, else from one drawn for the job, and the row's index in the request.
  std::vector<uint64_t> row_seeds(size_t prompt) const;

  std::string id;  // the response id, named in crash reports

  // Set by the server for streaming jobs: formats a text delta / a canvas event as SSE text.
  std::function<std::string(int64_t index, const std::string& delta)> format_delta;
  // `edits`: under the LLaDA2.2 rules, the step's deletions and insertions as positions in `tokens`; else null.
  std::function<std::string(int64_t index, int64_t block, const std::vector<int64_t>& tokens, int64_t mask_token_id,
                            const BlockEdits* edits)>
      format_canvas;

 private:
  friend class Batcher;
  void push_event(std::string e);
  void unit_finished(size_t prompt, std::vector<Choice> choices, const GenerationStats& stats, int64_t rows,
                     Decoding decoding);
  void fail(std::exception_ptr e, bool cancelled);

  CompletionRequest request_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> events_;
  size_t units_left_;
  bool done_ = false;
  std::atomic<bool> gone_{false};
  bool cancelled_ = false;
  std::exception_ptr error_;
  std::vector<Choice> choices_;
  int64_t prompt_tokens_ = 0;
  GenerationStats stats_;
  int64_t batched_rows_ = 0;
  Decoding decoding_ = Decoding::Auto;
  uint64_t seed_;
};

struct BatcherCounters {
  int64_t running = 0;  // units being computed
  int64_t queued = 0;   // jobs waiting
  int64_t batches = 0;  // pipeline calls made
  int64_t batched = 0;  // units that shared their pipeline call with another unit
};

class Batcher {
 public:
  enum class Submit { Accepted, Full, Closed };

  // `parallel` workers; at most `queue` jobs wait beyond the idle workers; batches of up to
  // `max_batch_rows` rows (1: every unit alone).
  // `step_hook` (optional) runs on the worker after every refinement step.
  // `prefix_cache` (optional): rows start from cached keys and values of earlier conversations, and
  // leave theirs there.
  Batcher(std::shared_ptr<const Pipeline> pipeline, int parallel, int queue, int64_t max_batch_rows,
          std::function<void()> step_hook = nullptr, std::shared_ptr<PrefixCache> prefix_cache = nullptr);
  ~Batcher();

  Submit submit(const std::shared_ptr<Job>& job);
  // The job's client left: its waiting units leave the queue (the job then ends as cancelled) and
  // running batches stop once none of their rows is wanted.
  void withdraw(const std::shared_ptr<Job>& job);
  // Stops taking jobs, cancels running batches at their next step, and ends every queued job as
  // cancelled. Returns once the workers have exited.
  void close();
  BatcherCounters counters() const;

 private:
  struct Unit {
    std::shared_ptr<Job> job;
    size_t prompt;
    std::string key;  // compatibility key; units batch together only with the same key
    int64_t rows() const { return job->request().n; }
  };

  int64_t queued_jobs() const;  // distinct jobs with a unit waiting; mu_ held

  void work();
  void run(std::vector<Unit> units);

  std::shared_ptr<const Pipeline> pipe_;
  int parallel_, queue_;
  int64_t max_rows_;
  std::function<void()> step_hook_;
  std::shared_ptr<PrefixCache> prefix_cache_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Unit> waiting_;
  int busy_ = 0;
  bool closed_ = false;
  std::atomic<bool> stopping_{false};
  int64_t batches_ = 0, batched_ = 0, running_units_ = 0;
  std::vector<std::thread> workers_;
};

}  // namespace llada2::server
