#include "model/profile.h"

#include <algorithm>

namespace llada2 {

namespace {

uint64_t ns_since(ProfileClock::time_point t0) {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(ProfileClock::now() - t0).count());
}

}  // namespace

void Profiler::count_phase(const kernels::Weight& w, int64_t M, uint64_t bytes) {
  Counters& c = current();
  c.weight_bytes.fetch_add(bytes, std::memory_order_relaxed);
  const uint64_t f = 2 * uint64_t(M) * uint64_t(w.rows) * uint64_t(w.cols);
  c.flops.fetch_add(f, std::memory_order_relaxed);
  switch (kernels::linear_arithmetic(w)) {
    case kernels::Arithmetic::Bf16: c.flops_bf16.fetch_add(f, std::memory_order_relaxed); break;
    case kernels::Arithmetic::Int8: c.flops_int8.fetch_add(f, std::memory_order_relaxed); break;
    case kernels::Arithmetic::F32: break;
  }
}

ModelProfile Profiler::snapshot() const {
  ModelProfile p;
  for (int i = 0; i < ModelProfile::kCount; ++i) {
    p.phase[i].ns = phase_[i].ns.load();
    p.phase[i].weight_bytes = phase_[i].weight_bytes.load();
    p.phase[i].flops = phase_[i].flops.load();
    p.phase[i].flops_bf16 = phase_[i].flops_bf16.load();
    p.phase[i].flops_int8 = phase_[i].flops_int8.load();
  }
  p.forwards = forwards_.load();
  p.forward_ns = forward_ns_.load();
  p.moe_passes = moe_passes_.load();
  p.experts_run = experts_run_.load();
  p.expert_bytes = expert_bytes_.load();
  return p;
}

void Profiler::reset() {
  for (Counters& c : phase_) {
    c.ns = 0;
    c.weight_bytes = 0;
    c.flops = 0;
    c.flops_bf16 = 0;
    c.flops_int8 = 0;
  }
  forwards_ = 0;
  forward_ns_ = 0;
  moe_passes_ = 0;
  experts_run_ = 0;
  expert_bytes_ = 0;
}

void ForwardProfile::finish() {
  const uint64_t total = ns_since(t0_);
  p_->phase_[ModelProfile::Other].ns.fetch_add(total - std::min(total, in_zones_), std::memory_order_relaxed);
  p_->forward_ns_.fetch_add(std::max(total, in_zones_), std::memory_order_relaxed);
  p_->forwards_.fetch_add(1, std::memory_order_relaxed);
}

void ProfileZone::open(ModelProfile::Phase phase) {
  phase_ = phase;
  f_->p_->phase_now_.store(phase, std::memory_order_relaxed);
  t0_ = ProfileClock::now();
}

void ProfileZone::close() {
  const uint64_t d = ns_since(t0_);
  f_->p_->phase_[phase_].ns.fetch_add(d, std::memory_order_relaxed);
  f_->in_zones_ += d;
  f_->p_->phase_now_.store(ModelProfile::Other, std::memory_order_relaxed);
}

const char* ModelProfile::name(int phase) {
  switch (phase) {
    case Attention: return "attention";
    case Mlp: return "mlp";
    case Moe: return "moe";
    case Head: return "lm_head";
    case Other: return "other";
    default: return "?";
  }
}

ModelProfile::Counters ModelProfile::total() const {
  Counters t;
  for (const Counters& c : phase) {
    t.ns += c.ns;
    t.weight_bytes += c.weight_bytes;
    t.flops += c.flops;
    t.flops_bf16 += c.flops_bf16;
    t.flops_int8 += c.flops_int8;
  }
  return t;
}

}  // namespace llada2
