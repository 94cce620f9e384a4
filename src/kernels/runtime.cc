// The public run-time settings (llada2/runtime.h) over the thread pool and the kernel dispatch.
#include "llada2/runtime.h"

#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "llada2/error.h"

namespace llada2::runtime {

namespace {

constexpr kernels::Isa kTiers[] = {kernels::Isa::Scalar, kernels::Isa::Avx2, kernels::Isa::Avx512,
                                   kernels::Isa::Avx512Vnni, kernels::Isa::Avx512Bf16};

}  // namespace

int threads() { return num_threads(); }

void set_threads(int n) {
  if (n < 1) throw InputError("the thread count must be at least 1, got " + std::to_string(n));
  set_num_threads(n);
}

std::vector<std::string> supported_isas() {
  std::vector<std::string> out;
  for (kernels::Isa t : kTiers)
    if (kernels::isa_supported(t)) out.push_back(kernels::isa_name(t));
  return out;
}

std::string isa() { return kernels::active_isa(); }

void set_isa(const std::string& name) {
  kernels::Isa tier;
  if (!kernels::parse_isa(name.c_str(), &tier) || !kernels::set_isa(tier)) {
    std::string list;
    for (const std::string& s : supported_isas()) list += (list.empty() ? "" : ", ") + s;
    throw InputError("instruction set '" + name + "' is not one this CPU runs (supported: " + list + ")");
  }
}

bool exact() { return !kernels::bf16_activations() && !kernels::int8_activations(); }
void set_exact(bool on) {
  kernels::set_bf16_activations(!on);
  kernels::set_int8_activations(!on);
}

bool bf16_activations() { return kernels::bf16_activations(); }
void set_bf16_activations(bool on) { kernels::set_bf16_activations(on); }
bool int8_activations() { return kernels::int8_activations(); }
void set_int8_activations(bool on) { kernels::set_int8_activations(on); }

}  // namespace llada2::runtime
