// Token choice per position, as the scheduler's `_sample_from_logits`: temperature, top-k, top-p, then
// argmax or a draw, with the chosen token's probability as its confidence.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "llada2/error.h"
#include "llada2/scheduler.h"

namespace llada2 {

SamplingMethod parse_sampling_method(const std::string& s) {
  if (s == "auto") return SamplingMethod::Auto;
  if (s == "greedy") return SamplingMethod::Greedy;
  if (s == "multinomial") return SamplingMethod::Multinomial;
  throw InputError("`sampling_method` must be one of {'auto', 'greedy', 'multinomial'}, got '" + s + "'.");
}

bool SamplingParams::samples() const {
  bool use_sampling = method == SamplingMethod::Multinomial || (method == SamplingMethod::Auto && temperature != 0.0);
  return use_sampling && temperature != 0.0;
}

void SamplingParams::validate() const {
  if (!(temperature >= 0.0)) throw InputError("`temperature` must be >= 0, got " + std::to_string(temperature) + ".");
  if (samples() && top_p && !(*top_p > 0.0))
    throw InputError("`top_p` must be in (0, 1], got " + std::to_string(*top_p) + ".");
}

namespace {

constexpr float kLowest = std::numeric_limits<float>::lowest();

// Greedy: the first maximal logit; confidence = softmax(raw logits)[argmax] = 1 / sum(exp(l - max)).
void greedy_one(const float* l, int64_t V, int64_t* token, float* prob) {
  *prob = 1.0f / kernels::argmax_expsum(l, V, token);
}

// Temperature, top-k and top-p filtering, then a draw from the filtered softmax.
void sample_one(const float* l, int64_t V, const SamplingParams& p, Rng* rng, std::vector<float>& z,
                std::vector<int32_t>& order, int64_t* token, float* prob) {
  z.assign(l, l + V);
  if (p.temperature != 1.0) {
    const float t = float(p.temperature);
    for (auto& x : z) x /= t;
  }
  if (p.top_k && *p.top_k > 0 && *p.top_k < V) {
    std::vector<float> tmp(z);
    std::nth_element(tmp.begin(), tmp.begin() + (*p.top_k - 1), tmp.end(), std::greater<float>());
    const float kth = tmp[size_t(*p.top_k - 1)];
    for (auto& x : z)
      if (x < kth) x = kLowest;
  }
  if (p.top_p && *p.top_p < 1.0) {
    order.resize(size_t(V));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return z[size_t(a)] > z[size_t(b)]; });
    const float mx = z[size_t(order[0])];
    float sum = 0.f;
    for (int64_t i = 0; i < V; ++i) sum += std::exp(z[size_t(order[size_t(i)])] - mx);
    const float top_p = float(*p.top_p);
    float cum = 0.f;
    bool remove_next = false;
    for (int64_t i = 0; i < V; ++i) {
      float& zi = z[size_t(order[size_t(i)])];
      cum += std::exp(zi - mx) / sum;
      bool remove = remove_next;  // shifted right by one: the entry that crosses top_p stays
      remove_next = cum > top_p;
      if (remove) zi = kLowest;
    }
  }
  float mx = *std::max_element(z.begin(), z.end());
  double total = 0.0;
  float sum = 0.f;
  for (auto& x : z) {
    x = std::exp(x - mx);
    sum += x;
  }
  for (auto& x : z) {
    x /= sum;
    total += x;
  }
  double u = rng->uniform() * total, acc = 0.0;
  int64_t pick = -1;
  for (int64_t v = 0; v < V; ++v) {
    if (z[size_t(v)] <= 0.f) continue;
    acc += z[size_t(v)];
    pick = v;
    if (acc > u) break;
  }
  *token = pick;
  *prob = z[size_t(pick)];
}

}  // namespace

void sample_tokens(const float* logits, int64_t n, int64_t vocab, const SamplingParams& params, Rng* rng,
                   int64_t* tokens, float* probs, const uint8_t* active) {
  if (!params.samples()) {
    parallel_for(n, [&](int64_t a, int64_t b) {
      for (int64_t i = a; i < b; ++i)
        if (!active || active[i]) greedy_one(logits + i * vocab, vocab, tokens + i, probs + i);
    });
    return;
  }
  // Draws stay sequential in position order so a seed reproduces the run.
  std::vector<float> z;
  std::vector<int32_t> order;
  for (int64_t i = 0; i < n; ++i) {
    if (active && !active[i]) {
      rng->uniform();
      continue;
    }
    sample_one(logits + i * vocab, vocab, params, rng, z, order, tokens + i, probs + i);
  }
}

}  // namespace llada2
