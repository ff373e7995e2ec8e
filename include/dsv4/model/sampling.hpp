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
#include <utility>
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
    check_logits(logits);
    if (p_.temperature == 0.0f) return argmax(logits);
    std::size_t keep = 0;
    const auto probs = nucleus(logits, keep);
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

  /// The distribution sample() draws from, indexed by token id: softmax(logits / T) restricted to
  /// the top-p nucleus and renormalised; one-hot at argmax for temperature 0. (Speculative
  /// decoding compares the target's and the draft's distributions.)
  std::vector<double> distribution(std::span<const float> logits) const {
    check_logits(logits);
    std::vector<double> p(logits.size(), 0.0);
    if (p_.temperature == 0.0f) {
      p[static_cast<std::size_t>(argmax(logits))] = 1.0;
      return p;
    }
    std::size_t keep = 0;
    const auto probs = nucleus(logits, keep);
    double kept = 0.0;
    for (std::size_t i = 0; i < keep; ++i) kept += probs[i].first;
    for (std::size_t i = 0; i < keep; ++i)
      p[static_cast<std::size_t>(probs[i].second)] = probs[i].first / kept;
    return p;
  }

  /// A token drawn from the weights p (non-negative, positive sum; need not be normalised), by
  /// the inverse CDF in id order with one number of the stream.
  std::int64_t draw(std::span<const double> p) {
    double total = 0.0;
    for (double v : p) {
      DSV4_CHECK(v >= 0.0 && std::isfinite(v), InputError,
                 "draw: weights must be finite and non-negative, got {}", v);
      total += v;
    }
    DSV4_CHECK(total > 0.0, InputError, "draw: the {} weights sum to zero", p.size());
    const double u = uniform() * total;
    double acc = 0.0;
    std::size_t last = 0;
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (p[i] <= 0.0) continue;
      last = i;
      acc += p[i];
      if (u < acc) return static_cast<std::int64_t>(i);
    }
    return static_cast<std::int64_t>(last);
  }

  /// The next number of the stream, uniform in [0, 1) (53 bits).
  double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

 private:
  static void check_logits(std::span<const float> logits) {
    DSV4_CHECK(!logits.empty(), ShapeError, "sampling from an empty logit row");
    for (float v : logits)
      DSV4_CHECK(!std::isnan(v), InputError, "sampling from logits that contain NaN");
  }

  /// exp((logit − max) / T) of every token, most likely first (ties by id), and in `keep` the
  /// length of the shortest prefix whose mass reaches top_p (at least one token).
  std::vector<std::pair<double, std::int64_t>> nucleus(std::span<const float> logits,
                                                       std::size_t& keep) const {
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
    keep = 0;
    double mass = 0.0;
    while (keep < probs.size()) {
      mass += probs[keep].first / sum;
      ++keep;
      if (mass >= static_cast<double>(p_.top_p)) break;
    }
    return probs;
  }

  SamplingParams p_;
  std::mt19937_64 rng_;
};

}  // namespace dsv4
