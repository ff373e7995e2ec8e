// Portability macros shared by host and device code.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define DSV4_HOST_DEVICE __host__ __device__
#define DSV4_DEVICE_CODE 1
#else
#define DSV4_HOST_DEVICE
#define DSV4_DEVICE_CODE 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define DSV4_INLINE inline __attribute__((always_inline))
#define DSV4_RESTRICT __restrict__
#else
#define DSV4_INLINE inline
#define DSV4_RESTRICT
#endif
