// Scaled dot-product attention of a run of query rows over cached keys and values (one KV head),
// the core of Model's attention: tiled over the keys with the softmax kept online, so that any
// number of keys (a 32k-token prompt) is read once, in tiles that stay in cache.
#pragma once

#include <cstdint>
#include <vector>

#include "llada2/types.h"

namespace llada2 {

// Buffers one thread reuses across calls.
struct AttendScratch {
  std::vector<float> scores, acc, run_max, run_sum;
  std::vector<uint16_t> qb, pb;  // bf16 products: the queries and a tile's probabilities in bf16
};

// out[r, 0..D) = sum over keys s < E with key_mask[s] != 0 of softmax_s(scale * q[r] . k[s]) * v[s],
// for the R rows of q [R, D]; a row that sees no key gets zeros. Keys are stored transposed, kt[d * ldk
// + s], values as rows, v[s * D + d], both in `dtype` (F32 or BF16). Runs on the calling thread.
// bf16_products, with a BF16 store where kernels::matmul_acc_bf16_available(): both products in bf16
// pairs (vdpbf16ps), the queries rounded to bf16 and each tile's probabilities too, as a bf16 model's
// attention computes (the fast mode; the model rounds its queries to bf16 already). Otherwise, or
// false, the products run in float32 over the stored values.
void attend_rows(const float* q, int64_t R, int64_t D, const uint8_t* kt, int64_t ldk, const uint8_t* v, DType dtype,
                 int64_t E, const int64_t* key_mask, float scale, float* out, AttendScratch& scratch,
                 bool bf16_products);

// The key tile of attend_rows (exposed for the tests, which cross tile boundaries on purpose).
inline constexpr int64_t kAttendTile = 256;

}  // namespace llada2
