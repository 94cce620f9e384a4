// Counting Model::forward's work: the weight bytes its matrix products read (always, for
// Model::weight_bytes_read) and, while profiling is on, each phase's wall time, weight bytes and
// FLOPs (ModelProfile). The forward opens a ForwardProfile, then a ProfileZone around each phase;
// the products inside a zone count in its phase wherever they run, so nothing passes the phase on.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "kernels/kernels.h"
#include "llada2/model.h"

namespace llada2 {

class Profiler {
 public:
  bool on() const { return on_.load(std::memory_order_relaxed); }
  void set_on(bool on) { on_.store(on); }
  uint64_t weight_bytes_read() const { return weight_bytes_.load(); }
  ModelProfile snapshot() const;
  void reset();

  // A product of M input rows with w.
  void count_linear(const kernels::Weight& w, int64_t M) {
    const uint64_t bytes = kernels::weight_bytes(w);
    weight_bytes_.fetch_add(bytes);
    if (on()) count_phase(w, M, bytes);
  }
  // FLOPs of products over activations only (attention over the cache), in float32 or bf16 pairs;
  // call only while on().
  void count_flops(uint64_t flops, kernels::Arithmetic arithmetic) {
    Counters& c = current();
    c.flops.fetch_add(flops, std::memory_order_relaxed);
    if (arithmetic == kernels::Arithmetic::Bf16) c.flops_bf16.fetch_add(flops, std::memory_order_relaxed);
  }
  // One MoE layer's pass ran `experts` routed experts, reading `bytes` of weights; call only while on().
  void count_experts(uint64_t experts, uint64_t bytes) {
    moe_passes_.fetch_add(1, std::memory_order_relaxed);
    experts_run_.fetch_add(experts, std::memory_order_relaxed);
    expert_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }

 private:
  friend class ForwardProfile;
  friend class ProfileZone;
  struct Counters {
    std::atomic<uint64_t> ns{0}, weight_bytes{0}, flops{0}, flops_bf16{0}, flops_int8{0};
  };
  void count_phase(const kernels::Weight& w, int64_t M, uint64_t bytes);
  Counters& current() { return phase_[phase_now_.load(std::memory_order_relaxed)]; }

  std::atomic<bool> on_{false};
  std::atomic<uint64_t> weight_bytes_{0};
  // The phase of the open zone: one for all threads, since a zone's products run on the pool's
  // threads (hence profiles describe one forward at a time best).
  std::atomic<int> phase_now_{ModelProfile::Other};
  Counters phase_[ModelProfile::kCount];
  std::atomic<uint64_t> forwards_{0}, forward_ns_{0};
  std::atomic<uint64_t> moe_passes_{0}, experts_run_{0}, expert_bytes_{0};
};

using ProfileClock = std::chrono::steady_clock;

// One forward's wall time, when profiling is on at its start: the time outside its zones goes to
// ModelProfile::Other when it ends (also by an exception).
class ForwardProfile {
 public:
  explicit ForwardProfile(Profiler& p) : p_(p.on() ? &p : nullptr) {
    if (p_) t0_ = ProfileClock::now();
  }
  ForwardProfile(const ForwardProfile&) = delete;
  ForwardProfile& operator=(const ForwardProfile&) = delete;
  ~ForwardProfile() {
    if (p_) finish();
  }

 private:
  friend class ProfileZone;
  void finish();

  Profiler* p_;  // null when profiling is off
  ProfileClock::time_point t0_{};
  uint64_t in_zones_ = 0;
};

// One phase of a forward, from here to the end of the scope; a forward's zones follow one another
// (they do not nest), and its time outside them is ModelProfile::Other.
class ProfileZone {
 public:
  ProfileZone(ForwardProfile& f, ModelProfile::Phase phase) : f_(f.p_ ? &f : nullptr) {
    if (f_) open(phase);
  }
  ProfileZone(const ProfileZone&) = delete;
  ProfileZone& operator=(const ProfileZone&) = delete;
  ~ProfileZone() {
    if (f_) close();
  }

 private:
  void open(ModelProfile::Phase phase);
  void close();

  ForwardProfile* f_;  // null when profiling is off
  ModelProfile::Phase phase_ = ModelProfile::Other;
  ProfileClock::time_point t0_{};
};

}  // namespace llada2
