// libFuzzer target: any text given to the config.json parser must yield a consistent
// ModelConfig or a FileError, never a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "llada2/config.h"
#include "llada2/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto c = llada2::ModelConfig::from_json_text(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json");
    // What the model code relies on once a config is accepted.
    if (c.num_attention_heads % c.num_key_value_heads != 0) std::abort();
    if (c.rotary_dim < 2 || c.rotary_dim > c.head_dim || c.rotary_dim % 2 != 0) std::abort();
    if (c.num_experts > 0 && (c.num_experts % c.n_group != 0 || c.topk_group > c.n_group)) std::abort();
  } catch (const llada2::FileError&) {}
  return 0;
}
