// Kernel throughput per instruction-set tier at the shapes of LLaDA2-mini:
//   lm_head  M=32 (a 32-token block), K=2048, N=157184
//   qkv      M=32 and 256 (8 sequences of a 32-token block), K=2048, N=3072
//   expert gate/up  M=1..32 rows routed to one expert, K=2048, N=512
//   expert down     M=1..32, K=512, N=2048
// Counters: GFLOP/s (2*M*N*K per call) and weight GB/s (the weight matrix read once per call),
// per second of process CPU time (all pool threads together), so they read as per-core rates
// and stay meaningful on a shared machine; the Time column is wall time. Multiply by the
// threads counter for the whole-machine rate when the cores are otherwise idle.
// The "+bf16dot" rows use the opt-in vdpbf16ps path (activations rounded to bf16).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/kernels.h"

namespace {

using namespace llada2;
namespace k = llada2::kernels;

// Cheap deterministic values in [-1, 1): the timings do not depend on them.
float pseudo(uint64_t i) {
  uint64_t z = (i + 1) * 0x9E3779B97F4A7C15ull;
  z ^= z >> 29;
  z *= 0xBF58476D1CE4E5B9ull;
  return float(int64_t(z >> 40) - (int64_t(1) << 23)) / float(int64_t(1) << 23);
}

// Copies of one weight matrix per shape and dtype, together at least 96 MB, so that
// cycling through them reads weights from memory as the model does (each layer's and
// expert's weights are cold), not from the 32 MB L3.
const std::vector<std::vector<uint16_t>>& weights(DType dt, int64_t N, int64_t K) {
  static std::map<std::tuple<int, int64_t, int64_t>, std::vector<std::vector<uint16_t>>> cache;
  auto& copies = cache[{int(dt), N, K}];
  if (copies.empty()) {
    const size_t n = size_t(N * K), halves = n * (dt == DType::F32 ? 2 : 1);
    const size_t count = std::max<size_t>(1, (size_t(96) << 20) / (halves * 2) + 1);
    std::vector<uint16_t> one(halves);
    for (size_t i = 0; i < n; ++i) {
      const float v = pseudo(i);
      if (dt == DType::F32) {
        std::memcpy(&one[2 * i], &v, 4);
      } else {
        one[i] = dt == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
      }
    }
    copies.assign(count, one);
  }
  return copies;
}

// The copies of weights() in BF16 panel order (kernels.h), as a model load repacks them.
const std::vector<std::vector<uint8_t>>& bf16_panel_weights(int64_t N, int64_t K) {
  static std::map<std::pair<int64_t, int64_t>, std::vector<std::vector<uint8_t>>> cache;
  auto& packed = cache[{N, K}];
  if (packed.empty()) {
    for (const auto& c : weights(DType::BF16, N, K)) {
      const k::Weight w{c.data(), DType::BF16, N, K};
      packed.emplace_back(size_t(k::panel_bytes(w)));
      k::pack_panels(w, packed.back().data(), nullptr);
    }
  }
  return packed;
}

// With `panels`, BF16 weights in panel order (what a model load gives the avx512 tiers).
void BM_linear(benchmark::State& state, k::Isa isa, bool bf16dot, bool panels, DType dt, int64_t M, int64_t K,
               int64_t N) {
  if (!k::set_isa(isa)) {
    state.SkipWithError("tier not supported");
    return;
  }
  k::set_bf16_activations(bf16dot);
  const auto& copies = weights(dt, N, K);
  if (panels && !k::panels_preferred(k::Weight{copies[0].data(), dt, N, K})) {
    state.SkipWithError("the tier does not multiply bf16 panels");
    return;
  }
  const std::vector<std::vector<uint8_t>>* packed = panels ? &bf16_panel_weights(N, K) : nullptr;
  std::vector<float> x(size_t(M * K)), y(size_t(M * N));
  for (size_t i = 0; i < x.size(); ++i) x[i] = pseudo(i + 7);
  size_t next = 0;
  for (auto _ : state) {
    k::Weight w{copies[next].data(), dt, N, K};
    if (packed) {
      w.data = (*packed)[next].data();
      w.panels = true;
    }
    next = (next + 1) % copies.size();
    k::linear(x.data(), M, K, w, nullptr, y.data(), N);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  k::set_bf16_activations(false);
  const double flops = 2.0 * double(M) * double(N) * double(K);
  const double bytes = double(N) * double(K) * double(dtype_size(dt));
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["wGB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = num_threads();
}

// Q8 weights (int8, one float scale per 64 values of a row) or Q4 (two 4-bit values per byte, one
// scale per 32), as `llada2 quantize --type q8 / q4` writes; with `panels`, repacked into the int8
// kernels' panel order as a model load does (kernels.h).
void BM_linear_q(benchmark::State& state, k::Isa isa, k::Quant quant, bool panels, int64_t M, int64_t K, int64_t N) {
  if (!k::set_isa(isa)) {
    state.SkipWithError("tier not supported");
    return;
  }
  const bool q4 = quant == k::Quant::Q4;
  const int64_t group = q4 ? 32 : 64;
  const size_t n = size_t(N * K) / (q4 ? 2 : 1), ns = size_t(N * K / group);
  const size_t count = std::max<size_t>(1, (size_t(96) << 20) / (n + 4 * ns) + 1);
  std::vector<std::vector<int8_t>> q(count, std::vector<int8_t>(n));
  std::vector<std::vector<float>> sc(count, std::vector<float>(ns));
  for (size_t c = 0; c < count; ++c) {
    for (size_t i = 0; i < n; ++i) q[c][i] = int8_t(int(pseudo(i + c) * 127.f));
    for (size_t i = 0; i < ns; ++i) sc[c][i] = 0.01f * (1.f + pseudo(i + 3 * c));
  }
  std::vector<k::Weight> ws;
  std::vector<std::vector<uint8_t>> pq;
  std::vector<std::vector<float>> ps;
  for (size_t c = 0; c < count; ++c) {
    ws.push_back(k::Weight{q[c].data(), q4 ? DType::U8 : DType::I8, N, K, quant, group, sc[c].data()});
    if (!panels) continue;
    if (!k::panels_preferred(ws.back())) {
      state.SkipWithError("the tier does not multiply q8 / q4 panels");
      return;
    }
    pq.emplace_back(size_t(k::panel_bytes(ws.back())));
    ps.emplace_back(size_t(k::panel_scales(ws.back())));
    ws.back() = k::pack_panels(ws.back(), pq.back().data(), ps.back().data());
  }
  std::vector<float> x(size_t(M * K)), y(size_t(M * N));
  for (size_t i = 0; i < x.size(); ++i) x[i] = pseudo(i + 7);
  size_t next = 0;
  for (auto _ : state) {
    const k::Weight& w = ws[next];
    next = (next + 1) % count;
    k::linear(x.data(), M, K, w, nullptr, y.data(), N);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * double(M) * double(N) * double(K);
  const double bytes = double(n) + 4.0 * double(ns);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["wGB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = num_threads();
}

// The routed experts of one MoE layer step as the model runs them: many experts of LLaDA2-mini's
// shape (gate and up [512, 2048], down [2048, 512]), together well over the L3, each given M input
// rows; the threads take whole experts in turn and multiply them inline (llada2_moe.cc). Weight GB/s
// is per second of wall time for all threads together: compare it with the machine's read limit.
void BM_expert_stream(benchmark::State& state, k::Quant quant, int64_t M) {
  const bool q4 = quant == k::Quant::Q4;
  const int64_t H = 2048, I = 512, group = q4 ? 32 : 64;
  const size_t n = size_t(H * I) / (q4 ? 2 : 1), ns = size_t(H * I / group);
  const size_t experts = std::max<size_t>(8, (size_t(192) << 20) / (3 * (n + 4 * ns)) + 1);
  struct Expert {
    std::vector<uint8_t> data[3];
    std::vector<float> scales[3];
    k::Weight w[3];
  };
  std::vector<Expert> es(experts);
  for (size_t e = 0; e < experts; ++e)
    for (int j = 0; j < 3; ++j) {
      std::vector<uint8_t> raw(n);
      std::vector<float> sc(ns);
      for (size_t i = 0; i < n; ++i) raw[i] = uint8_t(int(pseudo(i + 11 * e + j) * 127.f));
      for (size_t i = 0; i < ns; ++i) sc[i] = 0.01f * (1.f + pseudo(i + 3 * e + j));
      const int64_t rows = j < 2 ? I : H, cols = j < 2 ? H : I;
      const k::Weight w{raw.data(), q4 ? DType::U8 : DType::I8, rows, cols, quant, group, sc.data()};
      if (!k::panels_preferred(w)) {
        state.SkipWithError("the tier does not multiply q8 / q4 panels");
        return;
      }
      es[e].data[j].resize(size_t(k::panel_bytes(w)));
      es[e].scales[j].resize(size_t(k::panel_scales(w)));
      es[e].w[j] = k::pack_panels(w, es[e].data[j].data(), es[e].scales[j].data());
    }
  const int workers = num_threads();
  std::vector<std::vector<float>> x(size_t(workers), std::vector<float>(size_t(M * H))), g(x), u(x), y(x);
  for (auto& v : x)
    for (size_t i = 0; i < v.size(); ++i) v[i] = pseudo(i + 5);
  size_t first = 0;
  const size_t per_iter = std::min<size_t>(experts, 64);
  for (auto _ : state) {
    std::atomic<size_t> next{0};
    parallel_for(workers, [&](int64_t t0, int64_t) {
      const size_t t = size_t(t0);
      for (size_t a; (a = next.fetch_add(1)) < per_iter;) {
        const Expert& e = es[(first + a) % experts];
        k::linear(x[t].data(), M, H, e.w[0], nullptr, g[t].data(), I);
        k::linear(x[t].data(), M, H, e.w[1], nullptr, u[t].data(), I);
        k::silu_mul(g[t].data(), u[t].data(), g[t].data(), M * I);
        k::linear(g[t].data(), M, I, e.w[2], nullptr, y[t].data(), H);
      }
    });
    first = (first + per_iter) % experts;
    benchmark::ClobberMemory();
  }
  const double bytes = double(per_iter) * 3.0 * (double(n) + 4.0 * double(ns));
  state.counters["wGB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = workers;
}

void BM_attention_row(benchmark::State& state, k::Isa isa) {
  // One query head against W=256 keys of D=128: scores (dot), softmax, weighted V sum (axpy).
  if (!k::set_isa(isa)) {
    state.SkipWithError("tier not supported");
    return;
  }
  const int64_t W = 256, D = 128;
  std::vector<float> q(D), kv(size_t(2 * W * D)), p(W), o(D);
  for (size_t i = 0; i < kv.size(); ++i) kv[i] = pseudo(i);
  for (int64_t i = 0; i < D; ++i) q[size_t(i)] = pseudo(size_t(i) + 99);
  for (auto _ : state) {
    for (int64_t s = 0; s < W; ++s) p[size_t(s)] = k::dot(q.data(), kv.data() + s * D, D) * 0.088f;
    k::softmax(p.data(), W);
    std::fill(o.begin(), o.end(), 0.f);
    for (int64_t s = 0; s < W; ++s) k::axpy(p[size_t(s)], kv.data() + (W + s) * D, o.data(), D);
    benchmark::DoNotOptimize(o.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(4.0 * W * D * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_norm_silu(benchmark::State& state, k::Isa isa) {
  // rms_norm over 32 rows of 2048, silu_mul over 32 x 512 expert activations.
  if (!k::set_isa(isa)) {
    state.SkipWithError("tier not supported");
    return;
  }
  const int64_t M = 32, H = 2048, I = 512;
  std::vector<uint16_t> nw(H);
  for (int64_t i = 0; i < H; ++i) nw[size_t(i)] = f32_to_bf16(1.f + 0.1f * pseudo(size_t(i)));
  std::vector<float> x(size_t(M * H)), g(size_t(M * I)), u(size_t(M * I)), out(size_t(M * I));
  for (size_t i = 0; i < g.size(); ++i) g[i] = 4.f * pseudo(i), u[i] = pseudo(i + 3);
  for (auto _ : state) {
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 97) * 0.01f;
    k::rms_norm(x.data(), M, H, k::Weight{nw.data(), DType::BF16, 1, H}, 1e-6f);
    k::silu_mul(g.data(), u.data(), out.data(), M * I);
    benchmark::DoNotOptimize(out.data());
    benchmark::DoNotOptimize(x.data());
  }
}

int register_all() {
  std::vector<std::pair<std::string, k::Isa>> tiers;
  for (k::Isa isa : {k::Isa::Scalar, k::Isa::Avx2, k::Isa::Avx512, k::Isa::Avx512Vnni, k::Isa::Avx512Bf16})
    if (k::isa_supported(isa)) tiers.emplace_back(k::isa_name(isa), isa);
  struct Shape {
    std::string name;
    int64_t M, K, N;
  };
  // The LM head runs on the masked cells of the block: 32 at a block's first step, fewer later.
  std::vector<Shape> shapes = {{"lm_head", 32, 2048, 157184},
                               {"lm_head", 17, 2048, 157184},
                               {"lm_head", 8, 2048, 157184},
                               {"qkv", 32, 2048, 3072},
                               {"qkv", 256, 2048, 3072}};
  for (int64_t M : {1, 4, 8, 16, 32}) shapes.push_back({"expert_up", M, 2048, 512});
  for (int64_t M : {1, 4, 8, 16, 32}) shapes.push_back({"expert_down", M, 512, 2048});
  for (const Shape& s : shapes) {
    for (const auto& [tname, isa] : tiers) {
      for (DType dt : {DType::BF16, DType::F32}) {
        if (dt == DType::F32 && s.name != "qkv") continue;  // the model ships bf16; f32 once for reference
        for (bool bf16dot : {false, true}) {
          if (bf16dot && (isa != k::Isa::Avx512Bf16 || dt != DType::BF16)) continue;
          for (bool panels : {false, true}) {
            if (panels && (dt != DType::BF16 || isa < k::Isa::Avx2)) continue;
            std::string name = "linear/" + s.name + "/" + dtype_name(dt) + "/M=" + std::to_string(s.M) +
                               "/K=" + std::to_string(s.K) + "/N=" + std::to_string(s.N) + "/" + tname +
                               (bf16dot ? "+bf16dot" : "") + (panels ? "+panels" : "");
            auto* b = benchmark::RegisterBenchmark(name.c_str(), BM_linear, isa, bf16dot, panels, dt, s.M, s.K, s.N);
            b->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
            if (s.name == "lm_head") b->MinTime(isa == k::Isa::Scalar ? 0.1 : 1.0);
          }
        }
      }
    }
  }
  for (const auto& [tname, isa] : tiers) {
    if (isa != k::Isa::Scalar)
      for (const Shape& q8 :
           {Shape{"lm_head", 17, 2048, 157184}, Shape{"qkv", 32, 2048, 3072}, Shape{"expert_up", 1, 2048, 512},
            Shape{"expert_up", 2, 2048, 512}, Shape{"expert_up", 3, 2048, 512}, Shape{"expert_up", 8, 2048, 512},
            Shape{"expert_down", 1, 512, 2048}, Shape{"expert_down", 2, 512, 2048}})
        for (k::Quant quant : {k::Quant::Q8, k::Quant::Q4})
          for (bool panels : {false, true}) {
            // Q4 is multiplied from panels only (kernels.cc), so its row layout is not timed.
            if ((panels || quant == k::Quant::Q4) && isa < k::Isa::Avx512Vnni) continue;
            if (quant == k::Quant::Q4 && !panels) continue;
            const std::string name = std::string(quant == k::Quant::Q4 ? "linear_q4" : "linear_q8") +
                                     (panels ? "_panels/" : "/") + q8.name + "/M=" + std::to_string(q8.M) +
                                     "/K=" + std::to_string(q8.K) + "/N=" + std::to_string(q8.N) + "/" + tname;
            benchmark::RegisterBenchmark(name.c_str(), BM_linear_q, isa, quant, panels, q8.M, q8.K, q8.N)
                ->MeasureProcessCPUTime();
          }
    if (isa >= k::Isa::Avx512Vnni)
      for (k::Quant quant : {k::Quant::Q8, k::Quant::Q4})
        for (int64_t M : {1, 2, 3, 8})
          benchmark::RegisterBenchmark((std::string("expert_stream/") + (quant == k::Quant::Q4 ? "q4" : "q8") +
                                        "/M=" + std::to_string(M) + "/" + tname)
                                           .c_str(),
                                       [isa, quant, M](benchmark::State& st) {
                                         if (!k::set_isa(isa)) return st.SkipWithError("tier not supported");
                                         BM_expert_stream(st, quant, M);
                                       })
              ->UseRealTime()
              ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("attention_row/W=256/D=128/" + tname).c_str(), BM_attention_row, isa)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("rms_norm+silu_mul/" + tname).c_str(), BM_norm_silu, isa)
        ->Unit(benchmark::kMicrosecond);
  }
  return 0;
}

const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
