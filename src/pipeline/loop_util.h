// Helpers the block loops of pipeline.cc (LLaDA2.1 rules) and levenshtein_loop.cc (LLaDA2.2) share.
#pragma once

#include <algorithm>
#include <cstdint>

#include "llada2/pipeline.h"

namespace llada2 {

// Copies the first `cols` columns of every row.
inline Matrix<int64_t> left_columns(const Matrix<int64_t>& m, int64_t cols) {
  Matrix<int64_t> out(m.rows, cols);
  for (int64_t b = 0; b < m.rows; ++b) std::copy_n(m.row(b), cols, out.row(b));
  return out;
}

inline CallbackTensor bool_tensor(const Matrix<uint8_t>& m) {
  CallbackTensor t;
  t.shape = {m.rows, m.cols};
  t.ints.assign(m.data.begin(), m.data.end());
  t.is_bool = true;
  return t;
}

inline CallbackTensor int_tensor(const Matrix<int64_t>& m) {
  CallbackTensor t;
  t.shape = {m.rows, m.cols};
  t.ints = m.data;
  return t;
}

inline CallbackTensor float_tensor(const Matrix<float>& m) {
  CallbackTensor t;
  t.shape = {m.rows, m.cols};
  t.floats = m.data;
  t.is_float = true;
  return t;
}

}  // namespace llada2
