// Panel order (kernels.h): sizes and offsets, packing at load time, and the fallback that unpacks
// one panel at a time for tiers without panel kernels; with the checks and decoding of weights.
#include "kernels/panels.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/dispatch.h"
#include "kernels/scalar.h"

namespace llada2::kernels {

namespace {

int64_t panel_count(const Weight& w) { return (w.rows + 15) / 16; }

bool bf16_panel_shape(const Weight& w) { return w.quant == Quant::None && w.dtype == DType::BF16 && w.cols % 32 == 0; }

// Byte offset of (row j, column k) inside a BF16 panel: the pair of columns k & ~1 of row j is the
// dword j of line k / 2, column k in its low half when even.
inline int64_t bf16_panel_offset(int64_t j, int64_t k) { return 64 * (k / 2) + 4 * j + 2 * (k % 2); }

// Value (row j, column k) of a panel (kernels.h) as a signed integer.
inline int panel_value(const uint8_t* panel, bool q4, int64_t j, int64_t k) {
  if (!q4) return int8_t(panel[64 * (k / 4) + 4 * j + k % 4] ^ 0x80);
  const uint8_t byte = panel[64 * (k / 8) + 4 * j + k % 4];
  return ((k & 4) ? byte >> 4 : byte & 0x0F) - 8;
}

// Panel p of a panel-ordered Q8 / Q4 weight back into Q8 rows (int8 values, same scales): int8
// [16, K] and scales [16, NG] (padding rows included).
void unpack_panel(const LinearArgs& a, int64_t p, int8_t* rows, float* sc) {
  const int64_t K = a.K, NG = K / a.group;
  const bool q4 = a.quant == Quant::Q4;
  const uint8_t* src = static_cast<const uint8_t*>(a.w) + p * 16 * (q4 ? K / 2 : K);
  for (int j = 0; j < 16; ++j)
    for (int64_t k = 0; k < K; ++k) rows[j * K + k] = int8_t(panel_value(src, q4, j, k));
  const float* s = a.scales + p * 16 * NG;
  for (int64_t g = 0; g < NG; ++g)
    for (int j = 0; j < 16; ++j) sc[j * NG + g] = s[g * 16 + j];
}

}  // namespace

void check_quantized(const Weight& w) {
  const DType want = w.quant == Quant::Q8 && !w.panels ? DType::I8 : DType::U8;
  if (w.quant != Quant::Q8 && w.quant != Quant::Q4)
    throw std::invalid_argument("quantized weight: unknown quantization kind");
  if (w.dtype != want || !w.data || !w.scales || w.group <= 0 || w.cols % w.group != 0 ||
      (w.quant == Quant::Q4 && (w.group % (w.panels ? 8 : 2) != 0)) || (w.panels && w.cols % 8 != 0))
    throw std::invalid_argument("quantized weight [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) +
                                "]: inconsistent dtype, data, scales or group " + std::to_string(w.group));
}

void check_bf16_panels(const Weight& w) {
  if (!bf16_panel_shape(w) || !w.data)
    throw std::invalid_argument("panel-ordered weight [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) +
                                "]: only BF16 with columns a multiple of 32 (or Q8 / Q4)");
}

uint64_t weight_bytes(const Weight& w) {
  if (w.panels) return panel_bytes(w) + panel_scales(w) * 4;
  const uint64_t n = uint64_t(w.rows) * uint64_t(w.cols);
  switch (w.quant) {
    case Quant::Q8: return n + (w.group > 0 ? n / uint64_t(w.group) * 4 : 0);
    case Quant::Q4: return n / 2 + (w.group > 0 ? n / uint64_t(w.group) * 4 : 0);
    case Quant::None: break;
  }
  return n * dtype_size(w.dtype);
}

void dequantize(const Weight& w, int64_t row, float* out) {
  if (w.quant == Quant::None && w.panels) {
    check_bf16_panels(w);
    const uint8_t* src = static_cast<const uint8_t*>(w.data) + (row / 16) * 32 * w.cols;
    for (int64_t k = 0; k < w.cols; ++k) {
      uint16_t v;
      std::memcpy(&v, src + bf16_panel_offset(row % 16, k), 2);
      out[k] = bf16_to_f32(v);
    }
    return;
  }
  if (w.quant == Quant::None) return to_f32(w.dtype, w.data, row * w.cols, w.cols, out);
  check_quantized(w);
  if (w.panels) {
    const int64_t K = w.cols, NG = K / w.group, p = row / 16, j = row % 16;
    const bool q4 = w.quant == Quant::Q4;
    const uint8_t* src = static_cast<const uint8_t*>(w.data) + p * 16 * (q4 ? K / 2 : K);
    const float* s = w.scales + p * 16 * NG;
    for (int64_t k = 0; k < K; ++k) out[k] = float(panel_value(src, q4, j, k)) * s[(k / w.group) * 16 + j];
    return;
  }
  dequantize_row(w.quant, w.data, w.scales, w.group, w.cols, row, out);
}

bool panels_preferred(const Weight& w) {
  if (w.panels || !w.data || w.rows <= 0) return false;
  if (w.quant == Quant::None) {
    // BF16: from 16 rows (a padded panel wastes the rest), for the tier's path (float32 or bf16
    // activations) when it multiplies panels itself.
    const Ops& o = active_ops();
    const bool bf16dot = bf16_activations() && o.linear_bf16dot;
    return bf16_panel_shape(w) && w.cols > 0 && w.rows >= 16 &&
           (bf16dot ? o.linear_bf16dot_panels : o.linear_bf16_panels) != nullptr;
  }
  const bool rows = (w.quant == Quant::Q8 && w.dtype == DType::I8) || (w.quant == Quant::Q4 && w.dtype == DType::U8);
  return rows && w.scales && w.cols % 64 == 0 && w.group % 8 == 0 && active_ops().q8_panels &&
         int8_activations_active(w);
}

uint64_t panel_bytes(const Weight& w) {
  const uint64_t row_bytes = w.quant == Quant::None ? uint64_t(w.cols) * dtype_size(w.dtype)
                             : w.quant == Quant::Q4 ? uint64_t(w.cols / 2)
                                                    : uint64_t(w.cols);
  return uint64_t(panel_count(w)) * 16 * row_bytes;
}

uint64_t panel_scales(const Weight& w) {
  return w.group > 0 ? uint64_t(panel_count(w)) * 16 * uint64_t(w.cols / w.group) : 0;
}

Weight pack_panels(const Weight& w, uint8_t* data, float* scales) {
  if (w.quant == Quant::None) {
    if (w.panels) throw std::invalid_argument("pack_panels: the weight is in panel order already");
    check_bf16_panels(w);
    const int64_t K = w.cols, N = w.rows;
    parallel_for(
        panel_count(w),
        [&](int64_t p0, int64_t p1) {
          for (int64_t p = p0; p < p1; ++p) {
            uint8_t* dst = data + p * 32 * K;
            const int nr = int(std::min<int64_t>(16, N - 16 * p));
            if (nr < 16) std::memset(dst, 0, size_t(32 * K));  // padding rows: +0
            for (int j = 0; j < nr; ++j) {
              const uint8_t* src = static_cast<const uint8_t*>(w.data) + (16 * p + j) * 2 * K;
              for (int64_t k = 0; k < K; k += 2) std::memcpy(dst + bf16_panel_offset(j, k), src + 2 * k, 4);
            }
          }
        },
        1);
    Weight out = w;
    out.data = data;
    out.panels = true;
    return out;
  }
  check_quantized(w);
  const bool q4 = w.quant == Quant::Q4;
  if (w.panels || w.cols % 8 != 0 || (q4 && w.group % 8 != 0))
    throw std::invalid_argument("pack_panels: expects a Q8 / Q4 weight in rows, cols a multiple of 8 (Q4: group too)");
  const int64_t K = w.cols, NG = K / w.group, N = w.rows, row_bytes = q4 ? K / 2 : K;
  const Ops& o = active_ops();
  LinearArgs a{nullptr, 0, 0, w.data, w.dtype, N, K, nullptr, nullptr, 0};
  a.quant = w.quant;
  a.group = w.group;
  a.scales = w.scales;
  const bool simd = o.pack_panel && reinterpret_cast<uintptr_t>(data) % 64 == 0 && K % 64 == 0;
  parallel_for(
      panel_count(w),
      [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
          uint8_t* dst = data + p * 16 * row_bytes;
          float* s = scales + p * 16 * NG;
          const int nr = int(std::min<int64_t>(16, N - 16 * p));
          if (simd) {
            o.pack_panel(a, 16 * p, nr, reinterpret_cast<int8_t*>(dst), s);
            continue;
          }
          std::fill(dst, dst + 16 * row_bytes, uint8_t(q4 ? 0x88 : 0x80));  // zero weights
          for (int j = 0; j < nr; ++j) {
            const int64_t n = 16 * p + j;
            if (q4) {
              const uint8_t* src = static_cast<const uint8_t*>(w.data) + n * row_bytes;
              for (int64_t k = 0; k < K; ++k) {
                const int v = q4_value(src, k) + 8;
                uint8_t& b = dst[64 * (k / 8) + 4 * j + k % 4];
                b = (k & 4) ? uint8_t((b & 0x0F) | (v << 4)) : uint8_t((b & 0xF0) | v);
              }
            } else {
              const int8_t* src = static_cast<const int8_t*>(w.data) + n * K;
              for (int64_t c = 0; c < K / 4; ++c) {  // one 4-byte quad at a time, sign bits flipped
                uint32_t v;
                std::memcpy(&v, src + 4 * c, 4);
                v ^= 0x80808080u;
                std::memcpy(dst + 64 * c + 4 * j, &v, 4);
              }
            }
          }
          for (int j = 0; j < 16; ++j)
            for (int64_t g = 0; g < NG; ++g) s[g * 16 + j] = j < nr ? w.scales[(16 * p + j) * NG + g] : 0.f;
        }
      },
      1);
  Weight out = w;
  out.data = data;
  out.dtype = DType::U8;
  out.scales = scales;
  out.panels = true;
  return out;
}

