#include "kernels/dispatch.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/kernels.h"
#include "kernels/target.h"

#ifdef LLADA2_X86
#include <cpuid.h>
#endif

namespace llada2::kernels {
namespace {

#ifdef LLADA2_X86
// F16C and AVX512_BF16 straight from cpuid: not every compiler's __builtin_cpu_supports
// knows them. Their register state is the one the avx2 / avx512f checks already cover.
bool cpuid_bit(unsigned leaf, unsigned subleaf, int reg, unsigned bit) {
  unsigned r[4];
  if (!__get_cpuid_count(leaf, subleaf, &r[0], &r[1], &r[2], &r[3])) return false;
  return (r[reg] >> bit) & 1u;
}

bool cpu_has(Isa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpuid_bit(1, 0, 2, 29);  // ecx.F16C
    case Isa::Avx512:
      return cpu_has(Isa::Avx2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl");
    case Isa::Avx512Vnni: return cpu_has(Isa::Avx512) && cpuid_bit(7, 0, 2, 11);     // ecx.AVX512_VNNI
    case Isa::Avx512Bf16: return cpu_has(Isa::Avx512Vnni) && cpuid_bit(7, 1, 0, 5);  // eax.AVX512_BF16
  }
  return false;
}

const Ops& ops_of(Isa isa) {
  switch (isa) {
    case Isa::Avx2: return avx2_ops();
    case Isa::Avx512: return avx512_ops();
    case Isa::Avx512Vnni: return avx512vnni_ops();
    case Isa::Avx512Bf16: return avx512bf16_ops();
    case Isa::Scalar: break;
  }
  return scalar_ops();
}
#else
// Only the scalar tier exists off x86.
bool cpu_has(Isa isa) { return isa == Isa::Scalar; }
const Ops& ops_of(Isa) { return scalar_ops(); }
#endif

constexpr Isa kTiers[] = {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni, Isa::Avx512Bf16};

std::atomic<int> g_isa{-1};
std::atomic<int> g_bf16{-1};  // -1: LLADA2_BF16_DOT not read yet
std::atomic<int> g_int8{-1};  // -1: LLADA2_INT8_ACT not read yet

// A process-wide on/off switch read from `var` at first use (unset or empty: `dflt`); `state` is
// -1 until then. Anything but 0/1/false/true/off/on throws, naming the variable.
bool env_switch(std::atomic<int>& state, const char* var, bool dflt) {
  int v = state.load(std::memory_order_acquire);
  if (v < 0) {
    const char* env = std::getenv(var);
    const std::string s = env ? env : "";
    if (s.empty()) {
      v = dflt ? 1 : 0;
    } else if (s == "1" || s == "true" || s == "on") {
      v = 1;
    } else if (s == "0" || s == "false" || s == "off") {
      v = 0;
    } else {
      throw std::invalid_argument(std::string(var) + "=" + s + ": expected 0 or 1");
    }
    state.store(v, std::memory_order_release);
  }
  return v == 1;
}

}  // namespace

std::atomic<const Ops*> g_active_ops{nullptr};

const Ops& resolve_ops() {
  Isa isa = best_isa();
  const char* env = std::getenv("LLADA2_ISA");
  if (env && *env && std::strcmp(env, "auto") != 0) {
    Isa cap;
    if (!parse_isa(env, &cap))
      throw std::invalid_argument(
          std::string("LLADA2_ISA=") + env +
          ": unknown instruction set tier (expected auto, avx512bf16, avx512vnni, avx512, avx2 or scalar)");
    isa = std::min(isa, cap);
  }
  set_isa(isa);
  return *g_active_ops.load(std::memory_order_acquire);
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Vnni: return "avx512vnni";
    case Isa::Avx512Bf16: return "avx512bf16";
  }
  return "?";
}

bool parse_isa(const char* name, Isa* out) {
  for (Isa isa : kTiers) {
    if (std::strcmp(name, isa_name(isa)) == 0) {
      *out = isa;
      return true;
    }
  }
  return false;
}

bool isa_supported(Isa isa) {
  static const bool has[5] = {true, cpu_has(Isa::Avx2), cpu_has(Isa::Avx512), cpu_has(Isa::Avx512Vnni),
                              cpu_has(Isa::Avx512Bf16)};
  const int i = int(isa);
  return i >= 0 && i < 5 && has[i];
}

Isa best_isa() {
  for (Isa isa : {Isa::Avx512Bf16, Isa::Avx512Vnni, Isa::Avx512, Isa::Avx2})
    if (isa_supported(isa)) return isa;
  return Isa::Scalar;
}

Isa current_isa() {
  active_ops();
  return Isa(g_isa.load(std::memory_order_acquire));
}

const char* active_isa() { return isa_name(current_isa()); }

bool set_isa(Isa isa) {
  if (!isa_supported(isa)) return false;
  g_isa.store(int(isa), std::memory_order_release);
  g_active_ops.store(&ops_of(isa), std::memory_order_release);
  return true;
}

void set_int8_activations(bool on) { g_int8.store(on ? 1 : 0, std::memory_order_release); }
bool int8_activations() { return env_switch(g_int8, "LLADA2_INT8_ACT", true); }

void set_bf16_activations(bool on) { g_bf16.store(on ? 1 : 0, std::memory_order_release); }
bool bf16_activations() { return env_switch(g_bf16, "LLADA2_BF16_DOT", true); }

}  // namespace llada2::kernels
