// Compile-time configuration. Every macro here has an #ifndef default, so a
// user can override it on the command line or before the first include.
#ifndef BLOCKQUANT_CONFIG_H_
#define BLOCKQUANT_CONFIG_H_

// Debug-only checks on hot paths (never on public-API input validation).
#ifndef BLOCKQUANT_DASSERT
#if defined(NDEBUG)
#define BLOCKQUANT_DASSERT(cond) ((void)0)
#else
#include <cassert>
#define BLOCKQUANT_DASSERT(cond) assert(cond)
#endif
#endif

// How public-API errors are raised. The default throws blockquant::Error;
// a -fno-exceptions build defines its own (log and abort, longjmp, ...).
// The macro receives an ErrorCode and a std::string message.
#ifndef BLOCKQUANT_THROW
#define BLOCKQUANT_THROW(code, message) \
  throw ::blockquant::Error((code), (message))
#endif

// Host/device annotation so one struct or helper serves C++ and CUDA.
#ifndef BLOCKQUANT_HOST_DEVICE
#if defined(__CUDACC__)
#define BLOCKQUANT_HOST_DEVICE __host__ __device__
#else
#define BLOCKQUANT_HOST_DEVICE
#endif
#endif

// Full unrolling in device code, where it keeps small fixed-size arrays in
// registers instead of local memory; nothing on the host (g++ would warn).
#if defined(__CUDA_ARCH__)
#define BLOCKQUANT_UNROLL _Pragma("unroll")
#else
#define BLOCKQUANT_UNROLL
#endif

// Reference arithmetic rounds every product to f32 (no fused multiply-add), so
// results match numpy/gguf and every fast path bit for bit. Clang honours this
// statement-level pragma; GCC needs -ffp-contract=off, which the CMake target
// blockquant::blockquant adds to its users' compile options.
#ifndef BLOCKQUANT_NO_CONTRACT
#if defined(__clang__)
#define BLOCKQUANT_NO_CONTRACT _Pragma("clang fp contract(off)")
#else
#define BLOCKQUANT_NO_CONTRACT
#endif
#endif

#endif  // BLOCKQUANT_CONFIG_H_
