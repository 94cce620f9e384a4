// LLADA2_X86: set where the x86 tiers exist (their files compile to nothing elsewhere, and the
// dispatcher knows only the scalar tier).
//
// On x86, LLADA2_TARGET_BEGIN("isa,...") ... LLADA2_TARGET_END compiles the code between them for
// the named instruction sets, whatever the baseline flags, so one build carries every tier.
// Use it after all #includes, around code with internal linkage only: a header's inline
// function instantiated inside could otherwise be merged into the baseline program.
#pragma once

#if defined(__x86_64__) || defined(_M_X64)
#define LLADA2_X86 1
#endif

#define LLADA2_PRAGMA_(x) _Pragma(#x)
#if defined(__clang__)
#define LLADA2_TARGET_BEGIN(isa) LLADA2_PRAGMA_(clang attribute push(__attribute__((target(isa))), apply_to = function))
#define LLADA2_TARGET_END LLADA2_PRAGMA_(clang attribute pop)
#else
#define LLADA2_TARGET_BEGIN(isa) LLADA2_PRAGMA_(GCC push_options) LLADA2_PRAGMA_(GCC target(isa))
#define LLADA2_TARGET_END LLADA2_PRAGMA_(GCC pop_options)
#endif
