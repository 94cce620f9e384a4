// Choosing the kernel tier: what the CPU runs, the LLADA2_ISA cap, set_isa(), and the run-time
// switches of kernels.h (int8 / bf16 activations). Internal to src/kernels.
#pragma once

#include <atomic>

#include "kernels/ops.h"

namespace llada2::kernels {

// The table set_isa() chose last; null until the first kernel call or set_isa().
extern std::atomic<const Ops*> g_active_ops;

// Picks the tier on first use: the best this CPU runs, capped by LLADA2_ISA (throws
// std::invalid_argument for a bad value).
const Ops& resolve_ops();

// The table of the tier in use (inline: every kernel call goes through it).
inline const Ops& active_ops() {
  const Ops* o = g_active_ops.load(std::memory_order_acquire);
  return o ? *o : resolve_ops();
}

}  // namespace llada2::kernels
