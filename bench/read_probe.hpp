// The read-bandwidth probe's inner loop: sums 64-bit words with AVX2 where the CPU has it (four
// 256-bit accumulators, so the loop is bound by the loads, not the adds), else 8 scalar lanes.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace dsv4::bench {

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2"))) inline std::uint64_t sum_words_avx2(const std::uint64_t* p,
                                                                    std::size_t n) {
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_add_epi64(s0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    s1 = _mm256_add_epi64(s1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 4)));
    s2 = _mm256_add_epi64(s2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 8)));
    s3 = _mm256_add_epi64(s3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 12)));
  }
  alignas(32) std::uint64_t t[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(t),
                     _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3)));
  std::uint64_t s = t[0] + t[1] + t[2] + t[3];
  for (; i < n; ++i) s += p[i];
  return s;
}
#endif

/// Σ p[0..n) (wrapping); its speed is the read bandwidth of one thread.
inline std::uint64_t sum_words(const std::uint64_t* p, std::size_t n) {
#if defined(__x86_64__) || defined(__i386__)
  if (__builtin_cpu_supports("avx2")) return sum_words_avx2(p, n);
#endif
  std::uint64_t s[8] = {};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += p[i + static_cast<std::size_t>(k)];
  for (; i < n; ++i) s[0] += p[i];
  std::uint64_t t = 0;
  for (const auto v : s) t += v;
  return t;
}

}  // namespace dsv4::bench
