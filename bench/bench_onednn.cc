// oneDNN's bf16 matmul at the shapes of bench_kernels, as a yardstick for our linear():
// src [M, K] bf16 x weights [K, N] bf16 -> dst [M, N] f32. "file_layout" reads the weights
// as they are stored ([N, K] row-major, i.e. B transposed, what linear() gets); "packed"
// lets oneDNN reorder them once into its preferred blocked layout outside the timed loop.
// Built only when CMake finds libdnnl (Debian: libdnnl-dev).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

void BM_onednn_matmul(benchmark::State& state, bool packed, int64_t M, int64_t K, int64_t N) {
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  dnnl::memory::desc src_md({M, K}, dt::bf16, tag::ab);
  dnnl::memory::desc wei_file_md({K, N}, dt::bf16, tag::ba);  // [N, K] row-major
  dnnl::memory::desc wei_md = packed ? dnnl::memory::desc({K, N}, dt::bf16, tag::any) : wei_file_md;
  dnnl::memory::desc dst_md({M, N}, dt::f32, tag::ab);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, wei_md, dst_md), eng);

  dnnl::memory src(pd.src_desc(), eng), wei_file(wei_file_md, eng), dst(pd.dst_desc(), eng);
  auto* s = static_cast<uint16_t*>(src.get_data_handle());
  for (int64_t i = 0; i < M * K; ++i) s[i] = uint16_t(0x3F80 + (i * 7919) % 127);
  auto* w = static_cast<uint16_t*>(wei_file.get_data_handle());
  for (int64_t i = 0; i < N * K; ++i) w[i] = uint16_t(0x3C00 + (i * 104729) % 255);
  // As bench_kernels: copies of the weights, together at least 96 MB, cycled so that each call
  // reads its weights from memory (as the model's layers and experts do), not from the caches.
  const size_t bytes = size_t(N * K * 2);
  const size_t count = std::max<size_t>(1, (size_t(96) << 20) / bytes + 1);
  std::vector<dnnl::memory> weights;
  for (size_t c = 0; c < count; ++c) {
    if (pd.weights_desc() != wei_file_md) {
      weights.emplace_back(pd.weights_desc(), eng);
      dnnl::reorder(wei_file, weights.back()).execute(strm, wei_file, weights.back());
    } else {
      weights.emplace_back(wei_file_md, eng);
      std::memcpy(weights.back().get_data_handle(), w, bytes);
    }
  }
  strm.wait();
  dnnl::matmul mm(pd);
  size_t next = 0;
  for (auto _ : state) {
    mm.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights[next]}, {DNNL_ARG_DST, dst}});
    strm.wait();
    next = (next + 1) % count;
  }
  const double flops = 2.0 * double(M) * double(N) * double(K);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["wGB/s"] = benchmark::Counter(double(N) * K * 2 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

int register_all() {
  struct Shape {
    std::string name;
    int64_t M, K, N;
  };
  std::vector<Shape> shapes = {{"lm_head", 32, 2048, 157184}, {"qkv", 32, 2048, 3072}};
  for (int64_t M : {1, 4, 8, 16, 32}) shapes.push_back({"expert_up", M, 2048, 512});
  for (int64_t M : {1, 4, 8, 16, 32}) shapes.push_back({"expert_down", M, 512, 2048});
  for (const Shape& sh : shapes) {
    for (bool packed : {false, true}) {
      std::string name = "onednn_bf16/" + sh.name + "/M=" + std::to_string(sh.M) + "/K=" + std::to_string(sh.K) +
                         "/N=" + std::to_string(sh.N) + (packed ? "/packed" : "/file_layout");
      benchmark::RegisterBenchmark(name.c_str(), BM_onednn_matmul, packed, sh.M, sh.K, sh.N)
          ->Unit(benchmark::kMillisecond)
          ->MeasureProcessCPUTime();
    }
  }
  return 0;
}

const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
