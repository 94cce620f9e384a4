#include "llada2/types.h"

#include "llada2/error.h"

namespace llada2 {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64:
    case DType::I64: return 8;
    case DType::F32:
    case DType::I32: return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16: return 2;
    case DType::I8:
    case DType::U8:
    case DType::BOOL: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F64: return "F64";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
  }
  return "?";
}

bool parse_dtype(const std::string& s, DType* out) {
  static const struct {
    const char* name;
    DType t;
  } kTable[] = {{"F32", DType::F32}, {"F16", DType::F16},  {"BF16", DType::BF16}, {"F64", DType::F64},
                {"I64", DType::I64}, {"I32", DType::I32},  {"I16", DType::I16},   {"I8", DType::I8},
                {"U8", DType::U8},   {"BOOL", DType::BOOL}};
  for (const auto& e : kTable) {
    if (s == e.name) {
      *out = e.t;
      return true;
    }
  }
  return false;
}

const char* attention_mode_name(AttentionMode m) {
  return m == AttentionMode::BlockCausal ? "block_causal" : "bidirectional";
}

AttentionMode parse_attention_mode(const std::string& s) {
  if (s == "block_causal") return AttentionMode::BlockCausal;
  if (s == "bidirectional") return AttentionMode::Bidirectional;
  throw InputError("attention must be 'block_causal' or 'bidirectional', got '" + s + "'");
}

}  // namespace llada2
