// libFuzzer target: any bytes given to the safetensors parser must yield tensor views inside
// the buffer or a FileError, never a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "llada2/error.h"
#include "llada2/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    std::map<std::string, std::string> metadata;
    auto tensors = llada2::SafetensorsFile::parse(data, size, "fuzz.safetensors", &metadata);
    volatile uint8_t sink = 0;
    for (const auto& [name, t] : tensors) {
      if (t.nbytes == 0) continue;
      // Touch both ends so that ASan reports a view running outside the input.
      sink = sink + t.data[0] + t.data[t.nbytes - 1];
      if (uint64_t(t.numel()) * llada2::dtype_size(t.dtype) != t.nbytes) std::abort();
    }
  } catch (const llada2::FileError&) {}
  return 0;
}
