// The avx512 tier (AVX-512 F/BW/VL, 16 float lanes): simd_impl.h's kernels over the traits V of
// avx512_common.h. Only reached after dispatch.cc has checked the CPU.
#include "kernels/target.h"

#ifdef LLADA2_X86

// GCC 12 flags the deliberately undefined lanes inside its own AVX-512 intrinsics.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "kernels/ops.h"

LLADA2_TARGET_BEGIN("avx512f,avx512bw,avx512vl,avx2,fma,f16c")

namespace llada2::kernels {
namespace {

#define LLADA2_SIMD_IMPL_TIER
#include "kernels/avx512_common.h"
#include "kernels/simd_impl.h"

}  // namespace

const Ops& avx512_ops() {
  static constexpr Ops ops = simd_ops();
  return ops;
}

}  // namespace llada2::kernels

LLADA2_TARGET_END

#endif  // LLADA2_X86
