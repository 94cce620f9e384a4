// Small value types used across the public API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace llada2 {

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
// Parses a safetensors dtype string ("F32", "BF16", ...). Returns false if unknown.
bool parse_dtype(const std::string& s, DType* out);

enum class AttentionMode { BlockCausal, Bidirectional };
const char* attention_mode_name(AttentionMode m);
// Accepts "block_causal" / "bidirectional"; throws InputError otherwise.
AttentionMode parse_attention_mode(const std::string& s);

// A dense row-major 2-D matrix owned by value (ids, masks, probabilities).
template <typename T>
struct Matrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<T> data;

  Matrix() = default;
  Matrix(int64_t r, int64_t c, T fill = T{}) : rows(r), cols(c), data(size_t(r * c), fill) {}
  T& at(int64_t r, int64_t c) { return data[size_t(r * cols + c)]; }
  const T& at(int64_t r, int64_t c) const { return data[size_t(r * cols + c)]; }
  T* row(int64_t r) { return data.data() + r * cols; }
  const T* row(int64_t r) const { return data.data() + r * cols; }
  std::vector<std::vector<T>> to_rows() const {
    std::vector<std::vector<T>> out(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) out[size_t(r)].assign(row(r), row(r) + cols);
    return out;
  }
};

}  // namespace llada2