void linear_from_panels(const LinearArgs& a, void (*run)(const LinearArgs&, int64_t, int64_t), int64_t min_chunk) {
  const bool bf16 = a.quant == Quant::None;
  const int64_t K = a.K, NG = bf16 ? 0 : K / a.group, N = a.N;
  parallel_for((N + 15) / 16,
               [&](int64_t p0, int64_t p1) {
                 thread_local std::vector<int8_t> rows;
                 thread_local std::vector<float> sc, wbuf;
                 rows.resize(size_t(16 * K * (bf16 ? 2 : 1)));
                 sc.resize(size_t(16 * NG));
                 wbuf.resize(size_t(kMaxNR * K));
                 for (int64_t p = p0; p < p1; ++p) {
                   LinearArgs b = a;
                   const int64_t n = 16 * p;
                   if (bf16) {
                     const uint8_t* src = static_cast<const uint8_t*>(a.w) + p * 32 * K;
                     for (int j = 0; j < 16; ++j)  // a bf16 pair (columns 2t, 2t+1) at a time
                       for (int64_t k = 0; k < K; k += 2)
                         std::memcpy(rows.data() + 2 * (j * K + k), src + bf16_panel_offset(j, k), 4);
                   } else {
                     unpack_panel(a, p, rows.data(), sc.data());
                     b.dtype = DType::I8;
                     b.quant = Quant::Q8;
                     b.scales = sc.data();
                   }
                   b.w = rows.data();
                   b.panels = false;
                   b.N = std::min<int64_t>(16, N - n);
                   b.y = a.y + n;
                   b.bias = a.bias ? a.bias + n : nullptr;
                   b.wbuf = wbuf.data();
                   run(b, 0, b.N);
                 }
               },
               min_chunk);
}

}  // namespace llada2::kernels
