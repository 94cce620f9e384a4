// Panel order (kernels.h, Weight::panels) for the entry points in kernels.cc. Internal to src/kernels.
#pragma once

#include <cstdint>

#include "kernels/ops.h"

namespace llada2::kernels {

// Throw std::invalid_argument for a Q8 / Q4 weight whose dtype, data, scales or group do not fit
// (rows or panels), and for a panel-ordered quant-None weight that is not BF16 with cols a multiple of 32.
void check_quantized(const Weight& w);
void check_bf16_panels(const Weight& w);

// Products from a panel-ordered weight (a.panels) on a path that reads rows (`run` with a.xq / a.x /
// a.xb as set up by the caller): each thread unpacks one panel at a time into rows (Q8 / Q4: Q8 rows
// of the same values and scales; BF16: the same bf16 values), hence the same products, and runs it;
// min_chunk panels at least per thread.
void linear_from_panels(const LinearArgs& a, void (*run)(const LinearArgs&, int64_t, int64_t), int64_t min_chunk);

}  // namespace llada2::kernels
