// Choosing the next token from logits: greedy, or temperature + top-p (nucleus) sampling with a
// seeded, platform-independent random stream (spec/architecture.md §11).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <span>
#include <vector>

#include "dsv4/core/check.hpp"
#include "dsv4/core/error.hpp"

namespace dsv4 {

/// How to pick a token. temperature 0 means greedy (argmax; the lowest id wins a tie).
struct SamplingParams {
  float temperature = 0.0f;
  float top_p = 1.0f;  ///< keep the smallest set of most likely tokens whose mass reaches top_p
  std::uint64_t seed = 0;
};

/// A seeded sampler. The random stream is std::mt19937_64 mapped to [0, 1) with 53 bits, so a
/// seed gives the same tokens on every platform (std::uniform_real_distribution does not).
class Sampler {
 public:
  explicit Sampler(SamplingParams p = {}) : p_(p), rng_(p.seed) {
    DSV4_CHECK(std::isfinite(p.temperature) && p.temperature >= 0.0f, InputError,
               "sampling temperature must be finite and >= 0, got {}", p.temperature);
    DSV4_CHECK(p.top_p > 0.0f && p.top_p <= 1.0f, InputError, "top_p must be in (0, 1], got {}",
               p.top_p);
  }

  const SamplingParams& params() const noexcept { return p_; }

  /// The index of the largest finite logit (lowest index on ties).
  static std::int64_t argmax(std::span<const float> logits) {
    DSV4_CHECK(!logits.empty(), ShapeError, "argmax of an empty logit row");
    std::size_t best = 0;
    for (std::size_t i = 1; i < logits.size(); ++i)
      if (logits[i] > logits[best]) best = i;
    return static_cast<std::int64_t>(best);
  }

  /// The next token for one row of logits.
  std::int64_t sample(std::span<const float> logits) {
    DSV4_CHECK(!logits.empty(), ShapeError, "sampling from an empty logit row");
    for (float v : logits)
      DSV4_CHECK(!std::isnan(v), InputError, "sampling from logits that contain NaN");
    if (p_.temperature == 0.0f) return argmax(logits);
    // softmax(logits / T) in double, most likely first (ties by id)
    const double t = p_.temperature;
    const float mx = logits[static_cast<std::size_t>(argmax(logits))];
    std::vector<std::pair<double, std::int64_t>> probs(logits.size());
    double sum = 0.0;
    for (std::size_t i = 0; i < logits.size(); ++i) {
      const double e = std::exp((static_cast<double>(logits[i]) - mx) / t);
      probs[i] = {e, static_cast<std::int64_t>(i)};
      sum += e;
    }
    std::sort(probs.begin(), probs.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    // nucleus: the shortest prefix whose mass reaches top_p (at least one token)
    std::size_t keep = 0;
    double mass = 0.0;
    while (keep < probs.size()) {
      mass += probs[keep].first / sum;
      ++keep;
      if (mass >= static_cast<double>(p_.top_p)) break;
    }
    double kept = 0.0;
    for (std::size_t i = 0; i < keep; ++i) kept += probs[i].first;
    const double u = uniform() * kept;
    double acc = 0.0;
    for (std::size_t i = 0; i < keep; ++i) {
      acc += probs[i].first;
      if (u < acc) return probs[i].second;
    }
    return probs[keep - 1].second;
  }

 private:
  double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

  SamplingParams p_;
  std::mt19937_64 rng_;
};

}  // namespace dsv4
