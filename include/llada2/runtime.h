// Process-wide run-time settings: worker threads, the instruction-set tier of the kernels, and the
// activation modes of the matrix products. Each applies to every model in the process and takes
// effect at the next forward; set them between forwards, not during one.
#pragma once

#include <string>
#include <vector>

namespace llada2::runtime {

// Worker threads of the one thread pool, the calling thread included. Default: the hardware
// concurrency, or LLADA2_THREADS. n < 1 is an InputError.
int threads();
void set_threads(int n);

// Kernel tiers, lowest first: "scalar", "avx2", "avx512", "avx512vnni", "avx512bf16". The default is
// the best the CPU supports, capped by LLADA2_ISA.
std::vector<std::string> supported_isas();  // the tiers this CPU runs
std::string isa();                          // the tier in use
// Caps the tier (e.g. to compare tiers, or to run the scalar reference); an unknown or unsupported
// name is an InputError that lists the supported ones.
void set_isa(const std::string& name);

// The two arithmetic modes (SPEC A6).
// - Fast, the default: the precision a diffusers user gets by loading a checkpoint in its own dtype.
//   BF16 checkpoints multiply bf16 activations by bf16 weights with float32 accumulation on CPUs with
//   AVX512-BF16; Q8 / Q4 checkpoints multiply int8 activations on CPUs with AVX512-VNNI. Norms, RoPE,
//   attention, the router, softmax and sampling stay float32; F32 checkpoints compute in float32.
// - Exact: float32 compute whatever the weight dtype. It reproduces the reference's float32 results
//   token for token (the golden parity tests run in it), at about half the speed on BF16 checkpoints.
// set_exact(true) turns both activation modes below off, set_exact(false) turns both on; exact() is
// true when both are off.
bool exact();
void set_exact(bool on);

// BF16 checkpoints on CPUs with AVX512-BF16: activations rounded to bf16 and multiplied with
// vdpbf16ps (about 1.6x faster, logits move by ~1e-3). Default on, or LLADA2_BF16_DOT=0.
bool bf16_activations();
void set_bf16_activations(bool on);

// Q8 / Q4 checkpoints on CPUs with AVX512-VNNI: activations quantized to int8 per group and multiplied
// with vpdpbusd (2-4x faster products). Default on, or LLADA2_INT8_ACT=0.
bool int8_activations();
void set_int8_activations(bool on);

}  // namespace llada2::runtime
